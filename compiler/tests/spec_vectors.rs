//! The test vectors of `docs/formats/esp-at-images.md` §12 (SHA-256 of the outputs of ESP-AT's
//! own generators on its default data), reproduced through the whole pipeline: example manifest
//! → resolve → emit. The hashes are copied from that section by hand.

use std::path::Path;

use espfleet_compiler::build::{self, Image, Jobs};
use espfleet_compiler::manifest;
use sha2::{Digest as _, Sha256};

fn build(rel: &str) -> Vec<Image> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let (plan, _) =
        manifest::load(&path).unwrap_or_else(|d| panic!("{rel}: {:?}", miette::Report::new(d)));
    build::emit(&plan, Jobs::Parallel)
        .unwrap_or_else(|d| panic!("{rel}: {:?}", miette::Report::new(d)))
}

fn sha(images: &[Image], path: &str) -> String {
    let img = images.iter().find(|i| i.path == path).unwrap_or_else(|| {
        panic!(
            "no {path} in {:?}",
            images.iter().map(|i| &i.path).collect::<Vec<_>>()
        )
    });
    hex::encode(Sha256::digest(&img.bytes))
}

const PARTITION_TABLE_ESP32_4MB: &str =
    "b3fe625d47efb78fc7e6e7099825029d420e88eb40dc76e41215dde85bfaf223";

#[test]
fn era_a_v2_4_default_wroom_32() {
    let img = build("../manifests/examples/wroom-32-v2.4.kdl");
    let want = [
        (
            "customized_partitions/factory_param.bin",
            "f15392744df7ccc37eaef71c96e8486c8fbcf0802dbc8e5e8a8d016e03b8ae47",
        ),
        (
            "customized_partitions/ble_data.bin",
            "15b4c46a22f1a583d962511569adede593523871bb6065481846efd8af92c4c2",
        ),
        (
            "at_customize.bin",
            "e1f8c48fdf180be848f1a29d3e2bf666381c20348d540c1aed3819a0a89695a3",
        ),
        (
            "partition_table/partition-table.bin",
            PARTITION_TABLE_ESP32_4MB,
        ),
        (
            "customized_partitions/server_cert.bin",
            "67be7ca2348ab803d6842caef27df575605e4f93e54088d1e9e97b33f2f911be",
        ),
        (
            "customized_partitions/server_key.bin",
            "5b4729321b6b04fc29f8c7a8588a7a0dcb6615de81dda615226456b22b054eee",
        ),
        (
            "customized_partitions/server_ca.bin",
            "16adf20f8b91aab2cb6f450f956dc04d7763dcf64b05861009f18dfa69b27a6e",
        ),
        (
            "customized_partitions/client_cert.bin",
            "ce1b0882435cd1e9dbabae230ff19baf974bf149258b8d0230c3bb16a86b9b56",
        ),
        (
            "customized_partitions/client_key.bin",
            "5c1a5245a38d87e7b1b45bfdb6d3e103db64055d46d6e7394803908dd4818449",
        ),
        (
            "customized_partitions/client_ca.bin",
            "592e7f4b3568117ac5f611c9b829728f3dfb74ed585080b024edac0279a39d1c",
        ),
        (
            "customized_partitions/mqtt_cert.bin",
            "ce741d638dcf2548caab231ed4a7d05c4fd91fdd1ab1b70ce434e0ef0647a63c",
        ),
        (
            "customized_partitions/mqtt_key.bin",
            "1fc184ca699848cf127196080c6f7e5dd330e8b5f0060bcf02660eb722383509",
        ),
        (
            "customized_partitions/mqtt_ca.bin",
            "2d785767f5c47f70c97daf639a1c344c0830552a539b26a5dd03ececbd247852",
        ),
    ];
    for (path, hash) in want {
        assert_eq!(sha(&img, path), hash, "{path}");
    }
}

#[test]
fn era_a_v3_0_typed_pki_items() {
    let img = build("../manifests/examples/wroom-32-v3.0.kdl");
    let want = [
        (
            "customized_partitions/server_cert.bin",
            "67be7ca2348ab803d6842caef27df575605e4f93e54088d1e9e97b33f2f911be",
        ),
        (
            "customized_partitions/server_key.bin",
            "c2e5bc16279cf760dba66dd7a4f6928a34975e9588df79f0ad062804587b9e6d",
        ),
        (
            "customized_partitions/server_ca.bin",
            "0e3e0d09ca1ffa28e3ddde95c2c6f3d6db7c612d2f520b0f37016df3f02f5ec9",
        ),
        (
            "customized_partitions/client_cert.bin",
            "ce1b0882435cd1e9dbabae230ff19baf974bf149258b8d0230c3bb16a86b9b56",
        ),
        (
            "customized_partitions/client_key.bin",
            "d0140d4377dfbd0d19049999b2a204df0e4466449cb62a53666d31bf823768a9",
        ),
        (
            "customized_partitions/client_ca.bin",
            "2ee08da549c06f876657d57db8b9e5695c7e27a7842e1e8c5be42957a48082a2",
        ),
        (
            "customized_partitions/mqtt_cert.bin",
            "ce741d638dcf2548caab231ed4a7d05c4fd91fdd1ab1b70ce434e0ef0647a63c",
        ),
        (
            "customized_partitions/mqtt_key.bin",
            "8bad4569a093a00a2150522493b34a695f0435324aafd556df9fc4a7f2e12453",
        ),
        (
            "customized_partitions/mqtt_ca.bin",
            "8b01821ebeb192a018e051d20879b3dd853347cc976f14469ae46ef14c086ad0",
        ),
        (
            "customized_partitions/factory_param.bin",
            "f15392744df7ccc37eaef71c96e8486c8fbcf0802dbc8e5e8a8d016e03b8ae47",
        ),
    ];
    for (path, hash) in want {
        assert_eq!(sha(&img, path), hash, "{path}");
    }
}

#[test]
fn era_b_master_default_wroom_32() {
    let img = build("../manifests/examples/wroom-32.kdl");
    assert_eq!(
        sha(&img, "at_customize.bin"),
        "fa57a9cfd8744e59441f52c03db933fb89ba89c11a8557be91832384adec3543"
    );
    assert_eq!(
        sha(&img, "partition_table/partition-table.bin"),
        PARTITION_TABLE_ESP32_4MB
    );
    // esp-idf-nvs-partition-gen ≥ 0.1.7 (the last data page stays Active).
    assert_eq!(
        sha(&img, "customized_partitions/mfg_nvs.bin"),
        "42d73ef6fdbc0662e3c2caaae073b47f527c6a4e1cf68b41ae70195cb6a83ec2"
    );
}

#[test]
fn era_b_master_default_wroom_32_legacy_pages() {
    let img = build("tests/data/manifests/ok/wroom-32-legacy-pages.kdl");
    // ESP-IDF v5.0 in-tree generator, esp-idf-nvs-partition-gen 0.1.6, esp-at tools/at.py.
    assert_eq!(
        sha(&img, "customized_partitions/mfg_nvs.bin"),
        "2201ffa8e93e0870cbf8438190f5d8fd71b990f7390460cc6eab5103ad0a8fd6"
    );
}

#[test]
fn files_with_private_keys_are_marked_secret() {
    let img = build("../manifests/examples/wroom-32.kdl");
    let nvs = img.iter().find(|i| i.name == "mfg_nvs").unwrap();
    assert!(
        nvs.secret,
        "mfg_nvs holds server.key and must be written 0600"
    );
    let table = img.iter().find(|i| i.name == "at_customize").unwrap();
    assert!(!table.secret);
}
