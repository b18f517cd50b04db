//! Every NVS golden image in `tests/data/golden/nvs/` (made with esp-idf-nvs-partition-gen 0.3.0,
//! see `tests/data/golden/README.md`) reproduced byte for byte from its CSV, plus decode → dump →
//! generate round trips and encryption round trips on the same images.

mod nvs_support;

use espfleet_compiler::nvs::csv::{CsvInput, generate, parse_size};
use espfleet_compiler::nvs::encrypt::{NvsKey, decrypt_image, encrypt_image};
use espfleet_compiler::nvs::{Options, TrailingPages, Version, decode};

struct Golden {
    name: String,
    csv: CsvInput,
    options: Options,
    expected: Vec<u8>,
}

fn goldens() -> Vec<Golden> {
    let golden = nvs_support::test_data_dir().join("golden");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(golden.join("manifest.json")).unwrap()).unwrap();
    let dir = golden.join("nvs");
    let mut out = Vec::new();
    for g in manifest.as_array().unwrap() {
        if g["kind"] != "nvs" || g["expect_fail"] == true {
            continue;
        }
        let cmd: Vec<&str> = g["cmd"].as_str().unwrap().split_whitespace().collect();
        // python -m esp_idf_nvs_partition_gen generate IN.csv OUT.bin SIZE [--version N]
        assert_eq!(cmd[3], "generate", "{cmd:?}");
        let size = parse_size(cmd[6]).unwrap();
        let version = match cmd
            .iter()
            .position(|a| *a == "--version")
            .map(|i| cmd[i + 1])
        {
            Some("1") => Version::V1,
            _ => Version::V2,
        };
        let input = g["inputs"][0].as_str().unwrap();
        let csv = CsvInput::read(&dir.join(input)).unwrap();
        let expected = std::fs::read(dir.join(g["output"].as_str().unwrap())).unwrap();
        assert_eq!(
            nvs_support::sha256_hex(&expected),
            g["sha256"].as_str().unwrap()
        );
        out.push(Golden {
            name: g["name"].as_str().unwrap().to_owned(),
            csv,
            options: Options {
                version,
                size,
                trailing: TrailingPages::Erased,
            },
            expected,
        });
    }
    assert!(
        out.len() >= 8,
        "expected at least 8 NVS goldens, found {}",
        out.len()
    );
    out
}

#[test]
fn golden_images_are_reproduced_byte_for_byte() {
    let dir = nvs_support::test_data_dir().join("golden/nvs");
    for g in goldens() {
        // `file` rows are relative to the directory the oracle ran in (golden/nvs).
        let image = generate(std::slice::from_ref(&g.csv), &g.options, &dir)
            .unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(image.len(), g.expected.len(), "{}", g.name);
        if image != g.expected {
            let first = image
                .iter()
                .zip(&g.expected)
                .position(|(a, b)| a != b)
                .unwrap();
            panic!("{}: first difference at byte {first:#x}", g.name);
        }
    }
}

#[test]
fn golden_images_dump_and_regenerate_identically() {
    for g in goldens() {
        let decoded = decode(&g.expected);
        assert!(
            decoded.issues.is_empty(),
            "{}: {:?}",
            g.name,
            decoded.issues
        );
        assert_eq!(decoded.version, Some(g.options.version));
        let (csv, warnings) = decoded.to_csv(&g.name);
        assert!(warnings.is_empty(), "{}: {warnings:?}", g.name);
        let input = CsvInput {
            name: "dump.csv".into(),
            text: csv,
        };
        let again = generate(&[input], &g.options, std::path::Path::new("/nonexistent")).unwrap();
        assert!(
            again == g.expected,
            "{}: dump does not regenerate the image",
            g.name
        );
    }
}

#[test]
fn golden_images_encrypt_and_decrypt_back() {
    let key = NvsKey::from_keys_file(&(0u8..64).collect::<Vec<_>>()).unwrap();
    for g in goldens() {
        let mut enc = g.expected.clone();
        encrypt_image(&mut enc, &key).unwrap();
        assert_ne!(enc, g.expected);
        assert_eq!(decrypt_image(&enc, &key).unwrap(), g.expected, "{}", g.name);
    }
}
