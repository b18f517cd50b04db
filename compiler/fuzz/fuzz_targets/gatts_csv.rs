#![no_main]
//! Arbitrary text as a GATTS CSV, through every reader a manifest's `gatts` file meets: the
//! row checker (`ble_data::check`), both eras' parsers, the era A JSON table and its binary,
//! the era B `cfg` strings, and (for one input in 16) the whole manifest path: a manifest
//! naming the CSV, its diagnostics rendered. None may panic; an era A binary that encodes must decode.

use std::sync::OnceLock;

use espfleet_compiler::esp_at::ble_data::{self, check};

fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("espfleet-fuzz-gatts-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("m.kdl"),
            "espfleet 1\nmodule \"WROOM-32\" chip=\"esp32\"\nesp-at \"v4.1.1.0\"\nble {\n    gatts \"g.csv\"\n}\n",
        )
        .unwrap();
        d
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = check::check_csv(text);
    if let Ok(rows) = ble_data::parse_gatts_csv(text) {
        let _ = ble_data::cfg_entries(&rows);
    }
    if let Ok(csv) = ble_data::parse_era_a_csv(text) {
        if let Ok(table) = ble_data::service_table(&csv) {
            if let Ok(bin) = ble_data::encode_bin(&table) {
                assert!(ble_data::decode_bin(&bin).is_ok());
            }
        }
    }
    // Through a manifest, as `espfleet check` reads it (errors are expected; panics not). The
    // whole resolver is ~100 times slower than the readers, so one input in 16 takes this path
    // (chosen from the bytes, so a crash reproduces).
    if data.iter().fold(0u8, |a, b| a.wrapping_add(*b)) % 16 != 0 {
        return;
    }
    let dir = scratch();
    std::fs::write(dir.join("g.csv"), data).unwrap();
    if let Err(d) = espfleet_compiler::manifest::load(&dir.join("m.kdl")) {
        let mut out = String::new();
        let _ = miette::GraphicalReportHandler::new().render_report(&mut out, &d);
        std::hint::black_box(out);
    }
});
