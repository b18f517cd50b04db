//! One test per rule of gen_esp32part.py 1.5 (`docs/formats/partition-table.md`): each
//! rejection asserts the stable error code and the CSV line it names; each acceptance asserts
//! bytes or values worked out by hand from that document (its worked examples P1–P3 and the
//! "(verified)" statements, which were checked against the tool).

#![allow(clippy::unreadable_literal)] // flash addresses read best as the tool prints them

use std::fmt::Write as _;

use espfleet_compiler::partition_table::{
    Flags, Keywords, Partition, PartitionError, PartitionTable, PartitionWarning, Row, SecureBoot,
    SizeSpec, SubtypeSpec, TableOptions, TypeSpec, Variables, decode_csv_text, layout, parse_csv,
};
use miette::Diagnostic as _;

fn opts() -> TableOptions {
    TableOptions::default()
}

fn parse(csv: &str) -> PartitionTable {
    parse_csv(csv, &opts()).unwrap_or_else(|e| panic!("{e:?}"))
}

fn code(e: &PartitionError) -> String {
    e.code().map(|c| c.to_string()).unwrap_or_default()
}

/// The first error (the one the tool reports): its code and line.
fn first_error(csv: &str, opts: &TableOptions) -> (String, Option<usize>, PartitionError) {
    let errors = parse_csv(csv, opts).expect_err("the tool rejects this table");
    let e = errors.into_iter().next().unwrap();
    (code(&e), e.line(), e)
}

fn rejects(csv: &str, rule: &str, line: usize) -> PartitionError {
    rejects_with(csv, &opts(), rule, line)
}

fn rejects_with(csv: &str, opts: &TableOptions, rule: &str, line: usize) -> PartitionError {
    let (c, l, e) = first_error(csv, opts);
    assert_eq!(c, format!("espfleet::partition_table::{rule}"), "{e}");
    assert_eq!(l, Some(line), "{e}");
    e
}

fn offsets(t: &PartitionTable) -> Vec<(u32, u32)> {
    t.partitions().iter().map(|p| (p.offset, p.size)).collect()
}

// ---------------------------------------------------------------- worked examples (`docs/formats/partition-table.md` §7)

#[test]
fn example_p1_two_automatic_rows() {
    let csv = "# Name, Type, SubType, Offset, Size, Flags\nnvs,      data, nvs,     ,  0x6000,\nfactory,  app,  factory, ,  1M,\n";
    let bin = parse(csv).to_bytes(true).unwrap();
    let mut expected = Vec::new();
    expected.extend_from_slice(&[0xaa, 0x50, 0x01, 0x02, 0x00, 0x90, 0, 0, 0x00, 0x60, 0, 0]);
    expected.extend_from_slice(b"nvs\0\0\0\0\0\0\0\0\0\0\0\0\0");
    expected.extend_from_slice(&[0, 0, 0, 0]);
    expected.extend_from_slice(&[
        0xaa, 0x50, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x10, 0x00,
    ]);
    expected.extend_from_slice(b"factory\0\0\0\0\0\0\0\0\0");
    expected.extend_from_slice(&[0, 0, 0, 0]);
    expected.extend_from_slice(&[0xeb, 0xeb]);
    expected.extend_from_slice(&[0xff; 14]);
    expected.extend_from_slice(&hex::decode("e6c39985bd0f443a39e6865e110adaa5").unwrap());
    expected.resize(0xC00, 0xFF);
    assert!(bin == expected);

    // P3: the same table with --disable-md5sum is FF from 0x40 on.
    let no_md5 = parse_csv(
        csv,
        &TableOptions {
            md5: false,
            ..opts()
        },
    )
    .unwrap()
    .to_bytes(false)
    .unwrap();
    assert_eq!(no_md5[..0x40], bin[..0x40]);
    assert!(no_md5[0x40..].iter().all(|b| *b == 0xFF));
}

#[test]
fn example_p2_custom_type_16_char_name_flags() {
    let csv = "abcdefghijklmnop, 0x40, 0x7f, 0x20000, 8K, encrypted:readonly\nfactory, app, ota_3, 0x30000, 0x100000, encrypted\n";
    let table = parse(csv);
    let bin = table.to_bytes(true).unwrap();
    assert_eq!(
        bin[0..12],
        [0xaa, 0x50, 0x40, 0x7f, 0, 0, 2, 0, 0, 0x20, 0, 0]
    );
    assert_eq!(&bin[12..28], b"abcdefghijklmnop");
    assert_eq!(bin[28..32], [3, 0, 0, 0]);
    assert_eq!(bin[32..36], [0xaa, 0x50, 0x00, 0x13]);
    assert_eq!(bin[60..64], [1, 0, 0, 0]);
    assert_eq!(
        bin[0x50..0x60],
        hex::decode("f283d1c488bf52d663c8c2cd6a7b2a43").unwrap()[..]
    );
    // The tool warns that the app is named like a subtype keyword it does not have.
    let warnings = table.warnings(&Keywords::esp_idf());
    assert!(
        matches!(&warnings[..], [PartitionWarning::NameIsSubtypeKeyword { name, .. }] if name == "factory")
    );
}

#[test]
fn empty_table_is_the_md5_of_nothing() {
    let bin = parse("# only a comment\n").to_bytes(true).unwrap();
    assert_eq!(bin[..2], [0xEB, 0xEB]);
    assert_eq!(
        bin[16..32],
        hex::decode("d41d8cd98f00b204e9800998ecf8427e").unwrap()[..]
    );
    assert!(bin[32..].iter().all(|b| *b == 0xFF));
}

// ---------------------------------------------------------------- CSV syntax (`docs/formats/partition-table.md` §3)

#[test]
fn lines_comments_whitespace_and_extra_columns() {
    let csv = "\u{feff}# header\r\n   # indented comment\r\n \t \r\nnvs, data, nvs, , 0x6000, , extra, columns\rfactory,app,factory,,1M";
    let text = decode_csv_text(csv.as_bytes()).unwrap();
    let t = parse(&text);
    assert_eq!(offsets(&t), vec![(0x9000, 0x6000), (0x10000, 0x100000)]);
    // line numbers count comments and blank lines: the second row is on physical line 5
    let e = rejects(
        &text.replace("factory,app,factory,,1M", "factory,app,factory,,1.5M"),
        "number_invalid",
        5,
    );
    assert_eq!(e.to_string(), "Invalid field value 1.5");
}

#[test]
fn utf16_csv_with_bom_is_read() {
    let mut bytes = vec![0xFF, 0xFE];
    for u in "nvs,data,nvs,,0x6000\n".encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    let t = parse(&decode_csv_text(&bytes).unwrap());
    assert_eq!(t.partitions()[0].name, "nvs");
    assert_eq!(
        code(&decode_csv_text(&[b'a', 0xFF]).unwrap_err()),
        "espfleet::partition_table::csv_not_unicode"
    );
}

#[test]
fn quotes_are_part_of_the_name_and_keywords_ignore_case() {
    let t = parse("\"nvs\", DATA, NVS, , 0x6000\nx, App, Factory, , 1M\ns, data, , , 4K\n");
    assert_eq!(t.partitions()[0].name, "\"nvs\"");
    assert_eq!((t.partitions()[0].ty, t.partitions()[0].subtype), (1, 2));
    assert_eq!(t.partitions()[1].ty, 0);
    // empty subtype of a non-app type is 0x06 (also for custom types)
    assert_eq!(t.partitions()[2].subtype, 0x06);
    assert_eq!(parse("c, 0x40, , , 4K").partitions()[0].subtype, 0x06);
}

#[test]
fn number_syntax_is_python_int_with_stacked_suffixes() {
    let t = parse(
        "a, data, 0x22, 0x9000, 0x18K\nb, data, 0xff, , 65536\nc, 64, 0o7, , 0x6_000\nd, data, spiffs, , 1kk\ne, data, 0b1, , 4k\n",
    );
    assert_eq!(
        offsets(&t),
        vec![
            (0x9000, 0x6000),
            (0xF000, 0x10000),
            (0x1F000, 0x6000),
            (0x25000, 0x100000),
            (0x125000, 0x1000)
        ]
    );
    assert_eq!(t.partitions()[2].ty, 0x40);
    assert_eq!(t.partitions()[2].subtype, 7);
    assert_eq!(t.partitions()[4].subtype, 1);
}

#[test]
fn variables_expand_and_unknown_leading_variable_is_rejected() {
    let vars = Variables::Map(
        [
            ("SZ".to_owned(), "0x6000".to_owned()),
            ("N".to_owned(), "nvs".to_owned()),
        ]
        .into(),
    );
    let o = TableOptions {
        variables: vars,
        ..opts()
    };
    let t = parse_csv("$N, data, nvs, , ${SZ}\n", &o).unwrap();
    assert_eq!(
        (t.partitions()[0].name.as_str(), t.partitions()[0].size),
        ("nvs", 0x6000)
    );
    let e = rejects_with(
        "# c\n$UNSET_NAME, data, nvs, , 0x6000\n",
        &o,
        "unknown_variable",
        2,
    );
    assert_eq!(e.to_string(), "unknown variable 'UNSET_NAME'");
    // not at the start: left as written
    assert_eq!(
        parse_csv("a$X, data, nvs, , 0x6000\n", &o)
            .unwrap()
            .partitions()[0]
            .name,
        "a$X"
    );
}

#[test]
fn rule_type_missing() {
    rejects("# h\nihavenotype,\n", "type_missing", 2);
}

#[test]
fn rule_type_unknown() {
    let e = rejects("a, nope, 0, , 4K\n", "type_unknown", 1);
    assert!(e.to_string().starts_with(
        "Value 'nope' is not valid. Known keywords: bootloader, partition_table, app, data"
    ));
}

#[test]
fn rule_subtype_missing_for_app() {
    rejects("\nf, app, , , 1M\n", "subtype_missing", 2);
}

#[test]
fn rule_subtype_of_the_wrong_type() {
    let e = rejects("f, data, factory, , 4K\n", "subtype_unknown", 1);
    assert!(
        e.to_string()
            .starts_with("Value 'factory' is not valid. Known keywords: ota, phy, nvs")
    );
    // custom types take no keywords at all
    let e = rejects("c, 0x40, nvs, , 4K\n", "subtype_unknown", 1);
    assert_eq!(e.to_string(), "Invalid field value nvs");
}

#[test]
fn rule_number_invalid_bad_unit_leading_zero_fraction() {
    rejects("a, data, nvs, , 4G\n", "number_invalid", 1);
    rejects("a, data, nvs, 09000, 4K\n", "number_invalid", 1);
    rejects("a, data, nvs, , 1.5M\n", "number_invalid", 1);
}

#[test]
fn rule_size_missing() {
    rejects("a, data, nvs, 0x9000,\n", "size_missing", 1);
}

#[test]
fn rule_flag_unknown_including_spaces_inside() {
    let e = rejects(
        "a, data, nvs, , 0x6000, encrypted : readonly\n",
        "flag_unknown",
        1,
    );
    assert_eq!(
        e.to_string(),
        "CSV flag column contains unknown flag 'encrypted '"
    );
    rejects("a, data, nvs, , 0x6000, Encrypted\n", "flag_unknown", 1);
}

#[test]
fn every_line_with_a_syntax_error_is_reported() {
    let errors = parse_csv(
        "a, nope, 0, , 4K\nok, data, nvs, , 0x6000\nb, data, nvs, , 4X\n",
        &opts(),
    )
    .unwrap_err();
    let lines: Vec<_> = errors.iter().map(PartitionError::line).collect();
    assert_eq!(lines, vec![Some(1), Some(3)]);
    assert_eq!(
        errors.iter().map(PartitionError::row).collect::<Vec<_>>(),
        vec![Some(0), Some(2)]
    );
}

// ---------------------------------------------------------------- placement (`docs/formats/partition-table.md` §4)

#[test]
fn automatic_offsets_round_up_per_type() {
    let t = parse("phy, data, phy, 0x11000, 0x800\nc, 0x40, 1, , 0x5000\nf, app, factory, , 1M\n");
    assert_eq!(
        offsets(&t),
        vec![(0x11000, 0x800), (0x12000, 0x5000), (0x20000, 0x100000)]
    );
}

#[test]
fn negative_size_is_an_end_address() {
    let t = parse("a, data, nvs, 0x300000, -0x400000\nb, data, fat, , -4M\n");
    assert_eq!(offsets(&t), vec![(0x300000, 0x100000), (0x400000, 0)]);
}

#[test]
fn rule_offset_in_table_sector_for_the_first_row() {
    let e = rejects(
        "# h\nnvs, data, nvs, 0x8000, 0x6000\n",
        "offset_in_table_sector",
        2,
    );
    assert_eq!(
        e.to_string(),
        "Partitions overlap. Partition sets offset 0x8000. But partition table occupies the whole sector 0x8000. Use a free offset 0x9000 or higher."
    );
}

#[test]
fn rule_offset_out_of_order_even_without_verify() {
    let csv = "a, data, nvs, 0x10000, 0x6000\nb, data, phy, 0xf000, 0x1000\n";
    let e = rejects(csv, "offset_out_of_order", 2);
    assert_eq!(
        e.to_string(),
        "Partitions overlap. Partition sets offset 0xf000. Previous partition ends 0x16000"
    );
    rejects_with(
        csv,
        &TableOptions {
            verify: false,
            ..opts()
        },
        "offset_out_of_order",
        2,
    );
}

#[test]
fn table_offset_moves_automatic_placement() {
    let t = parse_csv(
        "nvs, data, nvs, , 0x6000\n",
        &TableOptions {
            table_offset: 0x10000,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(offsets(&t), vec![(0x11000, 0x6000)]);
}

// ---------------------------------------------------------------- verification (`docs/formats/partition-table.md` §5)

#[test]
fn rule_offset_misaligned() {
    let e = rejects("app, app, factory, 0x18000, 1M\n", "offset_misaligned", 1);
    assert_eq!(
        e.to_string(),
        "Partition app invalid: Offset 0x18000 is not aligned to 0x10000"
    );
    rejects(
        "# h\nd, data, nvs, 0x9400, 0x6000\n",
        "offset_misaligned",
        2,
    );
}

#[test]
fn rule_size_misaligned_and_secure_boot() {
    let csv = "ota_0, app, ota_0, , 0x101000\nota_1, app, ota_1, , 0x100800\n";
    let e = rejects(csv, "size_misaligned", 2);
    assert_eq!(
        e.to_string(),
        "Partition ota_1 invalid: Size 0x100800 is not aligned to 0x1000"
    );
    let v1 = TableOptions {
        secure: Some(SecureBoot::V1),
        ..opts()
    };
    let e = rejects_with(csv, &v1, "size_misaligned", 1);
    assert_eq!(
        e.to_string(),
        "Partition ota_0 invalid: Size 0x101000 is not aligned to 0x10000"
    );
    let v2 = TableOptions {
        secure: Some(SecureBoot::V2),
        ..opts()
    };
    rejects_with(csv, &v2, "size_misaligned", 2);
    // data sizes are not checked
    parse("d, data, 0x99, , 0x801\n");
}

#[test]
fn rule_readonly_not_allowed_on_otadata_and_coredump() {
    rejects("o, data, ota, , 8K, readonly\n", "readonly_not_allowed", 1);
    rejects(
        "\nc, data, coredump, , 64K, readonly\n",
        "readonly_not_allowed",
        2,
    );
}

#[test]
fn rule_nvs_too_small_unless_readonly() {
    rejects("n, data, nvs, , 0x2000\n", "nvs_too_small", 1);
    assert!(
        parse("n, data, nvs, , 0x1000, readonly\n").partitions()[0]
            .flags
            .readonly
    );
    parse("n, data, nvs, , 0x3000\n");
}

#[test]
fn rule_name_duplicate_compares_full_names() {
    let e = rejects(
        "a, data, nvs, , 0x4000\nb, data, phy, , 0x1000\na, data, 0x40, , 0x1000\n",
        "name_duplicate",
        3,
    );
    assert!(matches!(e, PartitionError::NameDuplicate { first, .. } if first.line == Some(1)));
    // Names that differ after byte 16 pass, and are identical in the binary.
    let t = parse("abcdefghijklmnopX, data, 0x40, , 4K\nabcdefghijklmnopY, data, 0x41, , 4K\n");
    let bin = t.to_bytes(true).unwrap();
    assert_eq!(bin[12..28], bin[44..60]);
    assert!(matches!(
        t.warnings(&Keywords::esp_idf())[0],
        PartitionWarning::NameTruncated { .. }
    ));
}

#[test]
fn rule_offset_below_table() {
    // Only reachable when the table offset is raised after placement-relevant rows: use a
    // decoded table, which skips placement.
    let t = PartitionTable::new(vec![Partition {
        name: "n".into(),
        ty: 1,
        subtype: 2,
        offset: 0x9000,
        size: 0x6000,
        flags: Flags::default(),
    }]);
    let errors = t
        .validate(&TableOptions {
            table_offset: 0x10000,
            ..opts()
        })
        .unwrap_err();
    assert_eq!(
        code(&errors[0]),
        "espfleet::partition_table::offset_below_table"
    );
    assert_eq!(errors[0].row(), Some(0));
}

#[test]
fn rule_overlap_after_a_negative_size_moves_the_cursor_back() {
    // b's end address lies before its offset, so the cursor moves back and c lands inside a.
    let csv =
        "a, data, nvs, 0x9000, 0x6000\nb, data, fat, 0x10000, -0xC000\nc, data, 0x40, , 0x1000\n";
    let e = rejects(csv, "overlap", 3);
    assert_eq!(e.to_string(), "Partition at 0xc000 overlaps 0x9000-0xefff");
    assert!(
        matches!(e, PartitionError::Overlap { other, .. } if other.line == Some(1)),
        "{e:?}"
    );
    // A decoded table is checked the same way, by row index.
    let t = PartitionTable::new(vec![
        Partition {
            name: "a".into(),
            ty: 1,
            subtype: 0x40,
            offset: 0x10000,
            size: 0x2000,
            flags: Flags::default(),
        },
        Partition {
            name: "b".into(),
            ty: 1,
            subtype: 0x41,
            offset: 0x11000,
            size: 0x1000,
            flags: Flags::default(),
        },
    ]);
    let errors = t.validate(&opts()).unwrap_err();
    assert_eq!(
        (code(&errors[0]), errors[0].row()),
        ("espfleet::partition_table::overlap".to_owned(), Some(1))
    );
}

#[test]
fn rule_otadata_duplicate_and_size() {
    rejects(
        "o1, data, ota, , 8K\no2, data, ota, , 8K\n",
        "otadata_duplicate",
        2,
    );
    let e = rejects("o, data, ota, , 4K\n", "otadata_size", 1);
    assert_eq!(e.to_string(), "otadata partition must have size = 0x2000");
    let e = rejects("\nt, data, tee_ota, , 4K\n", "otadata_size", 2);
    assert_eq!(
        e.to_string(),
        "TEE otadata partition must have size = 0x2000"
    );
    // --no-verify skips it
    parse_csv(
        "o, data, ota, , 4K\n",
        &TableOptions {
            verify: false,
            ..opts()
        },
    )
    .unwrap();
}

#[test]
fn rule_flash_too_small_even_without_verify() {
    let csv = "nvs, data, nvs, , 0x6000\nf, app, factory, , 0x300000\n";
    let o = TableOptions {
        flash_size: Some(2 << 20),
        verify: false,
        ..opts()
    };
    let e = rejects_with(csv, &o, "flash_too_small", 2);
    assert!(e.to_string().starts_with("Partitions tables occupies 3.1MB of flash (3211264 bytes) which does not fit in configured flash size 2MB."));
    parse_csv(
        csv,
        &TableOptions {
            flash_size: Some(4 << 20),
            ..opts()
        },
    )
    .unwrap();
}

// ---------------------------------------------------------------- binary limits (`docs/formats/partition-table.md` §1)

fn many(n: usize) -> String {
    let mut csv = String::new();
    for i in 0..n {
        let _ = writeln!(csv, "p{i}, 0x40, 0, , 4K");
    }
    csv
}

#[test]
fn rule_table_too_large_94_with_md5_95_without() {
    assert_eq!(
        parse(&many(94)).to_bytes(true).unwrap()[94 * 32..96 * 32][..2],
        [0xEB, 0xEB]
    );
    let e = rejects(&many(95), "table_too_large", 95);
    assert_eq!(
        e.to_string(),
        "Binary partition table length (3072) longer than max"
    );
    let no_md5 = TableOptions {
        md5: false,
        ..opts()
    };
    let bin = parse_csv(&many(95), &no_md5)
        .unwrap()
        .to_bytes(false)
        .unwrap();
    assert!(bin[95 * 32..].iter().all(|b| *b == 0xFF));
    rejects_with(&many(96), &no_md5, "table_too_large", 96);
}

#[test]
fn rule_value_out_of_range_is_a_crash_in_the_tool() {
    let e = rejects("a, 0x100, 0, , 4K\n", "value_out_of_range", 1);
    assert!(e.is_oracle_crash());
    rejects("a, data, 256, , 4K\n", "value_out_of_range", 1);
    rejects(
        "a, data, 0x40, 0x100000000, 0x2000\n",
        "value_out_of_range",
        1,
    );
    // a negative size whose end lies before the offset
    rejects(
        "a, data, 0x40, 0x20000, -0x10000\n",
        "value_out_of_range",
        1,
    );
}

// ---------------------------------------------------------------- bootloader rows (`docs/formats/partition-table.md` §3.3)

#[test]
fn bootloader_and_partition_table_rows_take_fixed_places() {
    let csv = "bootloader, bootloader, primary, N/A, N/A\nrecovery, bootloader, recovery, N/A, N/A\nptable, partition_table, primary, N/A, N/A\nnvs, data, nvs, , 0x6000\n";
    let o = TableOptions {
        primary_bootloader_offset: Some(0x1000),
        recovery_bootloader_offset: Some(0x200000),
        ..opts()
    };
    let t = parse_csv(csv, &o).unwrap();
    let bin = t.to_bytes(true).unwrap();
    assert_eq!(
        bin[0..12],
        [0xaa, 0x50, 0x02, 0x00, 0x00, 0x10, 0, 0, 0x00, 0x70, 0, 0]
    );
    assert_eq!(&bin[12..22], b"bootloader");
    assert_eq!(
        bin[32..44],
        [0xaa, 0x50, 0x02, 0x02, 0, 0, 0x20, 0, 0x00, 0x70, 0, 0]
    );
    assert_eq!(
        bin[64..76],
        [0xaa, 0x50, 0x03, 0x00, 0x00, 0x80, 0, 0, 0x00, 0x10, 0, 0]
    );
    // the recovery row is placed normally, so the cursor is after it
    assert_eq!(offsets(&t)[3], (0x207000, 0x6000));
}

#[test]
fn rule_bootloader_offset_missing_and_above_table() {
    let e = rejects(
        "b, bootloader, primary, , \n",
        "bootloader_offset_missing",
        1,
    );
    assert_eq!(
        e.to_string(),
        "Primary bootloader offset is not defined. Please use --primary-bootloader-offset"
    );
    let o = TableOptions {
        primary_bootloader_offset: Some(0x1000),
        ..opts()
    };
    rejects_with(
        "\nr, bootloader, recovery, , \n",
        &o,
        "bootloader_offset_missing",
        2,
    );
    let bad = TableOptions {
        primary_bootloader_offset: Some(0x8000),
        ..opts()
    };
    let errors = parse_csv("", &bad).unwrap_err();
    assert_eq!(
        code(&errors[0]),
        "espfleet::partition_table::bootloader_above_table"
    );
}

// ---------------------------------------------------------------- extra subtypes (`docs/formats/partition-table.md` §6)

#[test]
fn extra_partition_subtypes() {
    let mut kw = Keywords::esp_idf();
    kw.add_extra("data, my_data, 40").unwrap();
    let o = TableOptions {
        keywords: kw.clone(),
        ..opts()
    };
    let t = parse_csv("m, data, MY_DATA, , 4K\n", &o).unwrap();
    assert_eq!(t.partitions()[0].subtype, 0x40);
    assert!(t.to_csv_with(&kw).contains("m,data,my_data,0x9000,4K,"));
    // a used value aborts the tool (exit 1); an unknown type is reported (exit 2)
    let e = kw.add_extra("data,dup,82").unwrap_err();
    assert_eq!(code(&e), "espfleet::partition_table::extra_subtype_invalid");
    assert!(e.is_oracle_crash());
    assert!(!kw.add_extra("nope,x,0").unwrap_err().is_oracle_crash());
}

// ---------------------------------------------------------------- binary reading (`docs/formats/partition-table.md` §1.4)

#[test]
fn binary_reading_rules() {
    let table = parse("nvs, data, nvs, , 0x6000\nf, app, factory, , 1M\n");
    let bin = table.to_bytes(true).unwrap();
    // bad MD5
    let mut bad = bin.clone();
    bad[0x50] ^= 1;
    assert_eq!(
        code(&PartitionTable::from_bytes(&bad).unwrap_err()),
        "espfleet::partition_table::md5_mismatch"
    );
    // MD5 record read as an entry with --disable-md5sum: its name bytes are not UTF-8 (a crash)
    let e = PartitionTable::decode(&bin, false).unwrap_err();
    assert_eq!(code(&e), "espfleet::partition_table::name_not_utf8");
    assert!(e.is_oracle_crash());
    // no end marker / partial record / bad magic
    assert_eq!(
        code(&PartitionTable::from_bytes(&bin[..64]).unwrap_err()),
        "espfleet::partition_table::binary_end_missing"
    );
    assert_eq!(
        code(&PartitionTable::from_bytes(&bin[..70]).unwrap_err()),
        "espfleet::partition_table::binary_length"
    );
    let mut magic = bin.clone();
    magic[32] = 0xAB;
    let e = PartitionTable::from_bytes(&magic).unwrap_err();
    assert_eq!(
        (code(&e), e.row()),
        (
            "espfleet::partition_table::magic_invalid".to_owned(),
            Some(1)
        )
    );
    // unknown flag bits: a warning, and dropped
    let mut no_md5 = parse_csv(
        "nvs, data, nvs, , 0x6000\n",
        &TableOptions {
            md5: false,
            ..opts()
        },
    )
    .unwrap()
    .to_bytes(false)
    .unwrap();
    no_md5[28] = 0x05;
    let d = PartitionTable::decode(&no_md5, false).unwrap();
    assert!(d.table.partitions()[0].flags.encrypted);
    assert!(matches!(
        d.warnings[..],
        [PartitionWarning::FlagsUnknown { bits: 4, .. }]
    ));
}

// ---------------------------------------------------------------- row API

#[test]
fn rows_without_csv_collect_errors_by_row_index() {
    let rows = vec![
        Row::new(
            "nvs",
            TypeSpec::keyword("data"),
            SubtypeSpec::keyword("nvs"),
            SizeSpec::Bytes(0x6000),
        ),
        Row::new(
            "bad",
            TypeSpec::keyword("dta"),
            SubtypeSpec::Default,
            SizeSpec::Bytes(0x1000),
        ),
        Row::new(
            "app",
            TypeSpec::keyword("app"),
            SubtypeSpec::Default,
            SizeSpec::Bytes(0x10_0000),
        ),
        Row {
            size: None,
            ..Row::new(
                "s",
                TypeSpec::Number(0x40),
                SubtypeSpec::Number(1),
                SizeSpec::Bytes(0),
            )
        },
    ];
    let errors = layout(&rows, &opts()).unwrap_err();
    let got: Vec<_> = errors
        .iter()
        .map(|e| (code(e), e.row(), e.line()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "espfleet::partition_table::type_unknown".to_owned(),
                Some(1),
                None
            ),
            (
                "espfleet::partition_table::subtype_missing".to_owned(),
                Some(2),
                None
            ),
            (
                "espfleet::partition_table::size_missing".to_owned(),
                Some(3),
                None
            ),
        ]
    );
}

#[test]
fn rows_and_csv_give_the_same_bytes() {
    let csv = "nvs, data, nvs, , 0x6000\nat, 0x40, 0, , 0x10000\nota_0, app, ota_0, , -0x200000, encrypted\n";
    let rows = vec![
        Row::new(
            "nvs",
            TypeSpec::keyword("data"),
            SubtypeSpec::keyword("nvs"),
            SizeSpec::Bytes(0x6000),
        ),
        Row::new(
            "at",
            TypeSpec::Number(0x40),
            SubtypeSpec::Number(0),
            SizeSpec::Bytes(0x10000),
        ),
        Row {
            flags: Flags {
                encrypted: true,
                readonly: false,
            },
            ..Row::new(
                "ota_0",
                TypeSpec::keyword("app"),
                SubtypeSpec::keyword("ota_0"),
                SizeSpec::UpTo(0x20_0000),
            )
        },
    ];
    let from_rows = layout(&rows, &opts()).unwrap();
    assert_eq!(from_rows, parse(csv));
    assert_eq!(offsets(&from_rows)[2], (0x20000, 0x1E0000));
}

#[test]
fn verification_errors_are_all_collected_in_tool_order() {
    let csv = "a, app, factory, 0x18000, 1M\nb, data, nvs, , 0x1000\nb, data, ota, , 4K\n";
    let errors = parse_csv(csv, &opts()).unwrap_err();
    let got: Vec<_> = errors.iter().map(|e| (code(e), e.line())).collect();
    assert_eq!(
        got,
        vec![
            (
                "espfleet::partition_table::offset_misaligned".to_owned(),
                Some(1)
            ),
            (
                "espfleet::partition_table::nvs_too_small".to_owned(),
                Some(2)
            ),
            (
                "espfleet::partition_table::name_duplicate".to_owned(),
                Some(3)
            ),
            (
                "espfleet::partition_table::otadata_size".to_owned(),
                Some(3)
            ),
        ]
    );
}

#[test]
fn negative_values_print_like_python_percent_x() {
    // "0x%x" % -0x1000 is "0x-1000" in Python.
    let e = rejects(
        "a, data, nvs, -0x1000, 0x6000\n",
        "offset_in_table_sector",
        1,
    );
    assert!(
        e.to_string()
            .starts_with("Partitions overlap. Partition sets offset 0x-1000."),
        "{e}"
    );
}
