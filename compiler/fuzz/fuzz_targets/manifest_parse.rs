#![no_main]
//! Arbitrary text as a manifest: parsing and resolving must report diagnostics, never panic.
//! The manifest "lives" in a directory that does not exist, so relative paths it names resolve
//! to nothing and no real file is read or written.

use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let path = Path::new("/nonexistent-espfleet-fuzz/manifest.kdl");
        match espfleet_compiler::manifest::load_text(path, text) {
            Ok((plan, _)) => {
                std::hint::black_box(plan.partition_table.to_csv());
            }
            Err(diags) => {
                // Rendering touches every span: a span outside the text would panic here.
                let mut out = String::new();
                let _ = miette::GraphicalReportHandler::new().render_report(&mut out, &diags);
                std::hint::black_box(out);
            }
        }
    }
});
