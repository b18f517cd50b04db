//! Errors: stable codes, the CSV line or entry index, and help text (`docs/formats/nvs.md` §7 and
//! the task's list: key too long, value out of range, unknown encoding, missing file, data
//! larger than the partition, bad sizes).

use espfleet_compiler::nvs::csv::{CsvInput, generate, parse_size};
use espfleet_compiler::nvs::{NvsBuilder, NvsEntry, NvsError, Options, Value, encode};
use miette::Diagnostic as _;

fn gen_err(csv: &str, size: u64) -> NvsError {
    let input = CsvInput {
        name: "in.csv".into(),
        text: csv.into(),
    };
    generate(
        &[input],
        &Options::new(size),
        std::path::Path::new("/nonexistent-dir"),
    )
    .unwrap_err()
}

fn code(e: &NvsError) -> String {
    e.code().unwrap().to_string()
}

const H: &str = "key,type,encoding,value\n";

#[test]
fn key_too_long_names_the_line() {
    let e = gen_err(
        &format!("{H}# comment\nns,namespace,,\nsixteen_chars_xx,data,u8,1\n"),
        0x3000,
    );
    assert_eq!(code(&e), "espfleet::nvs::key_too_long");
    assert_eq!(e.csv_line(), Some(4));
    assert!(
        e.to_string()
            .starts_with("in.csv:4: key `sixteen_chars_xx` is 16 characters"),
        "{e}"
    );
    assert!(e.help().is_some());
    assert!(e.labels().is_some(), "the row is labelled in the source");
}

#[test]
fn value_out_of_range_and_invalid_integer() {
    let e = gen_err(&format!("{H}ns,namespace,,\na,data,i8,-129\n"), 0x3000);
    assert_eq!(code(&e), "espfleet::nvs::value_out_of_range");
    assert_eq!(e.csv_line(), Some(3));
    let e = gen_err(&format!("{H}ns,namespace,,\na,data,u16,0x10\n"), 0x3000);
    assert_eq!(code(&e), "espfleet::nvs::invalid_integer");
}

#[test]
fn unknown_encoding() {
    let e = gen_err(&format!("{H}ns,namespace,,\na,data,float,1.5\n"), 0x3000);
    assert_eq!(code(&e), "espfleet::nvs::unknown_encoding");
    assert_eq!(e.csv_line(), Some(3));
}

#[test]
fn missing_file() {
    let e = gen_err(
        &format!("{H}ns,namespace,,\nb,file,binary,no_such.bin\n"),
        0x3000,
    );
    assert_eq!(code(&e), "espfleet::nvs::missing_file");
    assert!(e.to_string().contains("no_such.bin"));
}

#[test]
fn data_larger_than_the_partition() {
    let e = gen_err(
        &format!("{H}ns,namespace,,\nb,data,hex2bin,{}\n", "ab".repeat(9000)),
        0x3000,
    );
    assert_eq!(code(&e), "espfleet::nvs::data_too_large");
    assert_eq!(e.csv_line(), Some(3));
}

#[test]
fn sizes() {
    assert_eq!(
        code(&parse_size("0x3001").unwrap_err()),
        "espfleet::nvs::size_not_multiple"
    );
    assert_eq!(
        code(&parse_size("0").unwrap_err()),
        "espfleet::nvs::size_too_small"
    );
    assert_eq!(
        code(&parse_size("twelve").unwrap_err()),
        "espfleet::nvs::invalid_size"
    );
    assert_eq!(
        code(&NvsBuilder::new(Options::new(0)).unwrap_err()),
        "espfleet::nvs::size_too_small"
    );
    assert_eq!(parse_size("0x6000").unwrap(), 0x6000);
}

#[test]
fn strings_past_the_page_limit() {
    let e = gen_err(
        &format!("{H}ns,namespace,,\ns,data,string,{}\n", "x".repeat(3968)),
        0x4000,
    );
    assert_eq!(code(&e), "espfleet::nvs::string_does_not_fit");
    let e = gen_err(
        &format!("{H}ns,namespace,,\ns,data,string,{}\n", "x".repeat(4000)),
        0x4000,
    );
    assert_eq!(code(&e), "espfleet::nvs::value_too_long");
}

#[test]
fn builder_errors_carry_the_entry_index() {
    let entries = vec![
        NvsEntry::new("a", "x", Value::U8(1)),
        NvsEntry::new("b", "y", Value::U8(2)),
        NvsEntry::new("a", "z", Value::U8(3)),
    ];
    let e = encode(&entries, &Options::new(0x3000)).unwrap_err();
    assert_eq!(code(&e), "espfleet::nvs::namespace_not_current");
    assert_eq!(e.entry_index(), Some(2));

    let mut b = NvsBuilder::new(Options::new(0x3000)).unwrap();
    b.namespace("ns").unwrap();
    let e = b
        .entry("a_key_that_is_too_long", &Value::I32(1))
        .unwrap_err();
    assert_eq!(e.entry_index(), Some(1));
    assert_eq!(code(&e), "espfleet::nvs::key_too_long");
}

#[test]
fn typed_api_matches_the_csv_path() {
    // The same content through both front ends gives the same bytes (`docs/formats/nvs.md` example N2).
    let entries = vec![
        NvsEntry::new("app", "greeting", Value::Str("hi".into())),
        NvsEntry::new("app", "cal", Value::Blob(vec![1, 2, 3, 4, 5])),
        NvsEntry::new("app", "count", Value::I32(-2)),
    ];
    let typed = encode(&entries, &Options::new(0x3000)).unwrap();
    let csv = format!(
        "{H}app,namespace,,\ngreeting,data,string,hi\ncal,data,hex2bin,0102030405\ncount,data,i32,-2\n"
    );
    let input = CsvInput {
        name: "n2.csv".into(),
        text: csv,
    };
    assert_eq!(
        typed,
        generate(&[input], &Options::new(0x3000), std::path::Path::new(".")).unwrap()
    );
    // Bytes from nvs-format.md example N2 (blob_idx and i32 entries).
    assert_eq!(
        hex::encode(&typed[0xe0..0x100]),
        "014801ff6c58129063616c00000000000000000000000000050000000100ffff"
    );
    assert_eq!(
        hex::encode(&typed[0x100..0x120]),
        "011401ffd37396d2636f756e740000000000000000000000feffffffffffffff"
    );
}
