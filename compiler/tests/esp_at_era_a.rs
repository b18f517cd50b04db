//! Era A formats against the SHA-256 test vectors of `docs/formats/esp-at-images.md` §12.1 (made by running
//! ESP-AT v2.4.0.0's own generators on its default raw data), plus decode round trips.

use std::path::{Path, PathBuf};

use espfleet_compiler::esp_at::Release;
use espfleet_compiler::esp_at::ble_data;
use espfleet_compiler::esp_at::factory_param::{self, FactoryParam};
use espfleet_compiler::esp_at::pki::{self, ItemKind};
use sha2::{Digest as _, Sha256};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/esp_at")
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn read(rel: &str) -> String {
    fs_err::read_to_string(data().join(rel)).unwrap()
}

#[test]
fn factory_param_wroom32_matches_spec_vector() {
    let g = factory_param::generate(
        &read("raw_data_v2.4.0.0/factory_param/factory_param_type.csv"),
        &read("raw_data_v2.4.0.0/factory_param/factory_param_data.csv"),
        "PLATFORM_ESP32",
        "WROOM-32",
    )
    .unwrap();
    assert!(g.matched);
    assert_eq!(g.bin.len(), 4096);
    assert_eq!(
        sha(&g.bin),
        "f15392744df7ccc37eaef71c96e8486c8fbcf0802dbc8e5e8a8d016e03b8ae47"
    );

    // The typed record decodes to the byte map of `docs/formats/esp-at-images.md` §4.3 and encodes back identically.
    let p = FactoryParam::decode(&g.bin).unwrap();
    assert_eq!(
        p,
        FactoryParam {
            version: 3,
            reserved1: 0,
            tx_max_power: 78,
            uart_port: 1,
            start_channel: 1,
            channel_num: 13,
            country_code: "CN".into(),
            uart_baudrate: 115_200,
            uart_tx_pin: 17,
            uart_rx_pin: 16,
            uart_cts_pin: 15,
            uart_rts_pin: 14,
            tx_control_pin: -1,
            rx_control_pin: -1,
            reserved2: [0xFF, 0xFF],
            platform: "PLATFORM_ESP32".into(),
            module_name: "WROOM-32".into(),
        }
    );
    assert_eq!(p.encode().unwrap(), g.bin);
}

#[test]
fn factory_param_every_module_round_trips() {
    let types = read("raw_data_v2.4.0.0/factory_param/factory_param_type.csv");
    let data = read("raw_data_v2.4.0.0/factory_param/factory_param_data.csv");
    for line in data.lines().skip(1) {
        let mut f = line.split(',');
        let (platform, module) = (f.next().unwrap(), f.next().unwrap());
        let g = factory_param::generate(&types, &data, platform, module).unwrap();
        assert!(g.matched, "{platform}/{module}");
        let p = FactoryParam::decode(&g.bin).unwrap();
        assert_eq!(p.module_name, module);
        assert_eq!(p.encode().unwrap(), g.bin, "{platform}/{module}");
    }
}

#[test]
fn ble_data_example_matches_spec_vector() {
    let csv = ble_data::parse_era_a_csv(&read("raw_data_v2.4.0.0/ble_data/example.csv")).unwrap();
    let table = ble_data::service_table(&csv).unwrap();
    let bin = ble_data::encode_bin(&table).unwrap();
    assert_eq!(bin.len(), 6487);
    assert_eq!(&bin[..17], b"\x53\x19\x27\x95{\"Service\": [");
    assert_eq!(
        sha(&bin),
        "15b4c46a22f1a583d962511569adede593523871bb6065481846efd8af92c4c2"
    );
    assert_eq!(ble_data::decode_bin(&bin).unwrap(), table);
    // A whole partition (erased tail) decodes too.
    let mut part = bin.clone();
    part.resize(12 * 1024, 0xFF);
    assert_eq!(ble_data::decode_bin(&part).unwrap(), table);
}

#[test]
fn ble_data_tools_example_converts() {
    // tools/GattServiceExample.csv has 128-bit UUIDs and an odd-length value (`8`).
    let csv = ble_data::parse_era_a_csv(&read("tools_v2.4.0.0/GattServiceExample.csv")).unwrap();
    let table = ble_data::service_table(&csv).unwrap();
    let json = table.to_json();
    assert!(
        json.contains(r#""uuid": "ED2B4E3B2820492F9507DF165285E831""#),
        "{json}"
    );
    assert!(json.contains(r#""value": "08""#), "{json}");
    let bin = ble_data::encode_bin(&table).unwrap();
    assert_eq!(ble_data::decode_bin(&bin).unwrap(), table);
}

/// (partition, size, sha256 v2.2.0.0–v2.4.0.0, sha256 v2.4.1.0–v3.0.0.0) from `docs/formats/esp-at-images.md` §12.1.
const PKI_VECTORS: &[(&str, usize, &str, &str)] = &[
    (
        "server_cert",
        1176,
        "67be7ca2348ab803d6842caef27df575605e4f93e54088d1e9e97b33f2f911be",
        "67be7ca2348ab803d6842caef27df575605e4f93e54088d1e9e97b33f2f911be",
    ),
    (
        "server_key",
        1688,
        "5b4729321b6b04fc29f8c7a8588a7a0dcb6615de81dda615226456b22b054eee",
        "c2e5bc16279cf760dba66dd7a4f6928a34975e9588df79f0ad062804587b9e6d",
    ),
    (
        "server_ca",
        1176,
        "16adf20f8b91aab2cb6f450f956dc04d7763dcf64b05861009f18dfa69b27a6e",
        "0e3e0d09ca1ffa28e3ddde95c2c6f3d6db7c612d2f520b0f37016df3f02f5ec9",
    ),
    (
        "client_cert",
        2344,
        "ce1b0882435cd1e9dbabae230ff19baf974bf149258b8d0230c3bb16a86b9b56",
        "ce1b0882435cd1e9dbabae230ff19baf974bf149258b8d0230c3bb16a86b9b56",
    ),
    (
        "client_key",
        3368,
        "5c1a5245a38d87e7b1b45bfdb6d3e103db64055d46d6e7394803908dd4818449",
        "d0140d4377dfbd0d19049999b2a204df0e4466449cb62a53666d31bf823768a9",
    ),
    (
        "client_ca",
        2344,
        "592e7f4b3568117ac5f611c9b829728f3dfb74ed585080b024edac0279a39d1c",
        "2ee08da549c06f876657d57db8b9e5695c7e27a7842e1e8c5be42957a48082a2",
    ),
    (
        "mqtt_cert",
        1168,
        "ce741d638dcf2548caab231ed4a7d05c4fd91fdd1ab1b70ce434e0ef0647a63c",
        "ce741d638dcf2548caab231ed4a7d05c4fd91fdd1ab1b70ce434e0ef0647a63c",
    ),
    (
        "mqtt_key",
        1692,
        "1fc184ca699848cf127196080c6f7e5dd330e8b5f0060bcf02660eb722383509",
        "8bad4569a093a00a2150522493b34a695f0435324aafd556df9fc4a7f2e12453",
    ),
    (
        "mqtt_ca",
        1172,
        "2d785767f5c47f70c97daf639a1c344c0830552a539b26a5dd03ececbd247852",
        "8b01821ebeb192a018e051d20879b3dd853347cc976f14469ae46ef14c086ad0",
    ),
];

#[test]
fn pki_bins_match_spec_vectors_in_both_type_byte_eras() {
    let v240: Release = "v2.4.0.0".parse().unwrap();
    let v241: Release = "v2.4.1.0".parse().unwrap();
    for &(partition, size, all_cert, by_kind) in PKI_VECTORS {
        let dir = data().join("raw_data_v2.4.0.0").join(partition);
        for (release, want) in [(v240, all_cert), (v241, by_kind)] {
            let bin = pki::build_partition_from_dir(partition, &dir, release).unwrap();
            assert_eq!(bin.len(), size, "{partition} {release}");
            assert_eq!(sha(&bin), want, "{partition} {release}");
            let items = pki::decode(&bin).unwrap();
            assert_eq!(pki::encode(&items).unwrap(), bin, "{partition} {release}");
            let expect_kind = if release == v240 {
                ItemKind::Cert
            } else {
                ItemKind::for_partition(partition).unwrap()
            };
            assert!(items.iter().all(|i| i.kind == expect_kind));
        }
    }
}

#[test]
fn pki_server_key_header_matches_spec_example() {
    let bin = pki::build_partition_from_dir(
        "server_key",
        &data().join("raw_data_v2.4.0.0/server_key"),
        "v2.4.1.0".parse().unwrap(),
    )
    .unwrap();
    assert_eq!(
        &bin[..14],
        b"\xF1\xF1\x01\x00\x90\x06\x00\x00\x03\x00\x8B\x06\x2D\x2D"
    );
    assert_eq!(&bin[bin.len() - 3..], b"\x2D\x0A\xFF");
}

#[test]
fn pki_describe_lists_items_without_contents() {
    let bin = pki::build_partition_from_dir(
        "client_key",
        &data().join("raw_data_v2.4.0.0/client_key"),
        "v2.4.1.0".parse().unwrap(),
    )
    .unwrap();
    let text = pki::describe(&pki::decode(&bin).unwrap());
    assert_eq!(
        text,
        "PKI container: 2 item(s)\n  [0] type 0x03 (key) id 0 length 1675 pad 1 PEM RSA PRIVATE KEY\n  [1] type 0x03 (key) id 1 length 1675 pad 1 PEM RSA PRIVATE KEY\n"
    );
}
