//! `espfleet merge-bin` against `esptool merge-bin` (PyPI esptool 5.6.0, the oracle, run through
//! `$ESPFLEET_ORACLE_PYTHON`): seeded random part sets, 24 per chip and per output format
//! (raw, hex, uf2), each merged by both tools with the same command line; the outputs must be
//! byte-identical. Expected bytes come only from esptool.
//!
//! A part set mixes what users merge: a bootloader at the chip's bootloader offset (esptool's
//! own `elf2image` fixtures with and without a digest, images built here with random headers
//! and segments, truncated or fake images that must be left alone), partition-table-sized and
//! larger random parts, empty files, parts at unaligned addresses, sometimes an Intel HEX input
//! (written here with random record lengths, so the reader is tested on layouts esptool's own
//! writer never produces). Flash mode, frequency and size are each `keep` or a random value;
//! raw cases draw a target offset and a pad size, UF2 cases a chunk size and MD5 on or off.

// Random test inputs are made by truncating random words on purpose.
#![allow(clippy::cast_possible_truncation)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use espfleet_compiler::esp_at::firmware::{self, ExtendedHeader, FirmwareImage};

const FORMATS: [&str; 3] = ["raw", "hex", "uf2"];
const CHIPS: [&str; 2] = ["esp32", "esp32c3"];
const CASES_PER_COMBINATION: u64 = 24;

/// xorshift64*: small, seeded, good enough to vary test inputs.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let ff_run = self.chance(30);
        (0..len)
            .map(|i| {
                if ff_run && (i / 64) % 3 == 0 {
                    0xFF
                } else {
                    self.next() as u8
                }
            })
            .collect()
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn oracle_python() -> PathBuf {
    if let Some(p) = std::env::var_os("ESPFLEET_ORACLE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo().join(".venv-oracles/bin/python");
    assert!(
        venv.exists(),
        "no oracle Python: set ESPFLEET_ORACLE_PYTHON or run `bash tests/run.sh` once"
    );
    venv
}

/// A bootloader-offset part: real fixtures, random valid images, or things that only look like
/// one (which esptool must leave alone).
fn bootloader(rng: &mut Rng, chip: &str) -> Vec<u8> {
    let fixtures = repo().join("compiler/tests/data/esp_at/firmware");
    match rng.below(6) {
        0 => fs_err::read(fixtures.join(format!("{chip}_bootloader.bin"))).unwrap(),
        1 => fs_err::read(fixtures.join(format!("{chip}_bootloader_nodigest.bin"))).unwrap(),
        2 | 3 => {
            let segments = (0..=rng.below(4))
                .map(|_| {
                    let len = 1 + rng.below(3000) as usize;
                    (0x3FF0_0000 + (rng.below(0x1000) as u32) * 4, rng.bytes(len))
                })
                .collect();
            let mut img = FirmwareImage {
                flash_mode: rng.below(4) as u8,
                flash_size_freq: (rng.below(8) as u8) << 4 | [0, 1, 2, 0xF][rng.below(4) as usize],
                entry: rng.next() as u32,
                extended: ExtendedHeader {
                    wp_pin: 0xEE,
                    spi_drive: [0; 3],
                    chip_id: if chip == "esp32" { 0 } else { 5 },
                    min_chip_rev: 0,
                    min_chip_rev_full: 0,
                    max_chip_rev_full: 399,
                    reserved: [0; 4],
                    hash_appended: rng.chance(60),
                },
                segments,
                checksum: 0,
                digest: None,
                trailing: Vec::new(),
            };
            img.seal();
            let mut bytes = img.encode();
            if rng.chance(30) {
                // Bytes after the image (as in an already merged file) stay after the digest.
                let n = 1 + rng.below(500) as usize;
                let extra = rng.bytes(n);
                bytes.extend(extra);
            }
            bytes
        }
        4 => {
            // Starts like an image but is cut short: not valid, so not patched.
            let mut bytes = fs_err::read(fixtures.join(format!("{chip}_bootloader.bin"))).unwrap();
            bytes.truncate(24 + rng.below(200) as usize);
            bytes
        }
        _ => {
            let len = rng.below(5000) as usize;
            let mut bytes = rng.bytes(len);
            if rng.chance(50) && !bytes.is_empty() {
                bytes[0] = 0xE9; // the magic, then garbage
            }
            bytes
        }
    }
}

/// An Intel HEX file for `data` at `addr`, with random record lengths and extended linear
/// address records (type 04) whenever the upper 16 bits change.
fn hex_file(rng: &mut Rng, addr: u32, data: &[u8]) -> String {
    let mut out = String::new();
    let mut high = None;
    let mut at = 0usize;
    while at < data.len() {
        let cur = addr + at as u32;
        if high != Some(cur >> 16) {
            high = Some(cur >> 16);
            let h = (cur >> 16) as u16;
            let rec = [2u8, 0, 0, 4, (h >> 8) as u8, h as u8];
            push_record(&mut out, &rec);
        }
        let room = 0x1_0000 - (cur & 0xFFFF) as usize;
        let n = (1 + rng.below(32) as usize).min(room).min(data.len() - at);
        let mut rec = vec![n as u8, (cur >> 8) as u8, cur as u8, 0];
        rec.extend_from_slice(&data[at..at + n]);
        push_record(&mut out, &rec);
        at += n;
    }
    out.push_str(":00000001FF\n");
    out
}

fn push_record(out: &mut String, rec: &[u8]) {
    let sum = rec.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    out.push(':');
    for b in rec.iter().chain(std::iter::once(&sum.wrapping_neg())) {
        write!(out, "{b:02X}").unwrap();
    }
    out.push('\n');
}

/// What a case exercises, for the summary line.
#[derive(Default)]
struct Coverage {
    /// A valid image at the bootloader offset and at least one setting other than `keep`.
    patched: bool,
    /// One input is Intel HEX.
    hex_input: bool,
}

/// Writes one random case into `dir` and returns the `merge-bin` arguments (without `--chip`,
/// which esptool takes before the command).
fn random_case(rng: &mut Rng, dir: &Path, chip: &str, format: &str) -> (Vec<String>, Coverage) {
    let mut coverage = Coverage::default();
    let boot_at: u64 = if chip == "esp32" { 0x1000 } else { 0 };
    let mut args: Vec<String> = vec!["-o".into(), format!("out.{format}")];
    args.extend(["--format".into(), format.into()]);
    let mode = rng.pick(&["keep", "keep", "qio", "qout", "dio", "dout"]);
    let freq = rng.pick(&["keep", "keep", "80m", "40m", "26m", "20m"]);
    let size = rng.pick(&["keep", "keep", "1MB", "2MB", "4MB", "8MB", "16MB"]);
    for (option, value) in [
        ("--flash-mode", mode),
        ("--flash-freq", freq),
        ("--flash-size", size),
    ] {
        if value != "keep" || rng.chance(30) {
            args.extend([option.to_owned(), value.to_owned()]);
        }
    }
    let settings = [mode, freq, size].iter().any(|v| *v != "keep");

    // Parts in ascending sectors; the first sector is the bootloader's in most cases.
    let mut pairs: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut next_sector: u64;
    if rng.chance(85) {
        let data = bootloader(rng, chip);
        // (Our own image parser, used only to report coverage.)
        coverage.patched = settings && firmware::layout(&data).is_ok();
        next_sector = (boot_at + data.len() as u64)
            .div_ceil(0x1000)
            .max(boot_at / 0x1000 + 1);
        pairs.push((boot_at, data));
    } else {
        next_sector = rng.below(4);
    }
    for _ in 0..=rng.below(5) {
        let sector = next_sector + rng.below(64);
        let unaligned = if rng.chance(20) { rng.below(0x800) } else { 0 };
        let len = match rng.below(5) {
            0 => 0,
            1 => 3072,
            2 => rng.below(300) as usize,
            _ => rng.below(40_000) as usize,
        };
        let addr = sector * 0x1000 + unaligned;
        let data = rng.bytes(len);
        next_sector = (addr + len as u64).div_ceil(0x1000).max(sector + 1);
        pairs.push((addr, data));
    }
    // esptool sorts the parts itself; give them in a shuffled order.
    for i in (1..pairs.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        pairs.swap(i, j);
    }
    let hex_input = rng.chance(25);
    coverage.hex_input = hex_input && pairs.first().is_some_and(|p| !p.1.is_empty());
    let first = pairs.iter().map(|p| p.0).min().unwrap();
    for (i, (addr, data)) in pairs.iter().enumerate() {
        let (name, bytes) = if hex_input && i == 0 && !data.is_empty() {
            (
                format!("part{i}.hex"),
                hex_file(rng, *addr as u32, data).into_bytes(),
            )
        } else {
            (format!("part{i}.bin"), data.clone())
        };
        fs_err::write(dir.join(&name), bytes).unwrap();
        args.extend([format!("{addr:#x}"), name]);
    }

    if rng.chance(40) {
        let offset = (first / 0x1000) * 0x1000
            - if first >= 0x1000 {
                0x1000 * rng.below(2)
            } else {
                0
            };
        args.extend(["--target-offset".into(), format!("{offset:#x}")]);
    }
    if rng.chance(40) {
        let pad = rng.pick(&["256KB", "512KB", "1MB", "2MB", "4MB"]);
        args.extend(["--pad-to-size".into(), pad.into()]);
    }
    if format == "uf2" {
        let md5 = rng.chance(50);
        if !md5 {
            args.push("--md5-disable".into());
        }
        if rng.chance(50) {
            let most = if md5 { 113 } else { 119 };
            args.extend([
                "--chunk-size".into(),
                format!("{}", 4 * (1 + rng.below(most))),
            ]);
        }
    }
    (args, coverage)
}

fn run_espfleet(dir: &Path, chip: &str, args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_espfleet"))
        .arg("merge-bin")
        .args(["--chip", chip])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Runs every job through esptool in one Python process; returns their exit statuses.
fn run_esptool(jobs: &[(PathBuf, Vec<String>)]) -> Vec<i32> {
    let spec: Vec<serde_json::Value> = jobs
        .iter()
        .map(|(cwd, argv)| serde_json::json!({ "cwd": cwd, "argv": argv }))
        .collect();
    let results = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(oracle_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/merge_bin_oracle_batch.py"))
        .arg(results.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &spec).unwrap();
    assert!(child.wait().unwrap().success(), "the esptool batch failed");
    serde_json::from_slice(&fs_err::read(results.path()).unwrap()).unwrap()
}

#[test]
fn merge_bin_matches_esptool_on_seeded_random_part_sets() {
    let root = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    let mut cases = Vec::new();
    for (ci, chip) in CHIPS.iter().enumerate() {
        for (fi, format) in FORMATS.iter().enumerate() {
            for seed in 0..CASES_PER_COMBINATION {
                let mut rng = Rng::new(1000 * ci as u64 + 100 * fi as u64 + seed + 1);
                let dir = root.path().join(format!("{chip}-{format}-{seed}"));
                fs_err::create_dir(&dir).unwrap();
                let (args, coverage) = random_case(&mut rng, &dir, chip, format);
                let ours = run_espfleet(&dir, chip, &args);
                assert!(
                    ours.status.success(),
                    "{chip} {format} seed {seed}: espfleet merge-bin {args:?} failed:\n{}",
                    String::from_utf8_lossy(&ours.stderr)
                );
                fs_err::rename(dir.join(format!("out.{format}")), dir.join("ours")).unwrap();
                let mut esptool_argv = vec![
                    "--chip".to_owned(),
                    (*chip).to_owned(),
                    "merge-bin".to_owned(),
                ];
                esptool_argv.extend(args.iter().cloned());
                jobs.push((dir.clone(), esptool_argv));
                cases.push((dir, *chip, *format, seed, args, coverage));
            }
        }
    }
    let statuses = run_esptool(&jobs);
    let (mut patched, mut hex_inputs) = (0, 0);
    for ((dir, chip, format, seed, args, coverage), status) in cases.iter().zip(statuses) {
        assert_eq!(
            status, 0,
            "{chip} {format} seed {seed}: esptool failed on {args:?}"
        );
        let ours = fs_err::read(dir.join("ours")).unwrap();
        let theirs = fs_err::read(dir.join(format!("out.{format}"))).unwrap();
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{chip} {format} seed {seed}: sizes differ for {args:?}"
        );
        assert!(
            ours == theirs,
            "{chip} {format} seed {seed}: outputs differ for {args:?} (first difference at byte {})",
            ours.iter()
                .zip(&theirs)
                .position(|(a, b)| a != b)
                .unwrap_or(0)
        );
        patched += usize::from(coverage.patched);
        hex_inputs += usize::from(coverage.hex_input);
    }
    let total = cases.len();
    println!(
        "merge-bin: {total} seeded random part sets ({CASES_PER_COMBINATION} per chip and format), byte-identical to \
         esptool 5.6.0; {patched} with a bootloader header to patch, {hex_inputs} with an Intel \
         HEX input"
    );
    assert!(
        patched >= total / 4 && hex_inputs >= total / 10,
        "too little coverage"
    );
    assert_eq!(
        total,
        CHIPS.len() * FORMATS.len() * CASES_PER_COMBINATION as usize
    );
}

#[test]
fn esptool_argument_files_and_old_spellings_work() {
    // ESP-AT's own call: `merge_bin --fill-flash-size SIZE @flash_project_args`, whose first
    // line has the underscore option names.
    let dir = tempfile::tempdir().unwrap();
    let fixtures = repo().join("compiler/tests/data/esp_at/firmware");
    fs_err::copy(
        fixtures.join("esp32_bootloader.bin"),
        dir.path().join("bootloader.bin"),
    )
    .unwrap();
    fs_err::copy(fixtures.join("esp32_app.bin"), dir.path().join("app.bin")).unwrap();
    fs_err::write(dir.path().join("table.bin"), [0xAA; 3072]).unwrap();
    fs_err::write(
        dir.path().join("flash_project_args"),
        "--flash_mode dio --flash_freq 40m --flash_size 4MB\n0x1000 bootloader.bin\n0x8000 table.bin\n0x10000 app.bin\n",
    )
    .unwrap();
    let args: Vec<String> = [
        "-o",
        "out.bin",
        "--fill-flash-size",
        "4MB",
        "@flash_project_args",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let ours = Command::new(env!("CARGO_BIN_EXE_espfleet"))
        .args(["merge_bin", "--chip", "esp32"])
        .args(&args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    fs_err::rename(dir.path().join("out.bin"), dir.path().join("ours.bin")).unwrap();
    let mut esptool_argv = vec![
        "--chip".to_owned(),
        "esp32".to_owned(),
        "merge_bin".to_owned(),
    ];
    esptool_argv.extend(args);
    assert_eq!(run_esptool(&[(dir.path().to_owned(), esptool_argv)]), [0]);
    let ours = fs_err::read(dir.path().join("ours.bin")).unwrap();
    assert_eq!(ours.len(), 4 << 20);
    assert!(ours == fs_err::read(dir.path().join("out.bin")).unwrap());
    // The bootloader header was patched to dio / 4MB / 40m.
    assert_eq!(&ours[0x1002..0x1004], &[2, 0x20]);
}

#[test]
fn failures_agree_with_esptool_and_write_nothing() {
    // Each case fails in esptool too (exit 2 there; espfleet: 1 for a failed merge, 2 for bad
    // arguments), and neither writes an output.
    let cases: [(&str, &[&str], i32); 5] = [
        (
            "overlap in one sector",
            &["0x0", "a.bin", "0x800", "b.bin"],
            1,
        ),
        (
            "part below the target offset",
            &["--target-offset", "0x2000", "0x1000", "a.bin"],
            1,
        ),
        (
            "odd number of address/file arguments",
            &["0x0", "a.bin", "0x1000"],
            2,
        ),
        ("address that is not a number", &["zero", "a.bin"], 2),
        ("missing file", &["0x0", "missing.bin"], 1),
    ];
    for (what, args, code) in cases {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("a.bin"), [1u8; 0x900]).unwrap();
        fs_err::write(dir.path().join("b.bin"), [2u8; 16]).unwrap();
        let mut full: Vec<String> = vec!["-o".into(), "out.bin".into()];
        full.extend(args.iter().map(|s| (*s).to_owned()));
        let ours = run_espfleet(dir.path(), "esp32", &full);
        assert_eq!(
            ours.status.code(),
            Some(code),
            "{what}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        assert!(
            !dir.path().join("out.bin").exists(),
            "{what}: output written"
        );
        let mut esptool_argv = vec![
            "--chip".to_owned(),
            "esp32".to_owned(),
            "merge-bin".to_owned(),
        ];
        esptool_argv.extend(full);
        let theirs = run_esptool(&[(dir.path().to_owned(), esptool_argv)]);
        assert_ne!(theirs, [0], "{what}: esptool accepted it");
        assert!(
            !dir.path().join("out.bin").exists(),
            "{what}: esptool wrote an output"
        );
    }
}
