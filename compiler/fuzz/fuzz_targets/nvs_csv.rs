#![no_main]
//! Arbitrary text as an NVS generator CSV (`espfleet nvs generate`), under every option the
//! first byte selects: reading, conversion and encoding must report errors, never panic,
//! abort or allocate without bound. `file` rows resolve under a directory that does not
//! exist, so no real file is read.

use espfleet_compiler::nvs::csv::{CsvInput, generate, parse_size, read_records};
use espfleet_compiler::nvs::{Options, TrailingPages, Version};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = read_records(text);
    // The first line doubles as a SIZE argument, as `nvs generate` reads it.
    if let Some(line) = text.lines().next() {
        let _ = parse_size(line);
    }
    let sizes = [0x1000, 0x2000, 0x3000, 0x6000, 0x20000];
    let options = Options {
        version: if selector & 1 == 0 {
            Version::V2
        } else {
            Version::V1
        },
        size: sizes[usize::from(selector >> 1) % sizes.len()],
        trailing: if selector & 0x80 == 0 {
            TrailingPages::Erased
        } else {
            TrailingPages::Legacy
        },
    };
    let input = CsvInput {
        name: "fuzz.csv".into(),
        text: text.to_owned(),
    };
    if let Ok(image) = generate(
        &[input],
        &options,
        std::path::Path::new("/nonexistent-espfleet-fuzz"),
    ) {
        assert_eq!(image.len() as u64 % 4096, 0);
    }
});
