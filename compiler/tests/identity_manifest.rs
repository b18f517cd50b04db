//! The manifest's `identity` section: one hand-written manifest per validation rule
//! (`tests/data/manifests/identity/err_<rule>.kdl`, each naming the code and the text its label
//! must cover), and the per-device images `personalize` makes, compared with independent
//! outputs: the images of an equivalent manifest that names the device's certificate and key as
//! files, and a user NVS partition made by the PyPI oracle `esp-idf-nvs-partition-gen` 0.3.0
//! from a hand-written CSV.

mod nvs_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use espfleet_compiler::build::{self, Image, Jobs};
use espfleet_compiler::identity::{DeviceIdentity, personalize};
use espfleet_compiler::manifest::{self, identity::CredentialPlan};
use espfleet_compiler::secret::Secret;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/manifests/identity")
}

fn render(d: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .with_links(false)
        .render_report(&mut out, d)
        .unwrap();
    // Absolute paths differ between checkouts.
    out.replace(&format!("{}/", dir().display()), "")
}

fn check(rule: &str) {
    let path = dir().join(format!("err_{rule}.kdl"));
    let text = std::fs::read_to_string(&path).unwrap();
    let expect = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// expect: "))
        .unwrap_or_else(|| panic!("{} lacks an expect line", path.display()));
    let (code, label) = expect.split_once(' ').unwrap();
    let rel = Path::new("tests/data/manifests/identity").join(format!("err_{rule}.kdl"));
    let Err(diags) = manifest::load(&rel) else {
        panic!("{} was accepted", path.display())
    };
    let rendered = render(&diags);
    let code = format!("espfleet::manifest::{code}");
    let err = diags
        .errors
        .iter()
        .find(|e| e.kind().code() == code)
        .unwrap_or_else(|| panic!("no {code} for {}; got:\n{rendered}", path.display()));
    let place = err
        .place()
        .expect("identity errors point into the manifest");
    let start = place.span.offset();
    let got = &place.file.text()[start..start + place.span.len()];
    assert_eq!(
        got.trim(),
        label,
        "label of {code} covers the wrong text:\n{rendered}"
    );
    insta::assert_snapshot!(format!("err_{rule}"), rendered);
}

macro_rules! rules {
    ($($rule:ident),* $(,)?) => {
        $(#[test] fn $rule() { check(stringify!($rule)); })*
        const COVERED: &[&str] = &[$(stringify!($rule)),*];
    };
}

rules!(
    serial_template_invalid,
    serial_missing,
    credentials_missing,
    credentials_twice,
    mint_ca_key_missing,
    subject_placeholder_unknown,
    subject_not_a_name,
    ca_cert_not_a_ca,
    ca_key_not_the_cas,
    ca_key_file_missing,
    key_type_unknown,
    pool_dir_missing,
    slot_unknown,
    slot_feature_disabled,
    slot_index_gap,
    slot_missing,
    identity_node_duplicate,
    identity_node_unknown,
    nvs_partition_missing,
    nvs_partition_not_nvs,
    nvs_key_too_long,
    nvs_encoding_unknown,
    nvs_value_out_of_range,
    nvs_placeholder_unknown,
    nvs_hex_invalid,
);

#[test]
fn every_fixture_is_checked() {
    for e in std::fs::read_dir(dir()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(rule) = name
            .strip_prefix("err_")
            .and_then(|n| n.strip_suffix(".kdl"))
        {
            assert!(COVERED.contains(&rule), "{name} has no test");
        }
    }
}

fn device(mac: &str, serial: &str) -> DeviceIdentity {
    // A certificate the fixture CA signed, standing in for one the store would hand out.
    DeviceIdentity {
        mac: mac.parse().unwrap(),
        serial: serial.to_owned(),
        certificate_pem: std::fs::read_to_string(dir().join("pki/leaf.crt")).unwrap(),
        key_pem: Secret::new(std::fs::read_to_string(dir().join("pki/leaf.key")).unwrap()),
    }
}

fn oracle_nvs(work: &Path, csv: &str, size: &str) -> PathBuf {
    let input = work.join("device.csv");
    let out = work.join("device_info.bin");
    std::fs::write(&input, csv).unwrap();
    let status = Command::new(nvs_support::oracle_python())
        .args(["-m", "esp_idf_nvs_partition_gen", "generate"])
        .arg(&input)
        .arg(&out)
        .arg(size)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

fn same_images(a: &[Image], b: &[Image]) {
    let names = |v: &[Image]| v.iter().map(|i| i.path.clone()).collect::<Vec<_>>();
    assert_eq!(names(a), names(b));
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.offset, y.offset, "{}", x.path);
        assert!(x.bytes == y.bytes, "{} differs", x.path);
        assert_eq!(x.secret, y.secret, "{}", x.path);
    }
}

#[test]
fn ok_manifests_resolve_to_an_identity_plan() {
    let (plan, warnings) = manifest::load(&dir().join("ok_mint.kdl")).unwrap();
    assert!(warnings.errors.is_empty(), "{warnings:?}");
    let id = plan.identity.as_ref().unwrap();
    assert_eq!(id.serial.format(id.serial.start), "ACME-001000");
    assert_eq!(
        (
            id.slot.cert_name.as_str(),
            id.slot.key_name.as_str(),
            id.slot.index
        ),
        ("client_cert", "client_key", 0)
    );
    let CredentialPlan::Mint(m) = &id.credentials else {
        panic!("mint expected")
    };
    assert_eq!(m.validity_days, 825);
    assert!(m.ca_key.ends_with("pki/fleet-ca.key"));
    // The CA certificate is an input; the CA key never is.
    assert!(plan.files.0.keys().any(|p| p.ends_with("pki/fleet-ca.crt")));
    assert!(!plan.files.0.keys().any(|p| p.ends_with(".key")));
    let nvs = id.nvs.as_ref().unwrap();
    assert_eq!((nvs.partition.as_str(), nvs.size), ("device_info", 0x3000));

    let (plan, _) = manifest::load(&dir().join("ok_pool_era_a.kdl")).unwrap();
    let id = plan.identity.as_ref().unwrap();
    let CredentialPlan::Pool(p) = &id.credentials else {
        panic!("pool expected")
    };
    assert_eq!((p.name.as_str(), p.warn_below), ("vendor-2025", Some(10)));
    assert_eq!(id.slot.cert_name, "mqtt_cert");
}

#[test]
fn era_b_device_images_equal_a_manifest_naming_the_device_files() {
    let work = tempfile::tempdir().unwrap();
    let (plan, _) = manifest::load(&dir().join("ok_mint.kdl")).unwrap();
    let dev = device("24:0a:c4:12:34:56", "ACME-001000");
    let mine = build::emit(&personalize(&plan, &dev).unwrap(), Jobs::Sequential).unwrap();

    // The user partition as the oracle makes it, from a CSV written by hand from ok_mint.kdl's
    // values for this board.
    let csv = "key,type,encoding,value\n\
        device,namespace,,\n\
        serial,data,string,ACME-001000\n\
        mac,data,string,24:0a:c4:12:34:56\n\
        mac_raw,data,hex2bin,240ac4123456\n\
        label,data,string,{ACME-001000}\n\
        hw_rev,data,u8,3\n\
        calib,data,i32,-42\n\
        big,data,u64,18446744073709551615\n\
        cloud,namespace,,\n\
        endpoint,data,string,a1b2c3.iot.example.com\n\
        blob,data,base64,AAECAw==\n";
    let nvs = oracle_nvs(work.path(), csv, "0x3000");
    let pki = dir().join("pki");
    let manual = format!(
        "espfleet 1\nname \"sensor\"\nmodule \"WROOM-32\" chip=\"esp32\"\nesp-at \"v4.1.1.0\"\n\
         at-customize {{\n    remove \"fatfs\"\n    partition \"device_info\" type=\"data\" subtype=\"nvs\" size=\"12K\" file=\"{}\"\n}}\n\
         certificates {{\n    client-cert \"{}\"\n    client-key \"{}\"\n}}\n",
        nvs.display(),
        pki.join("leaf.crt").display(),
        pki.join("leaf.key").display()
    );
    let path = work.path().join("manual.kdl");
    std::fs::write(&path, manual).unwrap();
    let (manual_plan, _) = manifest::load(&path).unwrap();
    let theirs = build::emit(&manual_plan, Jobs::Sequential).unwrap();
    same_images(&mine, &theirs);
    let user = mine.iter().find(|i| i.name == "device_info").unwrap();
    let placed = plan.at_customize.partition("device_info").unwrap().offset;
    assert_eq!(user.offset, Some(placed));
    assert!(mine.iter().find(|i| i.name == "mfg_nvs").unwrap().secret);
}

#[test]
fn era_a_device_images_equal_a_manifest_naming_the_device_files() {
    let work = tempfile::tempdir().unwrap();
    let (plan, _) = manifest::load(&dir().join("ok_pool_era_a.kdl")).unwrap();
    let dev = device("84:f7:03:00:00:07", "V24-7");
    let mine = build::emit(&personalize(&plan, &dev).unwrap(), Jobs::Sequential).unwrap();
    let pki = dir().join("pki");
    let manual = format!(
        "espfleet 1\nname \"sensor-v24\"\nmodule \"WROOM-32\" chip=\"esp32\"\nesp-at \"v2.4.0.0\"\n\
         certificates {{\n    mqtt-cert \"{}\"\n    mqtt-key \"{}\"\n}}\n",
        pki.join("leaf.crt").display(),
        pki.join("leaf.key").display()
    );
    let path = work.path().join("manual.kdl");
    std::fs::write(&path, manual).unwrap();
    let (manual_plan, _) = manifest::load(&path).unwrap();
    same_images(&mine, &build::emit(&manual_plan, Jobs::Sequential).unwrap());
    assert!(mine.iter().any(|i| i.name == "mqtt_key" && i.secret));
}

#[test]
fn personalizing_is_pure_and_per_device() {
    let (plan, _) = manifest::load(&dir().join("ok_mint.kdl")).unwrap();
    let emit =
        |d: &DeviceIdentity| build::emit(&personalize(&plan, d).unwrap(), Jobs::Parallel).unwrap();
    let a1 = emit(&device("24:0a:c4:12:34:56", "ACME-001000"));
    let a2 = emit(&device("24:0a:c4:12:34:56", "ACME-001000"));
    let b = emit(&device("24:0a:c4:12:34:57", "ACME-001001"));
    same_images(&a1, &a2);
    let get = |v: &[Image], n: &str| v.iter().find(|i| i.name == n).unwrap().bytes.clone();
    assert!(get(&a1, "device_info") != get(&b, "device_info"));
    assert!(get(&a1, "partition-table") == get(&b, "partition-table"));
    // The plan itself is untouched: building it gives no device partition content.
    let base = build::emit(&plan, Jobs::Sequential).unwrap();
    assert!(!base.iter().any(|i| i.name == "device_info"));
}

#[test]
fn identity_comes_from_a_base_with_its_paths_relative_to_the_base() {
    let work = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(dir().join("ok_mint.kdl")).unwrap();
    // The base lives in the fixture folder (its pki/ paths are relative to it); devices elsewhere.
    let base_path = dir().join("ok_mint.kdl");
    let device = format!(
        "espfleet 1\nextends \"{}\"\nname \"sensor-7\"\nmatch mac=\"24:0a:c4:00:00:07\"\n",
        base_path.display()
    );
    std::fs::write(work.path().join("device.kdl"), device).unwrap();
    let (plan, _) = manifest::load(&work.path().join("device.kdl")).unwrap();
    let id = plan.identity.as_ref().expect("inherited identity");
    let CredentialPlan::Mint(m) = &id.credentials else {
        panic!("mint expected")
    };
    assert_eq!(m.ca_cert, dir().join("pki/fleet-ca.crt"));
    assert!(base.contains("identity {"));

    // Two bases with an identity each, and a device that does not decide: a conflict.
    let second = work.path().join("second.kdl");
    std::fs::write(
        &second,
        base.replace("name \"sensor\"\n", "")
            .replace("pki/", &format!("{}/pki/", dir().display())),
    )
    .unwrap();
    let both = format!(
        "espfleet 1\nextends \"{}\" \"{}\"\n",
        base_path.display(),
        second.display()
    );
    std::fs::write(work.path().join("both.kdl"), both).unwrap();
    let err = manifest::load(&work.path().join("both.kdl")).unwrap_err();
    assert!(
        err.errors
            .iter()
            .any(|e| e.kind() == manifest::ErrorKind::OverrideConflict
                && e.message().contains("identity")),
        "{:?}",
        miette::Report::new(err)
    );
}

#[test]
fn debug_output_of_plans_never_shows_key_material() {
    let (plan, _) = manifest::load(&dir().join("ok_mint.kdl")).unwrap();
    let dev = device("24:0a:c4:12:34:56", "ACME-001000");
    let personal = personalize(&plan, &dev).unwrap();
    let shown = format!("{plan:?}\n{personal:?}\n{dev:?}\n{personal:#?}");
    let key = std::fs::read_to_string(dir().join("pki/leaf.key")).unwrap();
    let ca_key = std::fs::read_to_string(dir().join("pki/fleet-ca.key")).unwrap();
    for k in [&key, &ca_key] {
        for line in k.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!shown.contains(line), "key material in Debug output");
        }
        // Nor as the Debug list of its bytes.
        let der = k
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        let first: Vec<String> = der.bytes().take(8).map(|b| b.to_string()).collect();
        assert!(
            !shown.contains(&first.join(", ")),
            "key bytes in Debug output"
        );
    }
    assert!(shown.contains("<redacted>"));
}

#[test]
fn flash_images_are_the_flashed_part_of_the_device_build() {
    let (plan, _) = manifest::load(&dir().join("ok_mint.kdl")).unwrap();
    let dev = device("24:0a:c4:12:34:56", "ACME-001000");
    let all =
        espfleet_compiler::identity::device_images(&plan, &dev, Jobs::Sequential, None, &|_| {})
            .unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = espfleet_compiler::cache::Cache::open(cache_dir.path()).unwrap();
    for round in 0..2 {
        // Round 1 takes every job from the cache round 0 filled.
        let flash = espfleet_compiler::identity::device_flash_images(
            &plan,
            &dev,
            Jobs::Parallel,
            Some(&cache),
        )
        .unwrap();
        let mut want: Vec<&Image> = all.iter().filter(|i| i.offset.is_some()).collect();
        want.sort_by_key(|i| i.offset);
        assert_eq!(flash.len(), want.len(), "round {round}");
        for (a, b) in flash.iter().zip(want) {
            assert_eq!((a.offset, &a.path, a.secret), (b.offset, &b.path, b.secret));
            assert!(a.bytes == b.bytes, "{}", a.path);
        }
    }
}
