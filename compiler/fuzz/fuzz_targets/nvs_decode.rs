#![no_main]
//! Arbitrary bytes into the NVS decoder, the dump CSV writer, both decrypt paths, and (when
//! the dump is clean) back through the CSV generator: nothing may panic.

use espfleet_compiler::nvs::csv::{CsvInput, generate};
use espfleet_compiler::nvs::encrypt::{NvsKey, decrypt_image, decrypt_written_slots};
use espfleet_compiler::nvs::{Options, decode};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let decoded = decode(data);
    let (csv, warnings) = decoded.to_csv("fuzz");
    let _ = decoded.to_json();
    if warnings.is_empty() && !decoded.items.is_empty() {
        let options = Options {
            version: decoded.version.unwrap_or_default(),
            ..Options::new(0x3000)
        };
        let _ = generate(
            &[CsvInput {
                name: "dump".into(),
                text: csv,
            }],
            &options,
            std::path::Path::new("/nonexistent"),
        );
    }
    if data.len() <= 3 * 4096 {
        let key = NvsKey::from_hmac_key(b"fuzz");
        let _ = decrypt_written_slots(data, &key);
        let _ = decrypt_image(data, &key);
    }
});
