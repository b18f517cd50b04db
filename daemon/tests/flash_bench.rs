//! Benchmark harness for `tests/bench/flash.sh` (ignored by `cargo test`; timing belongs in
//! benchmarks, not tests). Run it through the script:
//!
//! ```text
//! bash tests/bench/flash.sh
//! ```
//!
//! For each chip (ESP32-C3, then ESP32), one run flashes a full ESP-AT part set (bootloader,
//! partition table, otadata, at_customize, mfg_nvs, a 1.5 MB app) to the simulator at an
//! emulated 921,600 baud with realistic UART pacing and flash timings, and prints:
//!
//! * espfleet's time for a full flash of an erased board, esptool's time for the same parts on a
//!   fresh simulator of the same configuration, and the ratio;
//! * connect-to-first-byte: from starting the tool (which opens the port and connects) to the
//!   board receiving the first flash data block, for both tools: the per-board cost of
//!   connecting, identifying, comparing and loading the stub;
//! * the UART wire limit for the bytes each tool actually sent (host to device, SLIP escaping
//!   included, as counted by the simulator) and how close each came to it;
//! * espfleet's time for an unchanged re-flash, against its full flash;
//! * for the ESP32, an unchanged re-flash at 115,200 baud (no baud switch), against esptool's
//!   `verify-flash` of the same parts at the same speed (its way to check a board holds them).
//!
//! The simulator answers as the real ROMs do (`daemon/sim/README.md`): the ESP32 ROM refuses
//! GET_SECURITY_INFO in another command's reply, so a client that waits for its own opcode
//! loses its timeout there.
//!
//! The flash contents are checked after each full flash (the benchmark is void if they are
//! wrong). Set `ESPFLEET_BENCH_KEEP=DIR` to keep the part files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use espfleet_compiler::target::Chip;
use espfleet_sim::protocol::op;
use espfleet_sim::{Pacing, SimConfig, SimEvent, SimHandle, Simulator};

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

/// The ESP-AT part set for `chip`: the ESP32-C3 one at the offsets of its `partitions_at.csv`
/// and `at_customize.csv`; for the ESP32 the same parts with the bootloader at 0x1000 and the
/// app at 0x100000, as in the ESP32 ESP-AT tables.
fn esp_at_parts(chip: Chip, dir: &Path) -> Vec<Part> {
    let (boot, app) = match chip {
        Chip::Esp32 => (0x1000, 0x10_0000),
        Chip::Esp32c3 => (0x0, 0x60000),
    };
    let specs: [(&str, u32, Vec<u8>); 6] = [
        ("bootloader", boot, firmware(1, 25 * 1024)),
        ("partition-table", 0x8000, table(2, 6, 3072)),
        ("ota_data_initial", 0xd000, vec![0xFF; 0x2000]),
        ("at_customize", 0x1e000, table(3, 2, 3072)),
        ("mfg_nvs", 0x1f000, mfg_nvs(112 * 1024)),
        ("esp-at", app, firmware(4, 1_536 * 1024)),
    ];
    let dir = dir.join(chip.name());
    std::fs::create_dir_all(&dir).unwrap();
    specs
        .into_iter()
        .map(|(name, offset, data)| {
            let path = dir.join(format!("{name}.bin"));
            std::fs::write(&path, &data).unwrap();
            Part { offset, path, data }
        })
        .collect()
}

/// A realistically paced simulator that notes when the first flash data block arrives.
struct Board {
    sim: SimHandle,
    first_data: Arc<Mutex<Option<Instant>>>,
}

fn board(chip: Chip) -> Board {
    let first_data = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&first_data);
    let mut config = SimConfig::new(chip);
    config.pacing = Pacing::REALISTIC;
    config.on_event = Some(Arc::new(move |e: &SimEvent| {
        if let SimEvent::Command { op, .. } = e
            && matches!(*op, op::FLASH_DATA | op::FLASH_DEFL_DATA)
        {
            seen.lock().unwrap().get_or_insert_with(Instant::now);
        }
    }));
    Board {
        sim: Simulator::spawn(config).unwrap(),
        first_data,
    }
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
    /// From starting the tool to the board receiving the first flash data block.
    first_byte: Option<Duration>,
}

fn timed(board: &Board, cmd: &mut Command, who: &str) -> Run {
    let before = board.sim.stats().bytes_received;
    *board.first_data.lock().unwrap() = None;
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
        sent: board.sim.stats().bytes_received - before,
        first_byte: board.first_data.lock().unwrap().map(|t| t - start),
    }
}

fn espfleet(chip: Chip, baud: u32, port: &Path, parts: &[Part]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_espfleet"));
    cmd.args([
        "flash",
        "--quiet",
        "--chip",
        chip.name(),
        "--baud",
        &baud.to_string(),
        "--before",
        "no-reset",
        "--after",
        "no-reset",
        "--port",
    ])
    .arg(port);
    for p in parts {
        cmd.arg("--image")
            .arg(format!("{:#x}={}", p.offset, p.path.display()));
    }
    cmd
}

/// esptool 5.6 `write-flash` (or `verify-flash`), stub and compression on: its defaults.
fn esptool(chip: Chip, baud: u32, verb: &str, port: &Path, parts: &[Part]) -> Command {
    let python = std::env::var_os("ESPFLEET_ORACLE_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-oracles/bin/python"),
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "esptool is missing: set ESPFLEET_ORACLE_PYTHON or run `bash tests/run.sh`"
    );
    let mut cmd = Command::new(python);
    cmd.args(["-m", "esptool", "--chip", chip.name(), "--port"])
        .arg(port)
        .args([
            "--baud",
            &baud.to_string(),
            "--before",
            "no-reset",
            "--after",
            "no-reset",
            verb,
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

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.2}", d.as_secs_f64()))
}

/// Flashes `chip`'s part set with both tools and prints the figures.
fn bench_chip(chip: Chip, part_dir: &Path) {
    let parts = esp_at_parts(chip, part_dir);
    let ours_board = board(chip);
    let port = ours_board.sim.path().to_owned();
    let ours = timed(
        &ours_board,
        &mut espfleet(chip, BAUD, &port, &parts),
        "espfleet (full)",
    );
    check_contents(&ours_board.sim, &parts, "espfleet");
    let again = timed(
        &ours_board,
        &mut espfleet(chip, BAUD, &port, &parts),
        "espfleet (unchanged)",
    );
    let slow_again = (chip == Chip::Esp32).then(|| {
        timed(
            &ours_board,
            &mut espfleet(chip, 115_200, &port, &parts),
            "espfleet (unchanged, 115200)",
        )
    });
    drop(ours_board);

    let their_board = board(chip);
    let port = their_board.sim.path().to_owned();
    let theirs = timed(
        &their_board,
        &mut esptool(chip, BAUD, "write-flash", &port, &parts),
        "esptool",
    );
    check_contents(&their_board.sim, &parts, "esptool");
    let their_verify = (chip == Chip::Esp32).then(|| {
        timed(
            &their_board,
            &mut esptool(chip, 115_200, "verify-flash", &port, &parts),
            "esptool verify-flash (115200)",
        )
    });
    drop(their_board);
    report(
        chip,
        &parts,
        &Figures {
            ours,
            again,
            slow_again,
            theirs,
            their_verify,
        },
    );
}

/// What [`bench_chip`] measured.
struct Figures {
    ours: Run,
    again: Run,
    slow_again: Option<Run>,
    theirs: Run,
    their_verify: Option<Run>,
}

fn report(chip: Chip, parts: &[Part], f: &Figures) {
    let Figures {
        ours,
        again,
        slow_again,
        theirs,
        their_verify,
    } = f;
    let total: usize = parts.iter().map(|p| p.data.len()).sum();
    let s = Duration::as_secs_f64;
    println!();
    println!(
        "flash benchmark: ESP-AT part set for {chip}, {} parts, {total} bytes, simulator at {BAUD} baud",
        parts.len()
    );
    println!(
        "(realistic pacing: 10 bit-times per byte both ways, typical NOR erase/program/read times)"
    );
    println!();
    println!(
        "{:<34} {:>9} {:>13} {:>14} {:>12} {:>10}",
        "run", "time s", "first byte s", "bytes sent", "wire limit s", "% of wire"
    );
    for (name, run) in [
        ("espfleet, full flash", ours),
        ("esptool 5.6, full flash", theirs),
        ("espfleet, unchanged", again),
    ] {
        println!(
            "{name:<34} {:>9.2} {:>13} {:>14} {:>12.2} {:>9.1}%",
            s(&run.time),
            secs(run.first_byte),
            run.sent,
            wire(run.sent),
            100.0 * wire(run.sent) / s(&run.time)
        );
    }
    if let (Some(ours), Some(theirs)) = (slow_again, their_verify) {
        println!(
            "{:<34} {:>9.2}",
            "espfleet, unchanged, 115200 baud",
            s(&ours.time)
        );
        println!(
            "{:<34} {:>9.2}",
            "esptool verify-flash, 115200 baud",
            s(&theirs.time)
        );
    }
    println!();
    let speed = s(&theirs.time) / s(&ours.time);
    let efficiency = wire(ours.sent) / s(&ours.time);
    let unchanged = s(&again.time) / s(&ours.time);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "{chip}: espfleet vs esptool (full):   {speed:.2}x as fast    target >= 1.00x  {}",
        verdict(speed >= 1.0)
    );
    if let (Some(a), Some(b)) = (ours.first_byte, theirs.first_byte) {
        println!(
            "{chip}: connect-to-first-byte:       espfleet {:.2} s, esptool {:.2} s ({:.2}x as fast)",
            s(&a),
            s(&b),
            s(&b) / s(&a)
        );
    }
    println!(
        "{chip}: espfleet vs its wire limit:   {:.1}%            target >= 90%    {}",
        100.0 * efficiency,
        verdict(efficiency >= 0.9)
    );
    println!(
        "{chip}: unchanged / full re-flash:    {:.1}%             target < 10%     {}",
        100.0 * unchanged,
        verdict(unchanged < 0.1)
    );
    if let (Some(ours), Some(theirs)) = (slow_again, their_verify) {
        println!(
            "{chip}: unchanged at 115200 baud:     {:.2} s (esptool verify-flash {:.2} s, {:.2}x as fast)  target < 2 s  {}",
            s(&ours.time),
            s(&theirs.time),
            s(&theirs.time) / s(&ours.time),
            verdict(s(&ours.time) < 2.0)
        );
    }
}

#[test]
#[ignore = "benchmark: run `bash tests/bench/flash.sh`"]
fn flash_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("ESPFLEET_BENCH_KEEP").map(PathBuf::from);
    let part_dir = keep.clone().unwrap_or_else(|| dir.path().to_owned());
    std::fs::create_dir_all(&part_dir).unwrap();
    for chip in [Chip::Esp32c3, Chip::Esp32] {
        bench_chip(chip, &part_dir);
    }
    if let Some(k) = keep {
        println!("part files kept in {}", k.display());
    }
}
