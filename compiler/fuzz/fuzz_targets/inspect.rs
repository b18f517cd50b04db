#![no_main]
//! Arbitrary bytes into `espfleet inspect`'s recogniser and every decoder it can be forced to
//! use (`--kind`): none may panic, and every report renders as text and JSON.

use espfleet_compiler::inspect::{self, Kind};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let detected = inspect::detect(data);
    match inspect::inspect(data, None) {
        Ok(r) => {
            assert_eq!(Some(r.kind), detected);
            std::hint::black_box(serde_json::to_string(&r.json).unwrap());
        }
        Err(e) => {
            std::hint::black_box(e.to_string());
        }
    }
    for kind in Kind::ALL {
        if let Ok(r) = inspect::inspect(data, Some(kind)) {
            std::hint::black_box((r.text.len(), serde_json::to_string(&r.json).unwrap()));
        }
    }
    let _ = inspect::merged_layout(data);
});
