//! Every partition-table golden case in `tests/data/golden/partitions/` (made with
//! gen_esp32part.py 1.5, see `tests/data/golden/README.md`), in both directions:
//! CSV → binary byte for byte, and binary → CSV → binary as the identity.

use std::path::PathBuf;

use espfleet_compiler::partition_table::{PartitionTable, TableOptions, parse_csv};

/// The golden vectors in the repository (`<repo>/tests/data/golden`).
fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/golden")
}

struct Case {
    name: String,
    csv: PathBuf,
    bin: PathBuf,
    opts: TableOptions,
}

/// Reads `manifest.json` and turns each partition command line into [`TableOptions`].
fn cases() -> Vec<Case> {
    let dir = golden_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.json"))
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.join("manifest.json").display()));
    let entries: Vec<serde_json::Value> = serde_json::from_str(&manifest).unwrap();
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| e["kind"] == "partitions") {
        assert_eq!(e["rc"], 0, "only successful oracle runs are golden outputs");
        let cmd = e["cmd"].as_str().unwrap();
        let mut opts = TableOptions::default();
        let mut words = cmd.split_whitespace().skip(2); // python gen_esp32part.py
        let mut positional = Vec::new();
        while let Some(w) = words.next() {
            match w {
                "-q" => {}
                "--disable-md5sum" => opts.md5 = false,
                "--offset" => {
                    let v = words.next().unwrap();
                    opts.table_offset =
                        u32::from_str_radix(v.trim_start_matches("0x"), 16).unwrap();
                }
                "--flash-size" => {
                    let v = words.next().unwrap();
                    opts.flash_size = Some(v.trim_end_matches("MB").parse::<u64>().unwrap() << 20);
                }
                other if other.starts_with('-') => {
                    panic!("golden case uses an option this test does not know: {other}")
                }
                other => positional.push(other.to_owned()),
            }
        }
        let sub = dir.join(e["cwd"].as_str().unwrap());
        out.push(Case {
            name: e["name"].as_str().unwrap().to_owned(),
            csv: sub.join(&positional[0]),
            bin: sub.join(&positional[1]),
            opts,
        });
    }
    assert_eq!(out.len(), 8, "expected the eight pt_* golden cases");
    out
}

#[test]
fn csv_to_binary_matches_every_golden_case() {
    for case in cases() {
        let text = std::fs::read_to_string(&case.csv).unwrap();
        let expected = std::fs::read(&case.bin).unwrap();
        let table = parse_csv(&text, &case.opts).unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        let bytes = table.to_bytes(case.opts.md5).unwrap();
        assert_eq!(bytes.len(), 0xC00, "{}", case.name);
        assert!(
            bytes == expected,
            "{}: binary differs from gen_esp32part.py's",
            case.name
        );
    }
}

#[test]
fn binary_to_csv_to_binary_is_the_identity_for_every_golden_case() {
    for case in cases() {
        let expected = std::fs::read(&case.bin).unwrap();
        let decoded = PartitionTable::decode(&expected, case.opts.md5).unwrap();
        assert!(decoded.warnings.is_empty(), "{}", case.name);
        decoded
            .table
            .validate(&case.opts)
            .unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        let csv = decoded.table.to_csv();
        let again =
            parse_csv(&csv, &case.opts).unwrap_or_else(|e| panic!("{}: {e:?}\n{csv}", case.name));
        assert_eq!(again, decoded.table, "{}", case.name);
        assert!(
            again.to_bytes(case.opts.md5).unwrap() == expected,
            "{}",
            case.name
        );
    }
}

/// The CSV printed for a golden binary, checked by hand against the rules of `docs/formats/partition-table.md` §1.4
/// (keywords where known, `0x…` offsets, `NM`/`NK` sizes, flags joined with `:`).
#[test]
fn binary_to_csv_text_follows_the_tool() {
    let dir = golden_dir().join("partitions");
    let bin = std::fs::read(dir.join("pt_06_flags_custom_autooffset.bin")).unwrap();
    let csv = PartitionTable::from_bytes(&bin).unwrap().to_csv();
    let expected = "\
# ESP-IDF Partition Table
# Name, Type, SubType, Offset, Size, Flags
nvs,data,nvs,0x9000,24K,encrypted
nvs_keys,data,nvs_keys,0xf000,4K,encrypted
fctry,data,nvs,0x10000,4K,readonly
phy_init,data,phy,0x11000,2K,
custom_a,64,1,0x12000,12K,
abcdefghijklmnop,64,127,0x15000,4K,encrypted:readonly
c15_name_xxxxxx,254,254,0x16000,4K,
factory,app,factory,0x20000,1M,encrypted
";
    assert_eq!(csv, expected);
}

/// The `esp-idf-part` crate agrees on ordinary ESP-IDF tables (the ones it handles; see the
/// mismatch table in `docs/formats/partition-table.md` §8 for the ones it does not).
#[test]
fn esp_idf_part_crate_agrees_on_ordinary_tables() {
    let dir = golden_dir().join("partitions");
    for name in [
        "pt_01_idf_two_ota",
        "pt_02_explicit_mixed_units",
        "pt_03_esp_at_partitions",
    ] {
        let mut text = std::fs::read_to_string(dir.join(format!("{name}.csv"))).unwrap();
        // esp-idf-part does not read a K suffix on a hex number (`docs/formats/partition-table.md` §8); same size.
        text = text.replace("0x40K", "64K");
        let ours = parse_csv(&text, &TableOptions::default())
            .unwrap()
            .to_bytes(true)
            .unwrap();
        let theirs = esp_idf_part::PartitionTable::try_from_str(text.as_str())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"))
            .to_bin()
            .unwrap();
        assert!(
            ours == theirs,
            "{name}: esp-idf-part produced different bytes"
        );
    }
}
