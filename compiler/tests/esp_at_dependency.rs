//! The built-in feature → partition dependency lists equal ESP-AT's own files of each
//! reference tag (copied under `tests/data/esp_at/dependency/`).

mod esp_at_support;

use esp_at_support::data;
use espfleet_compiler::esp_at::Release;
use espfleet_compiler::esp_at::ReleaseFormats as _;
use espfleet_compiler::esp_at::dependency::{self, DependencyLine};

fn check(release: &str, file: &str) {
    let text = fs_err::read_to_string(data().join("dependency").join(file)).unwrap();
    let from_file = dependency::parse(&text);
    let r: Release = release.parse().unwrap();
    let built_in: Vec<DependencyLine> = r
        .dependencies()
        .iter()
        .map(|d| DependencyLine {
            symbol: d.symbol.to_owned(),
            name: d.name.to_owned(),
        })
        .collect();
    assert_eq!(built_in, from_file, "{release}");
}

#[test]
fn era_a_list_matches_v2_4_0_0() {
    check("v2.4.0.0", "v2.4.0.0_AT_partition_dependency");
    // The same list applies to every era A release espfleet knows.
    for tag in ["v2.2.0.0", "v2.4.2.0", "v3.0.0.0"] {
        check(tag, "v2.4.0.0_AT_partition_dependency");
    }
}

#[test]
fn era_b_lists_match_each_tag() {
    check("v3.1.0.0", "v3.1.0.0_at_customized_config_dependency.txt");
    check("v4.0.0.0", "v3.1.0.0_at_customized_config_dependency.txt");
    check("v4.1.1.0", "v4.1.1.0_at_customized_config_dependency.txt");
    check("v5.0.1.0", "v4.1.1.0_at_customized_config_dependency.txt");
    check("master", "master_at_customized_config_dependency.txt");
}
