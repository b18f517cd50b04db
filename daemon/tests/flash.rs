//! `espfleet flash` (the binary) against the simulated board (`espfleet-sim`).
//!
//! What is checked, and against what:
//! * the bytes on the simulated flash after a flash equal the part files at their offsets, read
//!   both from the simulator's memory and back over the serial protocol with the independent
//!   oracle, esptool `read-flash` (from `$ESPFLEET_ORACLE_PYTHON`);
//! * a second run writes nothing; a run with one part changed writes only that part;
//! * each injected fault ends with its own error code, exit status 1, a JSON line with
//!   `"ok": false` and the board state, and never a success report.
//!
//! The simulator runs without pacing: these tests are about behaviour, not speed
//! (`tests/bench/flash.sh` measures speed).

use std::path::{Path, PathBuf};
use std::process::Command;

use espfleet_compiler::target::{Chip, FlashSize};
use espfleet_sim::{
    ByteFault, ByteFaultKind, Direction, Pacing, ReportedChip, SimConfig, SimHandle, Simulator,
    Trigger,
};
use serde_json::Value;

/// Deterministic firmware-like bytes: a vocabulary of 32-bit words (as machine code repeats
/// instructions), some literal noise and some strings. Compresses roughly like real firmware.
fn firmware(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32
    };
    let words: Vec<[u8; 4]> = (0..256).map(|_| next().to_le_bytes()).collect();
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        match next() % 100 {
            0..70 => out.extend_from_slice(&words[(next() % 256) as usize]),
            70..85 => out.extend_from_slice(&next().to_le_bytes()),
            _ => out.extend_from_slice(format!("AT+CMD{} OK\0", next() % 1000).as_bytes()),
        }
    }
    out.truncate(len);
    out
}

/// A set of part files in a temporary directory.
struct Parts {
    _dir: tempfile::TempDir,
    chip: Chip,
    files: Vec<(u32, PathBuf, Vec<u8>)>,
}

impl Parts {
    /// Bootloader, partition table and app at ESP-IDF's offsets for `chip`.
    fn new(chip: Chip, app_len: usize) -> Parts {
        let dir = tempfile::tempdir().unwrap();
        let specs = [
            ("bootloader", chip.bootloader_offset(), 20_000usize, 1u64),
            ("partition-table", 0x8000, 3072, 2),
            ("app", 0x10000, app_len, 3),
        ];
        let parts = specs
            .iter()
            .map(|&(name, offset, len, seed)| {
                let path = dir.path().join(format!("{name}.bin"));
                let data = firmware(seed, len);
                std::fs::write(&path, &data).unwrap();
                (offset, path, data)
            })
            .collect();
        Parts {
            _dir: dir,
            chip,
            files: parts,
        }
    }

    fn replace(&mut self, index: usize, data: Vec<u8>) {
        std::fs::write(&self.files[index].1, &data).unwrap();
        self.files[index].2 = data;
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec!["--chip".to_owned(), self.chip.name().to_owned()];
        for (offset, path, _) in &self.files {
            args.push("--image".to_owned());
            args.push(format!("{offset:#x}={}", path.display()));
        }
        args
    }
}

fn sim(chip: Chip, tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut config = SimConfig::new(chip);
    config.pacing = Pacing::OFF;
    tweak(&mut config);
    Simulator::spawn(config).unwrap()
}

/// Runs `espfleet flash --json` and returns (exit code, the one JSON line, stderr).
fn flash(port: &Path, parts: &Parts, extra: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_espfleet"))
        .arg("flash")
        .arg("--port")
        .arg(port)
        .args(["--baud", "921600", "--json"])
        .args(parts.args())
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one JSON line on stdout, got {stdout:?}; stderr: {stderr}"
    );
    let json: Value = serde_json::from_str(lines[0]).unwrap();
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn outcomes(json: &Value) -> Vec<String> {
    json["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["outcome"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts a failed run: exit 1, its code, no success report, and the board state.
fn assert_failed(code: i32, json: &Value, stderr: &str, want_code: &str, want_state: &str) {
    assert_eq!(code, 1, "exit status; stderr: {stderr}");
    assert_eq!(json["ok"], Value::Bool(false), "{json}");
    assert_eq!(json["error"]["code"], want_code, "{json}\nstderr: {stderr}");
    assert_eq!(json["board"]["state"], want_state, "{json}");
    assert!(
        json.get("parts").is_none(),
        "a failed flash must not report parts as done: {json}"
    );
    assert!(
        stderr.contains(want_code),
        "the diagnostic on stderr names the code: {stderr}"
    );
    assert!(
        stderr.contains("help:"),
        "the diagnostic says what to do: {stderr}"
    );
}

fn assert_erased(flash: &[u8]) {
    assert!(
        flash.iter().all(|&b| b == 0xFF),
        "the flash must be untouched (all FF)"
    );
}

fn oracle_python() -> PathBuf {
    if let Some(p) = std::env::var_os("ESPFLEET_ORACLE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-oracles/bin/python");
    assert!(
        venv.exists(),
        "the esptool oracle is missing: set ESPFLEET_ORACLE_PYTHON or run `bash tests/run.sh` (it creates .venv-oracles)"
    );
    venv
}

/// Reads `len` bytes at 0 back with esptool `read-flash`.
fn esptool_read(port: &Path, chip: Chip, len: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("readback.bin");
    let out = Command::new(oracle_python())
        .args(["-m", "esptool", "--chip", chip.name(), "--port"])
        .arg(port)
        .args([
            "--baud",
            "921600",
            "--before",
            "no-reset",
            "--after",
            "no-reset",
            "read-flash",
            "0",
        ])
        .arg(format!("{len:#x}"))
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "esptool read-flash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(out_file).unwrap()
}

/// The bytes at each part's offset equal the part, and everything else in `flash` is erased.
fn assert_holds(flash: &[u8], parts: &Parts, what: &str) {
    let mut expected = vec![0xFFu8; flash.len()];
    for (offset, _, data) in &parts.files {
        let at = *offset as usize;
        expected[at..at + data.len()].copy_from_slice(data);
    }
    for (offset, path, data) in &parts.files {
        let at = *offset as usize;
        assert!(
            flash[at..at + data.len()] == data[..],
            "{what}: {} differs at {offset:#x}",
            path.display()
        );
    }
    assert!(
        flash == &expected[..],
        "{what}: bytes outside the parts were changed"
    );
}

#[test]
fn flashes_exact_bytes_then_skips_unchanged_then_writes_only_changes() {
    let mut parts = Parts::new(Chip::Esp32c3, 200_000);
    let sim = sim(Chip::Esp32c3, |_| {});

    let (code, json, stderr) = flash(sim.path(), &parts, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["ok"], Value::Bool(true));
    assert_eq!(json["chip"], "esp32c3");
    assert_eq!(outcomes(&json), ["written", "written", "written"]);
    assert_eq!(json["bytes_written"], 223_072);
    assert!(json["mac"].as_str().unwrap().len() == 17, "{json}");

    let end = 0x10000 + 200_000;
    assert_holds(&sim.flash_contents()[..end], &parts, "simulator memory");
    let readback = esptool_read(sim.path(), Chip::Esp32c3, u32::try_from(end).unwrap());
    assert_holds(&readback, &parts, "esptool read-flash");

    // Unchanged: nothing is sent to flash.
    let writes_before = data_commands(&sim);
    let (code, json, stderr) = flash(sim.path(), &parts, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(outcomes(&json), ["skipped", "skipped", "skipped"]);
    assert_eq!(json["bytes_written"], 0);
    assert_eq!(
        data_commands(&sim),
        writes_before,
        "an unchanged re-flash must not write"
    );

    // One part changed: only it is written.
    parts.replace(2, firmware(99, 150_000));
    let (code, json, stderr) = flash(sim.path(), &parts, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(outcomes(&json), ["skipped", "skipped", "written"]);
    let flash_now = sim.flash_contents();
    let app = &parts.files[2].2;
    assert!(flash_now[0x10000..0x10000 + app.len()] == app[..]);
}

#[test]
fn erased_tail_is_written_when_the_board_holds_data_there() {
    // A part whose last sectors are erased, as mfg_nvs images are. espfleet leaves such a tail
    // unsent only when the board is erased there too; here the board holds old data in it.
    let mut parts = Parts::new(Chip::Esp32c3, 10_000);
    let mut nvs_like = firmware(5, 5000);
    nvs_like.resize(0x6000, 0xFF);
    parts.replace(2, nvs_like.clone());
    for stub in [true, false] {
        let sim = sim(Chip::Esp32c3, |_| {});
        sim.preload_flash(0x10000 + 0x4000, &[0x5A; 0x1000]);
        let extra: &[&str] = if stub { &[] } else { &["--no-stub"] };
        let (code, json, stderr) = flash(sim.path(), &parts, extra);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(outcomes(&json), ["written", "written", "written"]);
        assert_holds(
            &sim.flash_contents()[..0x10000 + 0x6000],
            &parts,
            "simulator memory",
        );
    }
}

#[test]
fn manifest_flash_writes_what_espfleet_build_emits() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = root.join("manifests/examples/mini-1-c3.kdl");
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_espfleet"))
        .args(["build", "--quiet", "--out"])
        .arg(out.path())
        .arg(&manifest)
        .status()
        .unwrap();
    assert!(status.success());
    let build_dir = out.path().join("mini-1-c3");
    let args: Value =
        serde_json::from_slice(&std::fs::read(build_dir.join("flasher_args.json")).unwrap())
            .unwrap();
    let files = args["flash_files"].as_object().unwrap();
    assert!(
        files.len() >= 5,
        "an ESP-AT build flashes at least 5 parts: {files:?}"
    );

    let sim = sim(Chip::Esp32c3, |_| {});
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_espfleet"))
            .arg("flash")
            .arg(&manifest)
            .arg("--port")
            .arg(sim.path())
            .args(["--baud", "921600", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let json = run();
    assert_eq!(
        json["parts"].as_array().unwrap().len(),
        files.len(),
        "{json}"
    );
    let flash_now = sim.flash_contents();
    for (offset, file) in files {
        let offset = usize::from_str_radix(offset.trim_start_matches("0x"), 16).unwrap();
        let data = std::fs::read(build_dir.join(file.as_str().unwrap())).unwrap();
        assert!(
            flash_now[offset..offset + data.len()] == data[..],
            "{file} differs at {offset:#x}"
        );
    }
    let json = run();
    assert!(outcomes(&json).iter().all(|o| o == "skipped"), "{json}");
}

/// FLASH_DATA and FLASH_DEFL_DATA commands the simulator has received.
fn data_commands(sim: &SimHandle) -> u64 {
    let stats = sim.stats();
    [0x03u8, 0x11]
        .iter()
        .map(|op| stats.commands_by_opcode.get(op).copied().unwrap_or(0))
        .sum()
}

/// Whether the board on `port` answers a SYNC the way a loader does (ROM or stub): it is still
/// in download mode. Sent by hand (spec framing: SLIP, command 0x08 with its 36-byte payload).
fn answers_sync(port: &Path) -> bool {
    use espfleet_sim::protocol::{Command as Packet, SYNC_PAYLOAD, op};
    use espfleet_sim::slip;
    use std::io::{Read as _, Write as _};
    use std::time::{Duration, Instant};
    let mut tty = serialport::new(port.to_string_lossy(), 115_200)
        .timeout(Duration::from_millis(20))
        .open_native()
        .unwrap();
    let mut decoder = slip::Decoder::new();
    let mut byte = [0u8; 1];
    // Five tries, as both real clients make per connect attempt: the board may still be busy
    // finishing what the last client sent.
    for _ in 0..5 {
        tty.write_all(&slip::encode(&Packet::encode(op::SYNC, &SYNC_PAYLOAD, 0)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            if !matches!(tty.read(&mut byte), Ok(1)) {
                continue;
            }
            if let Some(Ok(frame)) = decoder.push(byte[0])
                && frame.len() >= 2
                && frame[..2] == [1, op::SYNC]
            {
                return true;
            }
        }
    }
    false
}

/// A last part that is not a multiple of 4 KiB (the app: 60,000 bytes; the partition table:
/// 3,072), on both chips, through the stub and through the ROM loader: exit 0, every part
/// verified, and with `--after no-reset` the board is still in download mode (it answers SYNC,
/// and a second run finds everything in place). The ROM gets no FLASH_END, which the real ROMs
/// refuse after a short last part (daemon/sim/README.md).
#[test]
fn short_last_part_flashes_and_no_reset_leaves_the_board_in_the_loader() {
    for chip in [Chip::Esp32, Chip::Esp32c3] {
        for stub in [true, false] {
            let what = format!("{chip}, {}", if stub { "stub" } else { "ROM" });
            let parts = Parts::new(chip, 60_000);
            let sim = sim(chip, |_| {});
            let mut extra = vec!["--after", "no-reset"];
            if !stub {
                extra.push("--no-stub");
            }
            let (code, json, stderr) = flash(sim.path(), &parts, &extra);
            assert_eq!(code, 0, "{what}: {stderr}");
            assert_eq!(json["chip"], chip.name(), "{what}");
            assert_eq!(json["stub"], Value::Bool(stub), "{what}");
            assert_eq!(outcomes(&json), ["written", "written", "written"], "{what}");
            let end = 0x10000 + 60_000;
            assert_holds(&sim.flash_contents()[..end], &parts, &what);
            let ops = sim.stats().commands_by_opcode;
            if !stub {
                assert!(
                    !ops.contains_key(&0x04),
                    "{what}: no FLASH_END to the ROM: {ops:?}"
                );
            }
            assert!(answers_sync(sim.path()), "{what}: still in download mode");
            let (code, json, stderr) = flash(sim.path(), &parts, &extra);
            assert_eq!(code, 0, "{what}: {stderr}");
            assert_eq!(outcomes(&json), ["skipped", "skipped", "skipped"], "{what}");
        }
    }
}

/// An ESP32 that already holds the parts, at 115,200 baud: identified without a command its ROM
/// lacks (the ESP32 ROM refuses GET_SECURITY_INFO in another command's reply, and a client
/// waiting for its own opcode loses 3 s per try), no baud change, nothing written. The time it
/// takes on a paced simulator is a benchmark figure (tests/bench/flash.sh).
#[test]
fn esp32_unchanged_reflash_at_115200_sends_nothing_the_rom_lacks() {
    let parts = Parts::new(Chip::Esp32, 60_000);
    let sim = sim(Chip::Esp32, |_| {});
    let (code, _, stderr) = flash(sim.path(), &parts, &["--after", "no-reset"]);
    assert_eq!(code, 0, "{stderr}");
    let before = sim.stats().commands_by_opcode;
    let out = Command::new(env!("CARGO_BIN_EXE_espfleet"))
        .arg("flash")
        .arg("--port")
        .arg(sim.path())
        .args(["--baud", "115200", "--json", "--after", "no-reset"])
        .args(parts.args())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcomes(&json), ["skipped", "skipped", "skipped"]);
    let after = sim.stats().commands_by_opcode;
    let sent =
        |op: u8| after.get(&op).copied().unwrap_or(0) - before.get(&op).copied().unwrap_or(0);
    assert_eq!(
        sent(0x14),
        0,
        "no GET_SECURITY_INFO to the ESP32 ROM: {after:?}"
    );
    assert_eq!(sent(0x0F), 0, "no baud change when nothing is written");
    assert_eq!(
        sent(0x02) + sent(0x03) + sent(0x10) + sent(0x11),
        0,
        "nothing written"
    );
    assert!(sent(0x13) >= 3, "one MD5 per part at least");
}

/// `--after hard-reset` on a port without DTR/RTS: the images are written and verified, the
/// reset cannot happen, and the help says so (and suggests `--after no-reset`); with
/// `--after no-reset` there is nothing to fail.
#[test]
fn hard_reset_on_a_port_without_reset_lines_is_reported_with_the_right_help() {
    let parts = Parts::new(Chip::Esp32c3, 10_000);
    let sim = sim(Chip::Esp32c3, |_| {});
    let (code, json, stderr) = flash(sim.path(), &parts, &["--after", "hard-reset"]);
    assert_failed(
        code,
        &json,
        &stderr,
        "espfleet::flash::reset_failed",
        "written_not_reset",
    );
    assert!(
        json["error"]["help"]
            .as_str()
            .unwrap()
            .contains("no DTR/RTS lines"),
        "{json}"
    );
    assert_holds(
        &sim.flash_contents()[..0x10000 + 10_000],
        &parts,
        "after reset_failed",
    );
}

#[test]
fn no_response_when_not_in_download_mode() {
    let parts = Parts::new(Chip::Esp32c3, 10_000);
    let sim = sim(Chip::Esp32c3, |_| {});
    sim.boot_app();
    assert!(
        !answers_sync(sim.path()),
        "the application does not answer SYNC"
    );
    let (code, json, stderr) = flash(sim.path(), &parts, &[]);
    assert_failed(
        code,
        &json,
        &stderr,
        "espfleet::flash::no_response",
        "untouched",
    );
    assert!(
        stderr.contains("BOOT"),
        "the hint says how to enter download mode: {stderr}"
    );
    assert_erased(&sim.flash_contents());
}

#[test]
fn wrong_chip_is_refused_before_writing() {
    let parts = Parts::new(Chip::Esp32c3, 10_000);
    let sim = sim(Chip::Esp32c3, |c| {
        c.faults.report_chip = Some(ReportedChip::Chip(Chip::Esp32));
    });
    let (code, json, stderr) = flash(sim.path(), &parts, &[]);
    assert_failed(
        code,
        &json,
        &stderr,
        "espfleet::flash::wrong_chip",
        "untouched",
    );
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("esp32c3"),
        "{json}"
    );
    assert_erased(&sim.flash_contents());
}

#[test]
fn small_flash_is_refused_before_writing() {
    let parts = Parts::new(Chip::Esp32c3, 10_000);
    let sim = sim(Chip::Esp32c3, |c| {
        c.flash_size = FlashSize::parse("2MB").unwrap();
    });
    let (code, json, stderr) = flash(sim.path(), &parts, &["--flash-size", "4MB"]);
    assert_failed(
        code,
        &json,
        &stderr,
        "espfleet::flash::flash_too_small",
        "untouched",
    );
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has 2 MB"),
        "{json}"
    );
    assert_erased(&sim.flash_contents());
}

#[test]
fn mac_mismatch_is_refused_before_writing() {
    let parts = Parts::new(Chip::Esp32c3, 10_000);
    let sim = sim(Chip::Esp32c3, |c| {
        c.mac = Some([0x58, 0xcf, 0x79, 0x01, 0x02, 0x03]);
    });
    let (code, json, stderr) = flash(sim.path(), &parts, &["--expect-mac", "58:cf:79:aa:bb:cc"]);
    assert_failed(
        code,
        &json,
        &stderr,
        "espfleet::flash::mac_mismatch",
        "untouched",
    );
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("58:cf:79:01:02:03"),
        "{json}"
    );
    assert_erased(&sim.flash_contents());
    // The right MAC passes.
    let (code, json, stderr) = flash(sim.path(), &parts, &["--expect-mac", "58-CF-79-01-02-03"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["mac"], "58:cf:79:01:02:03");
}

#[test]
fn unplug_mid_write_is_reported_as_partial() {
    let parts = Parts::new(Chip::Esp32c3, 200_000);
    // The third compressed block of the run is inside the app (the first two parts fit in one
    // block each).
    let sim = sim(Chip::Esp32c3, |c| {
        c.faults.unplug = Some(Trigger::Opcode { op: 0x11, nth: 4 });
    });
    let (code, json, stderr) = flash(sim.path(), &parts, &[]);
    assert_failed(
        code,
        &json,
        &stderr,
        "espfleet::flash::device_vanished",
        "partially_written",
    );
    assert_eq!(json["board"]["interrupted"], "app", "{json}");
    // The stub's MD5 checks run after the last part: nothing is verified yet, and the parts
    // already sent are listed as such, not as completed.
    assert_eq!(json["board"]["completed"], serde_json::json!([]), "{json}");
    assert_eq!(
        json["board"]["unverified"],
        serde_json::json!(["bootloader", "partition-table"]),
        "{json}"
    );
    assert!(stderr.contains("flash it again"), "{stderr}");
}

/// Through the ROM loader each part is verified right after it is written, so the parts before
/// the interrupted one are completed (and verified).
#[test]
fn unplug_mid_rom_write_lists_the_verified_parts_as_completed() {
    let parts = Parts::new(Chip::Esp32, 60_000);
    // Bootloader 20 blocks, partition table 3, then the app: its 5th block.
    let sim = sim(Chip::Esp32, |c| {
        c.faults.unplug = Some(Trigger::Opcode { op: 0x03, nth: 28 });
    });
    let (code, json, stderr) = flash(sim.path(), &parts, &["--no-stub"]);
    assert_failed(
        code,
        &json,
        &stderr,
        "espfleet::flash::device_vanished",
        "partially_written",
    );
    assert_eq!(json["board"]["interrupted"], "app", "{json}");
    assert_eq!(
        json["board"]["completed"],
        serde_json::json!(["bootloader", "partition-table"]),
        "{json}"
    );
    assert!(json["board"].get("unverified").is_none(), "{json}");
}

/// A manifest whose `match mac=` names another board is refused before anything is written;
/// `--ignore-match` writes it anyway; the named board is accepted.
#[test]
fn manifest_match_mac_is_enforced_unless_ignored() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("board-0042.kdl");
    std::fs::write(
        &manifest,
        format!(
            "espfleet 1\nname \"board-0042\"\nextends \"{}\"\nmatch mac=\"58:cf:79:00:00:42\"\n",
            root.join("manifests/examples/mini-1-c3.kdl").display()
        ),
    )
    .unwrap();
    let run = |port: &Path, extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_espfleet"))
            .arg("flash")
            .arg(&manifest)
            .arg("--port")
            .arg(port)
            .args(["--baud", "921600", "--json"])
            .args(extra)
            .output()
            .unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            out.status.code().unwrap_or(-1),
            json,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let other = sim(Chip::Esp32c3, |c| {
        c.mac = Some([0x58, 0xcf, 0x79, 0, 0, 0x07]);
    });
    let (code, json, stderr) = run(other.path(), &[]);
    assert_failed(
        code,
        &json,
        &stderr,
        "espfleet::flash::board_not_matched",
        "untouched",
    );
    assert!(stderr.contains("--ignore-match"), "{stderr}");
    assert_erased(&other.flash_contents());
    let (code, json, stderr) = run(other.path(), &["--ignore-match"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["mac"], "58:cf:79:00:00:07");

    let named = sim(Chip::Esp32c3, |c| {
        c.mac = Some([0x58, 0xcf, 0x79, 0, 0, 0x42]);
    });
    let (code, _, stderr) = run(named.path(), &[]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn corrupted_bytes_are_reported_as_corruption() {
    let parts = Parts::new(Chip::Esp32c3, 200_000);
    // Byte 40,000 from the host is inside the app's compressed data: after the stub upload
    // (~7 KB) and the first two parts (~20 KB compressed).
    let sim = sim(Chip::Esp32c3, |c| {
        c.faults.bytes.push(ByteFault {
            direction: Direction::ToDevice,
            kind: ByteFaultKind::Corrupt,
            first: 40_000,
            every: None,
        });
    });
    let (code, json, stderr) = flash(sim.path(), &parts, &[]);
    assert_failed(
        code,
        &json,
        &stderr,
        "espfleet::flash::data_corrupted",
        "partially_written",
    );
    assert_eq!(json["board"]["interrupted"], "app", "{json}");
}

#[test]
fn missing_port() {
    let parts = Parts::new(Chip::Esp32c3, 10_000);
    let (code, json, stderr) = flash(Path::new("/dev/espfleet-no-such-port"), &parts, &[]);
    assert_failed(
        code,
        &json,
        &stderr,
        "espfleet::flash::port_missing",
        "untouched",
    );
}

#[test]
fn busy_port() {
    let parts = Parts::new(Chip::Esp32c3, 10_000);
    let sim = sim(Chip::Esp32c3, |_| {});
    // Another program holds the port (serialport locks it exclusively, as espflash and most
    // serial monitors do).
    let _holder = serialport::new(sim.path().to_string_lossy(), 115_200)
        .open_native()
        .unwrap();
    let (code, json, stderr) = flash(sim.path(), &parts, &[]);
    assert_failed(
        code,
        &json,
        &stderr,
        "espfleet::flash::port_busy",
        "untouched",
    );
    assert_erased(&sim.flash_contents());
}
