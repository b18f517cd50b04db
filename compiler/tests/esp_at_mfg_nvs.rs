//! Era B `mfg_nvs`: the entry list for ESP-AT master defaults (PLATFORM_ESP32 / WROOM-32)
//! renders to exactly the CSV of `docs/formats/esp-at-images.md` §12.3; that CSV, fed to the PyPI NVS generator (0.3.0,
//! the "new" trailing-page form), gives that section's image hash; and our own NVS encoder gives
//! both hashes (legacy and new trailing pages) from the same entry list.

mod esp_at_support;

use std::collections::BTreeSet;

use esp_at_support::{data, run_oracle, sha};
use espfleet_compiler::esp_at::Release;
use espfleet_compiler::esp_at::mfg_nvs::at_parse_size;
use espfleet_compiler::esp_at::mfg_nvs::{MfgNvs, MfgValue};
use espfleet_compiler::release::NvsPages;

/// The Kconfig symbols `module_esp32_default` enables on master (`docs/formats/esp-at-images.md` §8.1).
const MASTER_DEFAULTS: &[&str] = &[
    "AT_BLE_COMMAND_SUPPORT",
    "AT_SSL_SERVER_CLIENT_AUTH_SERVER",
    "AT_SSL_SERVER_SERVER_AUTH_CLIENT",
    "AT_SSL_CLIENT_SERVER_AUTH_CLIENT",
    "AT_SSL_CLIENT_CLIENT_AUTH_SERVER",
    "AT_MQTT_BROKER_AUTH_CLIENT",
    "AT_MQTT_CLIENT_AUTH_BROKER",
    "AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT",
];

fn master_wroom32() -> (MfgNvs, String) {
    let raw = data().join("raw_data_master");
    let enabled: BTreeSet<String> = MASTER_DEFAULTS.iter().map(|s| (*s).to_owned()).collect();
    let nvs = MfgNvs::from_raw_data_dir(
        &raw,
        "master".parse::<Release>().unwrap(),
        &enabled,
        "PLATFORM_ESP32",
        "WROOM-32",
        false,
    )
    .unwrap();
    (nvs, raw.display().to_string())
}

#[test]
fn master_defaults_render_the_spec_csv() {
    let (nvs, prefix) = master_wroom32();
    let csv = nvs.to_csv().replace(&prefix, "<P>");
    let want = fs_err::read_to_string(data().join("mfg_nvs_master_wroom32.csv")).unwrap();
    assert_eq!(csv, want);
    let names: Vec<_> = nvs.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names.len(), 11);
    assert_eq!(names[9..], ["factory_param", "ble_data"]);
}

#[test]
fn sys_store_only_from_v4_1() {
    let raw = data().join("raw_data_master");
    let enabled: BTreeSet<String> = ["AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT".to_owned()].into();
    let nvs = MfgNvs::from_raw_data_dir(
        &raw,
        "master".parse::<Release>().unwrap(),
        &enabled,
        "PLATFORM_ESP32",
        "ESP32-SDIO",
        false,
    )
    .unwrap();
    let fp = &nvs.namespaces[0];
    assert_eq!(fp.entries.last().unwrap().key, "sys_store");
    assert_eq!(
        fp.entries[6].value,
        MfgValue::I8(-1),
        "SDIO modules have no AT UART"
    );
}

#[test]
fn master_defaults_csv_gives_the_spec_hash_with_the_pypi_generator() {
    let (nvs, _) = master_wroom32();
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("mfg_nvs.csv"), nvs.to_csv()).unwrap();
    run_oracle(
        dir.path(),
        &[
            "-m",
            "esp_idf_nvs_partition_gen",
            "generate",
            "mfg_nvs.csv",
            "mfg_nvs.bin",
            "114688",
        ],
    );
    let bin = fs_err::read(dir.path().join("mfg_nvs.bin")).unwrap();
    assert_eq!(bin.len(), 114_688);
    assert_eq!(
        sha(&bin),
        "42d73ef6fdbc0662e3c2caaae073b47f527c6a4e1cf68b41ae70195cb6a83ec2"
    );
}

#[test]
fn master_defaults_encode_natively_to_both_spec_hashes() {
    let (nvs, _) = master_wroom32();
    let size = at_parse_size("112K").unwrap();
    let legacy = nvs.encode(size, NvsPages::Legacy).unwrap();
    assert_eq!(legacy.len(), 114_688);
    assert_eq!(
        sha(&legacy),
        "2201ffa8e93e0870cbf8438190f5d8fd71b990f7390460cc6eab5103ad0a8fd6"
    );
    let active = nvs.encode(size, NvsPages::Active).unwrap();
    assert_eq!(
        sha(&active),
        "42d73ef6fdbc0662e3c2caaae073b47f527c6a4e1cf68b41ae70195cb6a83ec2"
    );
    // The release's default form: master → Active.
    let master: Release = "master".parse().unwrap();
    assert_eq!(master.default_nvs_pages(), NvsPages::Active);
}

#[test]
fn decode_round_trips_the_entry_list() {
    let (nvs, _) = master_wroom32();
    let size = at_parse_size("112K").unwrap();
    for pages in [NvsPages::Legacy, NvsPages::Active] {
        let decoded = MfgNvs::decode(&nvs.encode(size, pages).unwrap()).unwrap();
        // The image keeps everything but file paths.
        let mut expected = nvs.clone();
        for ns in &mut expected.namespaces {
            for e in &mut ns.entries {
                if let MfgValue::File { path, .. } = &mut e.value {
                    *path = std::path::PathBuf::new();
                }
            }
        }
        assert_eq!(decoded, expected);
    }
}
