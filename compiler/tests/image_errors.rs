//! Errors a user must get, each with its place in the manifest, whether found while resolving
//! or while emitting (`tests/data/manifests/image_errors/`, see its README).

use std::path::Path;

use espfleet_compiler::build::{self, Jobs};
use espfleet_compiler::manifest::{self, Diagnostics};

fn render(d: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .with_links(false)
        .render_report(&mut out, d)
        .unwrap();
    out
}

fn failure(name: &str) -> (Diagnostics, String) {
    let path = Path::new("tests/data/manifests/image_errors").join(format!("{name}.kdl"));
    let text = std::fs::read_to_string(&path).unwrap();
    let expect = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// expect:"))
        .unwrap()
        .trim()
        .to_owned();
    let diags = match manifest::load(&path) {
        Err(d) => d,
        Ok((plan, _)) => match build::emit(&plan, Jobs::Sequential) {
            Err(d) => d,
            Ok(_) => panic!("{} built without error", path.display()),
        },
    };
    (diags, expect)
}

fn check(name: &str, code: &str) {
    let (diags, expect) = failure(name);
    let rendered = render(&diags);
    let code = format!("espfleet::manifest::{code}");
    let err = diags
        .errors
        .iter()
        .find(|e| e.kind().code() == code)
        .unwrap_or_else(|| panic!("no {code}:\n{rendered}"));
    let place = err
        .place()
        .unwrap_or_else(|| panic!("{code} has no place:\n{rendered}"));
    let start = place.span.offset();
    assert_eq!(
        place.file.text()[start..start + place.span.len()].trim(),
        expect,
        "wrong label:\n{rendered}"
    );
    insta::assert_snapshot!(name, rendered);
}

#[test]
fn key_mismatch() {
    check("key_mismatch", "certificate_invalid");
}

#[test]
fn certificate_not_pem_or_der() {
    check("certificate_not_pem_or_der", "certificate_invalid");
}

#[test]
fn overflow_era_a() {
    check("overflow_era_a", "partition_invalid");
}

#[test]
fn overflow_era_b() {
    check("overflow_era_b", "partition_invalid");
}

#[test]
fn ble_without_ble_data() {
    check("ble_without_ble_data", "partition_missing");
}

#[test]
fn pin_module_cannot_use() {
    check("pin_module_cannot_use", "pin_unusable");
}

#[test]
fn key_material_never_appears_in_diagnostics() {
    let (diags, _) = failure("key_mismatch");
    let rendered = render(&diags);
    let key = std::fs::read_to_string(
        "../manifests/examples/esp-at-data/master/client_key/client_key_00.key",
    )
    .unwrap();
    let body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    for line in body {
        assert!(
            !rendered.contains(line),
            "key material leaked into the diagnostic:\n{rendered}"
        );
    }
}
