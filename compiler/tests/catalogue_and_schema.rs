//! Data checks: the checked-in JSON Schema matches the code, every example manifest validates
//! against it and resolves, and the module catalogue agrees with ESP-AT's own files
//! (`tests/data/esp-at`, copied from the esp-at repository by tag; see its README).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use espfleet_compiler::catalogue::Catalogue;
use espfleet_compiler::manifest::{self, SourceFile};
use espfleet_compiler::release::Release;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn reference() -> PathBuf {
    let p = repo().join("tests/data/esp-at");
    assert!(
        p.is_dir(),
        "the ESP-AT reference data is missing from {}",
        p.display()
    );
    p
}

#[test]
fn checked_in_schema_matches_the_code() {
    let path = repo().join("schemas/manifest.schema.json");
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(
        on_disk == manifest::schema::json_schema(),
        "schemas/manifest.schema.json is stale: run `cargo run -p espfleet -- schema > schemas/manifest.schema.json`"
    );
}

fn examples() -> Vec<PathBuf> {
    let files = manifest::discover::discover(&[repo().join("manifests/examples")]).unwrap();
    assert!(
        files.len() >= 5,
        "expected the example manifests, found {files:?}"
    );
    files
}

#[test]
fn every_example_manifest_validates_against_the_schema_and_builds() {
    let schema: serde_json::Value = serde_json::from_str(&manifest::schema::json_schema()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for path in examples() {
        let file = SourceFile::new(&path, std::fs::read_to_string(&path).unwrap());
        let (doc, problems) = manifest::parse(&file);
        assert!(problems.is_empty(), "{}: {problems:?}", path.display());
        let json = serde_json::to_value(&doc).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{} does not validate: {errors:?}",
            path.display()
        );
        if let Err(d) = manifest::load(&path) {
            panic!(
                "{} does not resolve: {:?}",
                path.display(),
                miette::Report::new(d)
            );
        }
    }
}

#[test]
fn every_catalogue_module_resolves_and_builds_for_every_release_that_ships_it() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalogue::builtin();
    let mut count = 0;
    for m in &cat.modules {
        for release in cat.releases_of(m) {
            let path = dir.path().join(format!("m{count}.kdl"));
            std::fs::write(
                &path,
                format!(
                    "espfleet 1\nmodule \"{}\" chip=\"{}\"\nesp-at \"{release}\"\n",
                    m.name, m.chip
                ),
            )
            .unwrap();
            let plan = match manifest::load(&path) {
                Ok((plan, _)) => plan,
                Err(d) => panic!("{} on {release}: {:?}", m.name, miette::Report::new(d)),
            };
            if let Err(d) =
                espfleet_compiler::build::emit(&plan, espfleet_compiler::build::Jobs::Sequential)
            {
                panic!(
                    "{} on {release} does not build: {:?}",
                    m.name,
                    miette::Report::new(d)
                );
            }
            count += 1;
        }
    }
    assert!(count > 100, "only {count} module/release pairs");
}

/// Rows of a partition CSV with whitespace removed, as ESP-AT's own scripts compare them.
fn rows(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn catalogue_tables_match_esp_at_module_config_for_every_reference_tag() {
    let cat = Catalogue::builtin();
    let mut compared = 0;
    for tag_dir in std::fs::read_dir(reference()).unwrap() {
        let tag_dir = tag_dir.unwrap().path();
        let tag = tag_dir.file_name().unwrap().to_string_lossy().into_owned();
        let Ok(release) = tag.parse::<Release>() else {
            continue;
        };
        for cfg in &cat.configs {
            let module_dir = tag_dir.join(&cfg.dir);
            let Some(layout) = cfg.layouts.iter().find(|l| l.covers(release)) else {
                // The catalogue does not offer this config in this release; ESP-AT must not either
                // (the v2.2.0.0 copies are of the ESP32 tag, which also carried C3 directories).
                continue;
            };
            if !module_dir.is_dir() {
                continue;
            }
            // ESP-AT v2.2.0.0's C3 directory in the ESP32 tag is not the C3 release's layout.
            if tag.ends_with("_esp32")
                && cfg.chip != espfleet_compiler::target::Chip::Esp32
                && cfg.dir != "module_esp32c3_qcloud"
            {
                continue;
            }
            for (file, ours) in [
                ("partitions_at.csv", &layout.partition_table),
                ("at_customize.csv", &layout.at_customize),
            ] {
                let theirs = std::fs::read_to_string(module_dir.join(file)).unwrap();
                assert_eq!(
                    rows(ours.csv),
                    rows(&theirs),
                    "{tag}/{}/{file} differs from {}",
                    cfg.dir,
                    ours.file
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 60, "compared only {compared} tables");
}

/// `factory_param_data.csv` rows by (platform, module) → column → value.
fn factory_data(path: &Path) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut out = BTreeMap::new();
    for line in lines {
        // The description column may be quoted and hold commas; the fields we read are not.
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        let row: BTreeMap<String, String> =
            header.iter().map(|h| (*h).to_owned()).zip(fields).collect();
        out.insert((row["platform"].clone(), row["module_name"].clone()), row);
    }
    out
}

#[test]
fn catalogue_factory_defaults_match_esp_at_data() {
    let cat = Catalogue::builtin();
    let master =
        factory_data(&reference().join("master/raw_data/factory_param/factory_param_data.csv"));
    let v24 =
        factory_data(&reference().join("v2.4.0.0/raw_data/factory_param/factory_param_data.csv"));
    let mut checked = 0;
    for m in &cat.modules {
        let key = (m.chip.platform().to_owned(), m.name.clone());
        // Modules that master dropped (the QCLOUD ones) are checked against v2.4.0.0's data.
        let (row, tx_power, ch_count) = match (master.get(&key), v24.get(&key)) {
            (Some(r), _) => (r, "max_tx_power", "channel_num"),
            (None, Some(r)) => (r, "tx_max_power", "channel_num"),
            (None, None) => panic!(
                "{} ({}) is in no ESP-AT factory_param_data.csv",
                m.name, m.chip
            ),
        };
        let int = |k: &str| {
            row[k]
                .parse::<i32>()
                .unwrap_or_else(|_| panic!("{k} of {}", m.name))
        };
        assert_eq!(m.uart.port, int("uart_port"), "{} uart_port", m.name);
        assert_eq!(m.uart.baud, int("uart_baudrate"), "{} baud", m.name);
        assert_eq!(m.uart.tx, int("uart_tx_pin"), "{} tx", m.name);
        assert_eq!(m.uart.rx, int("uart_rx_pin"), "{} rx", m.name);
        assert_eq!(m.uart.cts, int("uart_cts_pin"), "{} cts", m.name);
        assert_eq!(m.uart.rts, int("uart_rts_pin"), "{} rts", m.name);
        assert_eq!(m.wifi.country, row["country_code"], "{} country", m.name);
        assert_eq!(
            i32::from(m.wifi.max_tx_power),
            int(tx_power),
            "{} tx power",
            m.name
        );
        assert_eq!(
            i32::from(m.wifi.start_channel),
            int("start_channel"),
            "{} start channel",
            m.name
        );
        assert_eq!(
            i32::from(m.wifi.channel_count),
            int(ch_count),
            "{} channels",
            m.name
        );
        checked += 1;
    }
    assert_eq!(checked, cat.modules.len());
}
