#![no_main]
//! Arbitrary bytes into the binary decoder (and, as text, into the CSV reader): whatever
//! decodes must re-encode, print as CSV and read back without panicking, and a CSV round trip
//! that succeeds must give the same bytes.

use espfleet_compiler::partition_table::{
    PartitionTable, TableOptions, decode_csv_text, parse_csv,
};

/// Names that survive the CSV unchanged (the tool's CSV has no quoting).
fn csv_safe(name: &str) -> bool {
    name.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)) == name
        && !name.starts_with('#')
        && !name.contains([',', '$'])
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}'))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The same bytes as CSV text (the CLI's other direction): any outcome but a panic, and a
    // table that lays out must encode, decode and compare equal.
    if let Ok(text) = decode_csv_text(data) {
        for md5 in [true, false] {
            let opts = TableOptions {
                md5,
                ..TableOptions::default()
            };
            if let Ok(table) = parse_csv(&text, &opts) {
                let bytes = table.to_bytes(md5).expect("a laid-out table fits");
                let back = PartitionTable::decode(&bytes, md5)
                    .expect("our own binary must decode")
                    .table;
                assert_eq!(back.partitions().len(), table.partitions().len());
                let _ = table.to_csv();
            }
        }
    }
    for md5 in [true, false] {
        let Ok(decoded) = PartitionTable::decode(data, md5) else {
            continue;
        };
        let table = decoded.table;
        let _ = table.validate(&TableOptions::default());
        let _ = table.warnings(&Default::default());
        let bytes = table.to_bytes(md5);
        let csv = table.to_csv();
        let opts = TableOptions {
            verify: false,
            md5,
            ..TableOptions::default()
        };
        let reparsed = parse_csv(&csv, &opts);
        if let (Ok(bytes), Ok(reparsed)) = (&bytes, &reparsed) {
            let plain = table
                .partitions()
                .iter()
                .all(|p| csv_safe(&p.name) && p.ty != 2 && p.ty != 3);
            if plain {
                assert_eq!(
                    reparsed.to_bytes(md5).as_ref(),
                    Ok(bytes),
                    "CSV round trip changed the table:\n{csv}"
                );
            }
        }
        if let Ok(bytes) = &bytes {
            let again = PartitionTable::decode(bytes, md5).expect("our own binary must decode");
            assert_eq!(again.table, table);
        }
    }
});
