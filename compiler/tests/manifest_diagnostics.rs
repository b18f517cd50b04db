//! One hand-written manifest per validation rule (`tests/data/manifests/err_<rule>.kdl`): the
//! rule's diagnostic must be reported, its label must cover the text the fixture names in its
//! `// expect:` line, and the rendered report (no colour, 100 columns) is snapshotted.

use std::path::{Path, PathBuf};

use espfleet_compiler::manifest::{self, ErrorKind};

fn fixture(rule: &str) -> PathBuf {
    Path::new("tests/data/manifests").join(format!("err_{rule}.kdl"))
}

fn render(d: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .with_links(false)
        .render_report(&mut out, d)
        .unwrap();
    out
}

fn check(rule: &str) {
    let path = fixture(rule);
    let raw = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let expect = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// expect:"))
        .map_or_else(
            || panic!("{} lacks an expect line", path.display()),
            str::trim,
        );
    // Warnings (property_repeated) come with a plan; errors without one.
    let diags = match manifest::load(&path) {
        Ok((_, warnings)) => warnings,
        Err(d) => d,
    };
    let rendered = render(&diags);
    let code = format!("espfleet::manifest::{rule}");
    let err = diags
        .errors
        .iter()
        .find(|e| e.kind().code() == code)
        .unwrap_or_else(|| {
            panic!(
                "no {code} diagnostic for {}; got:\n{rendered}",
                path.display()
            )
        });
    match err.place() {
        Some(place) => {
            let src = place.file.text();
            let start = place.span.offset();
            let got = &src[start..start + place.span.len()];
            assert_eq!(
                got.trim(),
                expect,
                "label of {code} covers the wrong text:\n{rendered}"
            );
        }
        None => assert!(
            expect.is_empty(),
            "{code} has no place but the fixture expects `{expect}`"
        ),
    }
    insta::assert_snapshot!(rule, rendered);
}

macro_rules! rules {
    ($($rule:ident),* $(,)?) => {
        $(#[test] fn $rule() { check(stringify!($rule)); })*
        const COVERED: &[&str] = &[$(stringify!($rule)),*];
    };
}

rules!(
    file_unreadable,
    syntax_invalid,
    node_unknown,
    property_unknown,
    argument_unexpected,
    argument_missing,
    value_type_wrong,
    value_invalid,
    node_duplicate,
    node_missing,
    language_version_unsupported,
    module_unknown,
    module_ambiguous,
    module_unavailable,
    release_unknown,
    pin_unusable,
    feature_unknown,
    feature_disabled,
    partition_missing,
    partition_invalid,
    file_missing,
    extends_cycle,
    override_conflict,
    gatts_invalid,
    firmware_invalid,
    certificate_invalid,
    file_not_regular,
    file_too_large,
    file_holds_key,
    nesting_too_deep,
    property_repeated,
);

#[test]
fn every_rule_has_a_fixture_and_a_test() {
    for kind in ErrorKind::ALL {
        let rule = kind.code().trim_start_matches("espfleet::manifest::");
        assert!(COVERED.contains(&rule), "no test for {rule}");
        assert!(fixture(rule).exists(), "no fixture for {rule}");
    }
}

#[test]
fn all_problems_of_a_manifest_are_reported_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.kdl");
    std::fs::write(
        &path,
        "espfleet 1\nmodule \"WROOM-32\" chip=\"esp32\"\nesp-at \"v4.1.1.0\"\nuart tx=34 bauds=1\nwiffi\nwifi country=\"usa\"\n",
    )
    .unwrap();
    let diags = manifest::load(&path).unwrap_err();
    let codes: Vec<&str> = diags.errors.iter().map(|e| e.kind().code()).collect();
    for want in [
        "property_unknown",
        "node_unknown",
        "value_invalid",
        "pin_unusable",
    ] {
        assert!(
            codes.iter().any(|c| c.ends_with(want)),
            "{want} missing from {codes:?}"
        );
    }
}
