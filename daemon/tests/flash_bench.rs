//! Benchmark harness for `tests/bench/flash.sh` (ignored by `cargo test`; timing belongs in
//! benchmarks, not tests). Run it through the script:
//!
//! ```text
//! bash tests/bench/flash.sh
//! ```
//!
//! One run flashes a full ESP-AT part set for the ESP32-C3 (bootloader, partition table,
//! otadata, at_customize, mfg_nvs, a 1.5 MB app) to the simulator at an emulated 921,600 baud
//! with realistic UART pacing and flash timings, and prints:
//!
//! * espfleet's time for a full flash of an erased board, esptool's time for the same parts on a
//!   fresh simulator of the same configuration, and the ratio;
//! * the UART wire limit for the bytes each tool actually sent (host to device, SLIP escaping
//!   included, as counted by the simulator) and how close each came to it;
//! * espfleet's time for an unchanged re-flash, against its full flash.
//!
//! The flash contents are checked after each full flash (the benchmark is void if they are
//! wrong). Set `ESPFLEET_BENCH_KEEP=DIR` to keep the part files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use espfleet_compiler::target::Chip;
use espfleet_sim::{Pacing, SimConfig, SimHandle, Simulator};

const BAUD: u32 = 921_600;

/// A small deterministic generator (PCG-style LCG), so every run flashes the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
}

/// Firmware-like bytes: instruction words drawn from a vocabulary (code repeats
/// instructions and addresses), literal constants and strings. Deflate shrinks this to roughly
/// 60 % (ESP-AT app images compress to 55-65 % with esptool).
fn firmware(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let words: Vec<[u8; 4]> = (0..4096).map(|_| rng.next().to_le_bytes()).collect();
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        match rng.next() % 100 {
            0..62 => out.extend_from_slice(&words[(rng.next() % 4096) as usize]),
            62..90 => out.extend_from_slice(&rng.next().to_le_bytes()),
            _ => out.extend_from_slice(
                format!(
                    "+CWJAP:\"ssid{}\",{}\r\nOK\r\n\0",
                    rng.next() % 97,
                    rng.next() % 7
                )
                .as_bytes(),
            ),
        }
    }
    out.truncate(len);
    out
}

/// A partition-table-like blob: 32-byte entries, then erased bytes.
fn table(seed: u64, entries: usize, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = vec![0xFFu8; len];
    for e in 0..entries {
        out[e * 32] = 0xAA;
        out[e * 32 + 1] = 0x50;
        for b in &mut out[e * 32 + 2..e * 32 + 32] {
            *b = u8::try_from(rng.next() % 96 + 32).unwrap();
        }
    }
    out
}

/// An mfg_nvs-like image: 4 KiB NVS pages, the first ones holding entries with certificate-like
/// text, the rest erased.
fn mfg_nvs(len: usize) -> Vec<u8> {
    let mut rng = Rng(77);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = vec![0xFFu8; len];
    for page in 0..(len / 4096).min(8) {
        let p = page * 4096;
        out[p..p + 4].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
        out[p + 4..p + 8].copy_from_slice(&u32::try_from(page).unwrap().to_le_bytes());
        for b in &mut out[p + 64..p + 64 + 3000] {
            *b = alphabet[(rng.next() % 64) as usize];
        }
    }
    out
}

struct Part {
    offset: u32,
    path: PathBuf,
    data: Vec<u8>,
}

/// The ESP-AT ESP32-C3 part set at the offsets of its `partitions_at.csv` / `at_customize.csv`.
fn esp_at_parts(dir: &Path) -> Vec<Part> {
    let specs: [(&str, u32, Vec<u8>); 6] = [
        ("bootloader", 0x0, firmware(1, 25 * 1024)),
        ("partition-table", 0x8000, table(2, 6, 3072)),
        ("ota_data_initial", 0xd000, vec![0xFF; 0x2000]),
        ("at_customize", 0x1e000, table(3, 2, 3072)),
        ("mfg_nvs", 0x1f000, mfg_nvs(112 * 1024)),
        ("esp-at", 0x60000, firmware(4, 1_536 * 1024)),
    ];
    specs
        .into_iter()
        .map(|(name, offset, data)| {
            let path = dir.join(format!("{name}.bin"));
            std::fs::write(&path, &data).unwrap();
            Part { offset, path, data }
        })
        .collect()
}

fn sim() -> SimHandle {
    let mut config = SimConfig::new(Chip::Esp32c3);
    config.pacing = Pacing::REALISTIC;
    Simulator::spawn(config).unwrap()
}

fn check_contents(sim: &SimHandle, parts: &[Part], who: &str) {
    let flash = sim.flash_contents();
    for p in parts {
        let at = p.offset as usize;
        assert!(
            flash[at..at + p.data.len()] == p.data[..],
            "{who}: {} is wrong on the flash",
            p.path.display()
        );
    }
}

struct Run {
    time: Duration,
    sent: u64,
}

fn timed(sim: &SimHandle, cmd: &mut Command, who: &str) -> Run {
    let before = sim.stats().bytes_received;
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let time = start.elapsed();
    assert!(
        out.status.success(),
        "{who} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        time,
        sent: sim.stats().bytes_received - before,
    }
}

fn espfleet(port: &Path, parts: &[Part]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_espfleet"));
    cmd.args([
        "flash",
        "--quiet",
        "--chip",
        "esp32c3",
        "--baud",
        &BAUD.to_string(),
        "--port",
    ])
    .arg(port);
    for p in parts {
        cmd.arg("--image")
            .arg(format!("{:#x}={}", p.offset, p.path.display()));
    }
    cmd
}

fn esptool(port: &Path, parts: &[Part]) -> Command {
    let python = std::env::var_os("ESPFLEET_ORACLE_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-oracles/bin/python"),
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "esptool is missing: set ESPFLEET_ORACLE_PYTHON or run `bash tests/run.sh`"
    );
    let mut cmd = Command::new(python);
    cmd.args(["-m", "esptool", "--chip", "esp32c3", "--port"])
        .arg(port)
        .args([
            "--baud",
            &BAUD.to_string(),
            "--before",
            "no-reset",
            "--after",
            "no-reset",
            "write-flash",
        ]);
    for p in parts {
        cmd.arg(format!("{:#x}", p.offset)).arg(&p.path);
    }
    cmd
}

/// Seconds the UART needs for `bytes` at 8N1 (10 bit-times per byte).
fn wire(bytes: u64) -> f64 {
    // Byte counts here stay far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let bytes = bytes as f64;
    bytes * 10.0 / f64::from(BAUD)
}

#[test]
#[ignore = "benchmark: run `bash tests/bench/flash.sh`"]
fn flash_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("ESPFLEET_BENCH_KEEP").map(PathBuf::from);
    let part_dir = keep.clone().unwrap_or_else(|| dir.path().to_owned());
    std::fs::create_dir_all(&part_dir).unwrap();
    let parts = esp_at_parts(&part_dir);
    let total: usize = parts.iter().map(|p| p.data.len()).sum();

    let ours_sim = sim();
    let ours = timed(
        &ours_sim,
        &mut espfleet(ours_sim.path(), &parts),
        "espfleet (full)",
    );
    check_contents(&ours_sim, &parts, "espfleet");
    let again = timed(
        &ours_sim,
        &mut espfleet(ours_sim.path(), &parts),
        "espfleet (unchanged)",
    );
    drop(ours_sim);

    let their_sim = sim();
    let theirs = timed(
        &their_sim,
        &mut esptool(their_sim.path(), &parts),
        "esptool",
    );
    check_contents(&their_sim, &parts, "esptool");
    drop(their_sim);

    let s = Duration::as_secs_f64;
    println!();
    println!(
        "flash benchmark: ESP-AT part set for esp32c3, {} parts, {total} bytes, simulator at {BAUD} baud",
        parts.len()
    );
    println!(
        "(realistic pacing: 10 bit-times per byte both ways, typical NOR erase/program/read times)"
    );
    println!();
    println!(
        "{:<28} {:>9} {:>14} {:>12} {:>12}",
        "run", "time s", "bytes sent", "wire limit s", "% of wire"
    );
    for (name, run) in [
        ("espfleet, full flash", &ours),
        ("esptool 5.6, full flash", &theirs),
        ("espfleet, unchanged", &again),
    ] {
        println!(
            "{name:<28} {:>9.2} {:>14} {:>12.2} {:>11.1}%",
            s(&run.time),
            run.sent,
            wire(run.sent),
            100.0 * wire(run.sent) / s(&run.time)
        );
    }
    println!();
    let speed = s(&theirs.time) / s(&ours.time);
    let efficiency = wire(ours.sent) / s(&ours.time);
    let unchanged = s(&again.time) / s(&ours.time);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "espfleet vs esptool (full):   {speed:.2}x as fast    target >= 1.00x  {}",
        verdict(speed >= 1.0)
    );
    println!(
        "espfleet vs its wire limit:   {:.1}%            target >= 90%    {}",
        100.0 * efficiency,
        verdict(efficiency >= 0.9)
    );
    println!(
        "unchanged / full re-flash:    {:.1}%             target < 10%     {}",
        100.0 * unchanged,
        verdict(unchanged < 0.1)
    );
    if let Some(k) = keep {
        println!("part files kept in {}", k.display());
    }
}
