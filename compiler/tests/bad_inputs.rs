//! Hostile and broken inputs, one test per hole (issue 13), organised by class. Fixtures live in
//! `tests/data/bad/<class>/`, named after the rule they break; `tests/data/bad/README.md` says
//! how each was made. Inputs that cannot live in git (FIFOs, 50 MB files, symbolic links) are
//! made by the test in a temporary directory. Every test asserts the stable diagnostic code.
//!
//! The directory doubles as a regression corpus: every file in it must be refused (or, for the
//! `ok_` files, accepted) without a panic, an abort or a hang.

use std::path::{Path, PathBuf};

use espfleet_compiler::manifest::{self, Diagnostics};

fn bad(class: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/bad")
        .join(class)
        .join(name)
}

/// Loads a manifest that must fail, and returns its diagnostics.
fn refused(path: &Path) -> Diagnostics {
    match manifest::load(path) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(d) => d,
    }
}

/// Asserts that `diags` holds an error (or warning) with `espfleet::manifest::<rule>`.
fn assert_rule(diags: &Diagnostics, rule: &str) {
    let code = format!("espfleet::manifest::{rule}");
    assert!(
        diags.errors.iter().any(|e| e.kind().code() == code),
        "no {code}; got {:?}",
        diags
            .errors
            .iter()
            .map(|e| (e.kind().code(), e.message().to_owned()))
            .collect::<Vec<_>>()
    );
}

/// Runs `f` on a thread with a small stack, as a worker pool would: the guard must not depend
/// on the caller's stack.
fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn_scoped(s, f)
            .unwrap()
            .join()
            .unwrap()
    })
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

// ---- nesting: the KDL parser's recursion --------------------------------------------------

#[test]
fn nesting_blocks_2000_deep_is_a_diagnostic_not_an_abort() {
    let d = on_small_stack(|| refused(&bad("nesting", "blocks_2000_deep.kdl")));
    assert_rule(&d, "nesting_too_deep");
    let e = &d.errors[0];
    // The label points at the 33rd `{` (the file starts with `espfleet 1\n`, then `a {` × n).
    assert_eq!(e.place().unwrap().span.offset(), 11 + 3 * 32 + 2);
}

#[test]
fn nesting_comments_9_deep_is_refused() {
    let d = on_small_stack(|| refused(&bad("nesting", "comments_9_deep.kdl")));
    assert_rule(&d, "nesting_too_deep");
}

#[test]
fn nesting_16k_of_syntax_errors_is_bounded() {
    let d = on_small_stack(|| refused(&bad("nesting", "syntax_errors_16k.kdl")));
    assert_rule(&d, "syntax_invalid");
    assert!(d.errors.len() <= 21, "{} diagnostics", d.errors.len());
}

#[test]
fn nesting_extends_chain_17_deep_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        write(
            dir.path(),
            &format!("m{i:02}.kdl"),
            &format!("espfleet 1\nextends \"m{:02}.kdl\"\n", i + 1),
        );
    }
    write(dir.path(), "m20.kdl", "espfleet 1\n");
    let d = refused(&dir.path().join("m00.kdl"));
    assert_rule(&d, "nesting_too_deep");
}

#[test]
fn nesting_extends_fan_out_is_bounded() {
    // Each level extends the next one twice: 2^12 loads without a bound.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..12 {
        let next = format!("f{:02}.kdl", i + 1);
        write(
            dir.path(),
            &format!("f{i:02}.kdl"),
            &format!("espfleet 1\nextends \"{next}\" \"{next}\"\n"),
        );
    }
    write(dir.path(), "f12.kdl", "espfleet 1\n");
    let d = refused(&dir.path().join("f00.kdl"));
    assert_rule(&d, "nesting_too_deep");
}

// ---- file_type: only regular files are read -----------------------------------------------

#[test]
fn file_type_manifest_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("bench.kdl");
    mkfifo(&fifo);
    // Nobody ever writes to the FIFO: opening it for reading would block forever.
    let d = refused(&fifo);
    assert_rule(&d, "file_not_regular");
}

#[test]
fn file_type_extends_link_to_dev_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.kdl")).unwrap();
    let m = write(dir.path(), "m.kdl", "espfleet 1\nextends \"zero.kdl\"\n");
    assert_rule(&refused(&m), "file_not_regular");
}

#[test]
fn file_type_certificate_dev_zero_is_refused() {
    assert_rule(
        &refused(&bad("file_type", "certificate_dev_zero.kdl")),
        "file_not_regular",
    );
}

#[test]
fn file_type_firmware_part_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("app.bin"));
    let m = write(
        dir.path(),
        "m.kdl",
        "espfleet 1\nmodule \"WROOM-32\" chip=\"esp32\"\nesp-at \"v4.1.1.0\"\nfirmware {\n    part \"app\" \"app.bin\"\n}\n",
    );
    assert_rule(&refused(&m), "file_not_regular");
}

#[test]
fn file_type_nvs_csv_file_row_naming_dev_zero_is_refused() {
    use espfleet_compiler::nvs::{self, NvsErrorKind, csv};
    let input = csv::CsvInput::read(&bad("file_type", "nvs_file_dev_zero.csv")).unwrap();
    let err = csv::generate(&[input], &nvs::Options::new(0x6000), Path::new("/")).unwrap_err();
    assert!(
        matches!(err.kind(), NvsErrorKind::FileRead { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

// ---- size: inputs are capped before they are read ------------------------------------------

/// A sparse file of `len` bytes (nothing is written, so the test itself stays cheap).
fn sparse(dir: &Path, name: &str, len: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().set_len(len).unwrap();
    p
}

#[test]
fn size_50_mb_manifest_is_refused_by_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let p = sparse(dir.path(), "huge.kdl", 50 << 20);
    assert_rule(&refused(&p), "file_too_large");
}

#[test]
fn size_certificate_over_1_mib_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    sparse(dir.path(), "ca.crt", (1 << 20) + 1);
    let m = write(
        dir.path(),
        "m.kdl",
        "espfleet 1\nmodule \"WROOM-32\" chip=\"esp32\"\nesp-at \"v4.1.1.0\"\ncertificates {\n    client-ca \"ca.crt\"\n}\n",
    );
    assert_rule(&refused(&m), "file_too_large");
}

#[test]
fn size_gatts_csv_over_1_mib_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    sparse(dir.path(), "gatts.csv", (1 << 20) + 1);
    let m = write(
        dir.path(),
        "m.kdl",
        "espfleet 1\nmodule \"WROOM-32\" chip=\"esp32\"\nesp-at \"v4.1.1.0\"\nble {\n    gatts \"gatts.csv\"\n}\n",
    );
    assert_rule(&refused(&m), "file_too_large");
}

#[test]
fn size_in_memory_manifest_text_is_capped_too() {
    // `load_text` (editors, the fuzzer) gets the same bound as a file.
    let text = format!("espfleet 1\n{}", "// x\n".repeat(20_000));
    let d = manifest::load_text(Path::new("/nonexistent/m.kdl"), &text).unwrap_err();
    assert_rule(&d, "file_too_large");
}

#[test]
fn size_nvs_partition_of_0xfffffffff000_is_an_error_before_allocating() {
    use espfleet_compiler::nvs::{self, NvsErrorKind, csv};
    let err = csv::parse_size("0xFFFFFFFFF000").unwrap_err();
    assert!(
        matches!(err.kind(), NvsErrorKind::SizeTooLarge { .. }),
        "{err:?}"
    );
    // The library entry point refuses it as well, whatever the caller parsed.
    let err = nvs::NvsBuilder::new(nvs::Options::new(0xFFFF_FFFF_F000)).unwrap_err();
    assert!(
        matches!(err.kind(), NvsErrorKind::SizeTooLarge { .. }),
        "{err:?}"
    );
}

// ---- secrets: key material never reaches a diagnostic --------------------------------------

fn example_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/esp_at/raw_data_master/client_key/client_key_00.key")
}

/// The diagnostic as the CLI, the daemon log and `espfleet status` show it.
fn render(d: &Diagnostics) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, d)
        .unwrap();
    out
}

/// Fails if any line of the key's body (or any 16-character piece of it) appears in `text`.
fn assert_no_key_material(text: &str) {
    let key = std::fs::read_to_string(example_key()).unwrap();
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        for piece in line.as_bytes().chunks(16).filter(|c| c.len() == 16) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(!text.contains(piece), "key material `{piece}` in:\n{text}");
        }
    }
}

#[test]
fn secrets_extends_naming_a_key_is_refused_unread() {
    let d = refused(&bad("secrets", "extends_key.kdl"));
    assert_rule(&d, "value_invalid");
    assert_no_key_material(&render(&d));
}

#[test]
fn secrets_gatts_naming_a_key_is_refused_unquoted() {
    let d = refused(&bad("secrets", "gatts_key.kdl"));
    assert_rule(&d, "file_holds_key");
    assert_no_key_material(&render(&d));
}

#[test]
fn secrets_key_renamed_to_kdl_is_refused_unquoted() {
    let dir = tempfile::tempdir().unwrap();
    let stolen = dir.path().join("stolen.kdl");
    std::fs::copy(example_key(), &stolen).unwrap();
    let d = refused(&stolen);
    assert_rule(&d, "file_holds_key");
    assert_no_key_material(&render(&d));
    // ... and as a base, and as text handed over by an editor.
    let m = write(dir.path(), "m.kdl", "espfleet 1\nextends \"stolen.kdl\"\n");
    let d = refused(&m);
    assert_rule(&d, "file_holds_key");
    assert_no_key_material(&render(&d));
    let text = std::fs::read_to_string(&stolen).unwrap();
    let d = manifest::load_text(&stolen, &text).unwrap_err();
    assert_rule(&d, "file_holds_key");
}

#[test]
fn secrets_der_key_named_kdl_is_refused_unquoted() {
    let pem = pem::parse(std::fs::read(example_key()).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("key.kdl");
    std::fs::write(&p, pem.contents()).unwrap();
    let d = refused(&p);
    assert_rule(&d, "file_holds_key");
}

// ---- firmware: parts checked against the manifest's chip -----------------------------------

/// Asserts a firmware_invalid error whose message contains `what`.
fn assert_firmware_invalid(name: &str, what: &str) {
    let d = refused(&bad("firmware", name));
    assert_rule(&d, "firmware_invalid");
    assert!(
        d.errors.iter().any(|e| e.message().contains(what)),
        "{name}: no `{what}` in {:?}",
        d.errors.iter().map(|e| e.message()).collect::<Vec<_>>()
    );
}

#[test]
fn firmware_ok_parts_are_accepted() {
    manifest::load(&bad("firmware", "ok_esp32_parts.kdl")).unwrap();
}

#[test]
fn firmware_random_bytes_as_app_are_refused() {
    assert_firmware_invalid("random_app.kdl", "not the image magic 0xE9");
}

#[test]
fn firmware_app_with_bad_checksum_is_refused() {
    assert_firmware_invalid(
        "app_bad_checksum.kdl",
        "checksum is 0x9f, but its segments give 0xca",
    );
}

#[test]
fn firmware_app_with_bad_sha256_is_refused() {
    assert_firmware_invalid("app_bad_sha256.kdl", "SHA-256 does not match");
}

#[test]
fn firmware_esp32c3_bootloader_in_an_esp32_manifest_is_refused() {
    assert_firmware_invalid(
        "c3_bootloader_in_esp32.kdl",
        "chip id 5 (esp32c3), not esp32",
    );
}

#[test]
fn firmware_bootloader_at_the_wrong_offset_is_refused() {
    assert_firmware_invalid("bootloader_wrong_offset.kdl", "goes at 0x1000, not 0x0");
}

#[test]
fn firmware_release_json_naming_a_file_outside_the_folder_is_refused() {
    assert_firmware_invalid("release_escape_json.kdl", "not inside the release folder");
}

#[test]
fn firmware_release_config_naming_an_absolute_path_is_refused() {
    assert_firmware_invalid("release_escape_config.kdl", "not inside the release folder");
}

#[test]
fn firmware_release_link_leading_out_of_the_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    std::fs::create_dir(&release).unwrap();
    std::fs::write(
        release.join("download.config"),
        "--flash_mode dio --flash_freq 40m --flash_size 4MB 0x100000 esp-at.bin",
    )
    .unwrap();
    // The link's name is inside the folder, its target is not.
    std::os::unix::fs::symlink(
        bad("firmware", "../../esp_at/firmware/esp32_app.bin"),
        release.join("esp-at.bin"),
    )
    .unwrap();
    let m = write(
        dir.path(),
        "m.kdl",
        "espfleet 1\nmodule \"WROOM-32\" chip=\"esp32\"\nesp-at \"v4.1.1.0\"\nfirmware {\n    release \"release\"\n}\n",
    );
    let d = refused(&m);
    assert_rule(&d, "firmware_invalid");
    assert!(
        d.errors[0]
            .message()
            .contains("not inside the release folder")
    );
}

/// The factory image of the ESP32-C3 example, and the offset of its app.
fn example_factory() -> (Vec<u8>, u32) {
    use espfleet_compiler::build::{self, Jobs};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples/mini-1-c3.kdl");
    let (plan, _) = manifest::load(&path).unwrap();
    let images = build::emit(&plan, Jobs::Sequential).unwrap();
    let factory = images.iter().find(|i| i.name == "factory").unwrap();
    let app = plan.firmware.iter().find(|p| p.name == "app").unwrap();
    (factory.bytes.to_vec(), app.offset)
}

#[test]
fn firmware_import_refuses_a_factory_image_whose_app_checksum_is_wrong() {
    use espfleet_compiler::esp_at::firmware;
    use espfleet_compiler::import::{self, ImportError};
    let (mut factory, app) = example_factory();
    // The untouched image imports (the import tests check that it rebuilds byte for byte).
    import::import(&factory).unwrap();
    // A byte of the app's first segment (past the 24-byte header and 8-byte segment header).
    factory[app as usize + 40] ^= 0x01;
    match import::import(&factory) {
        Err(ImportError::FirmwareInvalid { part, reason, .. }) => {
            assert_eq!(part, "app");
            assert!(
                matches!(reason, firmware::FirmwareError::Checksum { .. }),
                "{reason:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn firmware_import_refuses_a_factory_image_whose_app_sha256_is_wrong() {
    use espfleet_compiler::esp_at::firmware::{self, FirmwareImage};
    use espfleet_compiler::import::{self, ImportError};
    let (mut factory, app) = example_factory();
    let at = app as usize;
    let l = firmware::layout(&factory[at..]).unwrap();
    assert!(l.hash_appended);
    // Flip the last byte of the appended SHA-256; the checksum stays right.
    factory[at + l.data_length + 31] ^= 0x01;
    let img = FirmwareImage::decode(&factory[at..at + l.data_length + 32]).unwrap();
    assert_eq!(img.checksum, img.computed_checksum());
    match import::import(&factory) {
        Err(ImportError::FirmwareInvalid { part, reason, .. }) => {
            assert_eq!(part, "app");
            assert_eq!(reason, firmware::FirmwareError::Digest);
        }
        other => panic!("{other:?}"),
    }
}

// ---- values: as ESP-AT and ESP-IDF accept them ---------------------------------------------

/// Asserts that `name` fails with `rule` and a message containing `what`.
fn assert_value(name: &str, rule: &str, what: &str) {
    let d = refused(&bad("values", name));
    assert_rule(&d, rule);
    assert!(
        d.errors.iter().any(|e| e.message().contains(what)),
        "{name}: no `{what}` in {:?}",
        d.errors.iter().map(|e| e.message()).collect::<Vec<_>>()
    );
}

#[test]
fn values_esp_idf_country_codes_are_accepted() {
    // "01" is ESP-IDF's world safe mode; a third character I/O/X is allowed.
    manifest::load(&bad("values", "ok_country_01.kdl")).unwrap();
    manifest::load(&bad("values", "ok_country_JP_indoor.kdl")).unwrap();
}

#[test]
fn values_country_xx_is_refused() {
    assert_value(
        "country_XX.kdl",
        "value_invalid",
        "not a country code ESP-IDF accepts",
    );
}

#[test]
fn values_country_usa_is_refused() {
    assert_value(
        "country_USA.kdl",
        "value_invalid",
        "third character of `USA`",
    );
}

#[test]
fn values_country_in_lower_case_is_refused_with_a_suggestion() {
    let d = refused(&bad("values", "country_lowercase.kdl"));
    assert_rule(&d, "value_invalid");
    let help = miette::Diagnostic::help(&d.errors[0]).unwrap().to_string();
    assert!(help.contains("did you mean \"DE\""), "{help}");
}

#[test]
fn values_uart_baud_0_is_refused() {
    assert_value("baud_0.kdl", "value_invalid", "baud rate 0 is below 80");
}

#[test]
fn values_uart_baud_above_5_000_000_is_refused() {
    assert_value("baud_too_high.kdl", "value_invalid", "out of range");
}

#[test]
fn values_gatts_odd_length_hex_is_refused() {
    assert_value(
        "gatts_odd_hex.kdl",
        "gatts_invalid",
        "line 3, column value: `value` = `2` has an odd number of hex digits",
    );
}

#[test]
fn values_gatts_malformed_rows_are_refused() {
    let d = refused(&bad("values", "gatts_malformed_row.kdl"));
    let messages: Vec<&str> = d.errors.iter().map(|e| e.message()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("line 3: the row has 6 fields")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("line 4: the row has 8 fields")),
        "{messages:?}"
    );
}

#[test]
fn values_gatts_value_longer_than_max_len_is_refused() {
    assert_value(
        "gatts_value_too_long.kdl",
        "gatts_invalid",
        "`value` is 2 bytes, more than `val_max_len` = 1",
    );
}

#[test]
fn values_service_value_with_odd_hex_is_refused() {
    assert_value(
        "service_value_odd_hex.kdl",
        "gatts_invalid",
        "whole bytes of hex",
    );
}

#[test]
fn values_repeated_property_is_a_warning() {
    let (plan, warnings) = manifest::load(&bad("values", "property_repeated.kdl")).unwrap();
    assert_rule(&warnings, "property_repeated");
    assert!(warnings.errors.iter().all(|e| e.is_warning()));
    // KDL's rule stands (the last one wins); the warning says so.
    assert_eq!(plan.factory.uart_baudrate, 9600);
    // --deny-warnings turns it into an error.
    let denied = Diagnostics::deny_warnings(
        manifest::load(&bad("values", "property_repeated.kdl")),
        true,
    )
    .unwrap_err();
    assert!(denied.has_errors());
    assert_rule(&denied, "property_repeated");
}

#[test]
fn values_expired_certificate_is_a_warning_that_deny_warnings_makes_an_error() {
    let path = bad("values", "expired_ca.kdl");
    let (_, warnings) = manifest::load(&path).unwrap();
    assert_rule(&warnings, "certificate_invalid");
    assert!(Diagnostics::deny_warnings(manifest::load(&path), true).is_err());
    assert!(Diagnostics::deny_warnings(manifest::load(&path), false).is_ok());
}

#[test]
fn secrets_nvs_csv_with_an_inline_key_shows_no_source_lines() {
    use espfleet_compiler::nvs::{self, NvsErrorKind, csv};
    // A key inline as a string value is legitimate NVS data. An error in another row must not
    // quote the rows around it; an error in the key's own row (here: the key given as a u8)
    // must not repeat the value.
    let key = std::fs::read_to_string(example_key()).unwrap();
    let generate = |rows: &str| {
        let input = csv::CsvInput {
            name: "mfg.csv".into(),
            text: format!("key,type,encoding,value\nns,namespace,,\n{rows}"),
        };
        let err = csv::generate(&[input], &nvs::Options::new(0x6000), Path::new("/")).unwrap_err();
        let mut out = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &err)
            .unwrap();
        assert_no_key_material(&out);
        (err, out)
    };
    let (_, out) = generate(&format!(
        "client_key,data,string,\"{key}\"\nbad,data,u8,300\n"
    ));
    assert!(out.contains("out of range"), "{out}");
    let (err, out) = generate(&format!("client_key,data,u8,\"{key}\"\n"));
    assert!(
        matches!(err.kind(), NvsErrorKind::SecretRowInvalid { code } if code == "espfleet::nvs::invalid_integer"),
        "{out}"
    );
}
