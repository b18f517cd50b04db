//! `inspect` and `import` on images built from the example manifests.
//!
//! Inspect: the text account of every kind of image espfleet writes is snapshotted (insta).
//! The images come from `manifests/examples/*.kdl`, built in the test; the decoders behind the
//! text are each checked against independent oracles in their own tests, so these snapshots
//! pin the presentation (and that key material never appears). The snapshots were reviewed by
//! hand against docs/formats/esp-at-images.md and the example manifests that made them.
//!
//! Import: `import` then `build` must reproduce the factory image and every flashed image byte
//! for byte, for every example with firmware and for era A manifests given firmware here.

use std::path::{Path, PathBuf};

use espfleet_compiler::build::{self, Image, Jobs};
use espfleet_compiler::import;
use espfleet_compiler::inspect::{self, Kind};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples")
}

fn build_manifest(path: &Path) -> Vec<Image> {
    let (plan, _) = espfleet_compiler::manifest::load(path)
        .unwrap_or_else(|d| panic!("{} does not resolve: {d:?}", path.display()));
    build::emit(&plan, Jobs::Sequential)
        .unwrap_or_else(|d| panic!("{} does not build: {d:?}", path.display()))
}

fn image<'a>(images: &'a [Image], name: &str) -> &'a [u8] {
    &images
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no image {name}"))
        .bytes
}

/// A copy of an example in `dir` with absolute paths, `edits` applied to its text and, when
/// `firmware` names a chip, the example firmware added.
fn variant(dir: &Path, example: &str, edits: &[(&str, &str)], firmware: Option<&str>) -> PathBuf {
    let ex = examples();
    let mut text = std::fs::read_to_string(ex.join(example))
        .unwrap()
        .replace(
            "\"esp-at-data/",
            &format!("\"{}/esp-at-data/", ex.display()),
        )
        .replace("\"firmware/", &format!("\"{}/firmware/", ex.display()));
    for (from, to) in edits {
        assert!(text.contains(from), "{example} has no `{from}`");
        text = text.replace(from, to);
    }
    if let Some(chip) = firmware {
        use std::fmt::Write as _;
        let _ = write!(
            text,
            "\nfirmware {{\n    release \"{}/firmware/{chip}\"\n}}\n",
            ex.display()
        );
    }
    let path = dir.join(example);
    std::fs::write(&path, text).unwrap();
    path
}

fn text_of(bytes: &[u8]) -> String {
    inspect::inspect(bytes, None).unwrap().text
}

#[test]
fn inspect_era_b_images() {
    let images = build_manifest(&examples().join("mini-1-c3.kdl"));
    let r = inspect::inspect(image(&images, "partition-table"), None).unwrap();
    assert_eq!(r.kind, Kind::PartitionTable);
    insta::assert_snapshot!("primary_table", r.text);
    insta::assert_snapshot!("at_customize", text_of(image(&images, "at_customize")));
    let nvs = inspect::inspect(image(&images, "mfg_nvs"), None).unwrap();
    assert_eq!(nvs.kind, Kind::Nvs);
    assert!(
        !nvs.text.contains("BEGIN"),
        "key material must never be printed"
    );
    insta::assert_snapshot!("mfg_nvs", nvs.text);
    insta::assert_snapshot!("bootloader", text_of(image(&images, "bootloader")));
    insta::assert_snapshot!("app", text_of(image(&images, "app")));
    insta::assert_snapshot!("flasher_args", text_of(image(&images, "flasher_args")));
    let merged = inspect::inspect(image(&images, "factory"), None).unwrap();
    assert_eq!(merged.kind, Kind::Merged);
    insta::assert_snapshot!("merged_mini_1_c3", merged.text);
    let json = inspect::inspect(image(&images, "factory"), None)
        .unwrap()
        .json;
    assert_eq!(json["chip"], "esp32c3");
    assert_eq!(json["bootloader"]["digest_valid"], true);
}

#[test]
fn inspect_era_a_bins() {
    let images = build_manifest(&examples().join("wroom-32-v3.0.kdl"));
    let fp = inspect::inspect(image(&images, "factory_param"), None).unwrap();
    assert_eq!(fp.kind, Kind::FactoryParam);
    insta::assert_snapshot!("factory_param", fp.text);
    let key = inspect::inspect(image(&images, "client_key"), None).unwrap();
    assert_eq!(key.kind, Kind::Pki);
    assert!(!key.text.contains("BEGIN"));
    insta::assert_snapshot!("pki_client_key", key.text);
    insta::assert_snapshot!("pki_client_cert", text_of(image(&images, "client_cert")));
    let ble = inspect::inspect(image(&images, "ble_data"), None).unwrap();
    assert_eq!(ble.kind, Kind::BleData);
    insta::assert_snapshot!("ble_data", ble.text);
}

#[test]
fn inspect_rejects_unknown_input_and_honours_kind() {
    let err = inspect::inspect(b"hello world, not an image", None).unwrap_err();
    insta::assert_snapshot!("unrecognised", err.to_string());
    assert_eq!(
        miette::Diagnostic::code(&err).unwrap().to_string(),
        "espfleet::inspect::unrecognised"
    );
    let err = inspect::inspect(&[0xF1, 0xF1, 0, 0], Some(Kind::Pki)).unwrap_err();
    assert_eq!(
        miette::Diagnostic::code(&err).unwrap().to_string(),
        "espfleet::inspect::malformed"
    );
}

/// Builds `manifest`, imports its factory image, builds the import, compares byte for byte.
fn round_trip(manifest: &Path) -> import::Imported {
    let original = build_manifest(manifest);
    let factory = image(&original, "factory");
    let imported = import::import(factory)
        .unwrap_or_else(|e| panic!("{}: import failed: {e:?}", manifest.display()));
    let dir = tempfile::tempdir().unwrap();
    let path = import::write(dir.path(), &imported).unwrap();
    #[cfg(unix)]
    for f in &imported.files {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(&f.path))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, if f.secret { 0o600 } else { 0o644 }, "{}", f.path);
    }
    assert!(imported.files.iter().any(|f| {
        f.secret
            && std::path::Path::new(&f.path)
                .extension()
                .is_some_and(|e| e == "key")
    }));
    let rebuilt = build_manifest(&path);
    for img in original
        .iter()
        .filter(|i| i.offset.is_some() || i.name.starts_with("factory"))
    {
        let again = rebuilt
            .iter()
            .find(|i| i.name == img.name)
            .unwrap_or_else(|| {
                panic!(
                    "{}: the import does not build `{}`\n{}",
                    manifest.display(),
                    img.name,
                    imported.manifest
                )
            });
        assert!(
            again.bytes == img.bytes && again.offset == img.offset,
            "{}: `{}` differs after import ({} vs {} bytes)\n{}",
            manifest.display(),
            img.name,
            again.bytes.len(),
            img.bytes.len(),
            imported.manifest
        );
    }
    assert_eq!(
        import::verify(&path, factory),
        import::Verification::Identical
    );
    let flashed = |imgs: &[Image]| imgs.iter().filter(|i| i.offset.is_some()).count();
    assert_eq!(flashed(&original), flashed(&rebuilt));
    imported
}

#[test]
fn import_then_build_reproduces_era_b_examples() {
    let ex = examples();
    let w = round_trip(&ex.join("wroom-32.kdl"));
    assert_eq!(w.release.to_string(), "master");
    let m = round_trip(&ex.join("mini-1-c3.kdl"));
    assert!(m.release.has_sys_store() && !m.release.is_master());
    let a = round_trip(&ex.join("annotated.kdl"));
    assert_eq!(a.module, "MINI-1");
    // Nothing in it needs master (its fs partition was removed): a tag is chosen.
    assert!(
        a.release.has_sys_store() && !a.release.is_master(),
        "{}",
        a.release
    );
}

#[test]
fn import_then_build_reproduces_era_a_with_firmware() {
    let dir = tempfile::tempdir().unwrap();
    let v24 = round_trip(&variant(
        dir.path(),
        "wroom-32-v2.4.kdl",
        &[],
        Some("esp32"),
    ));
    assert!(!v24.release.pki_typed_items(), "{}", v24.release);
    let v30 = round_trip(&variant(
        dir.path(),
        "wroom-32-v3.0.kdl",
        &[],
        Some("esp32"),
    ));
    assert!(v30.release.pki_typed_items(), "{}", v30.release);
}

#[test]
fn import_then_build_reproduces_combine_script_and_legacy_pages() {
    let dir = tempfile::tempdir().unwrap();
    // v3.1–v4.0: no sys_store, legacy NVS pages, the combine script's factory image.
    let v40 = round_trip(&variant(
        dir.path(),
        "wroom-32.kdl",
        &[("esp-at \"master\"", "esp-at \"v4.0.0.0\"")],
        None,
    ));
    assert!(
        v40.release.era() == espfleet_compiler::release::Era::B && !v40.release.has_sys_store()
    );
    // v4.1+ with the legacy page form asked for: the import must say so.
    let legacy = round_trip(&variant(
        dir.path(),
        "mini-1-c3.kdl",
        &[(
            "esp-at \"v4.1.1.0\"",
            "esp-at \"v4.1.1.0\" nvs-pages=\"legacy\"",
        )],
        None,
    ));
    assert!(
        legacy.manifest.contains("nvs-pages=\"legacy\""),
        "{}",
        legacy.manifest
    );
}
