//! The simulator checked against an independent client: Espressif's esptool (PyPI, pinned in
//! tests/oracles/requirements.txt) writes images, reads them back and verifies them, for both
//! chips, through the ROM loader (`--no-stub`) and through the flasher stub.
//!
//! esptool is run exactly as a user would run it against `espfleet sim`, with the no-reset
//! options a pty needs (`docs/formats/serial-protocol.md` §10). The expected bytes are the input files themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use espfleet_compiler::target::Chip;
use espfleet_sim::protocol::op;
use espfleet_sim::{LoaderState, Pacing, SimConfig, SimHandle, Simulator};

/// The oracle's Python: `$ESPFLEET_ORACLE_PYTHON`, else `<repo>/.venv-oracles/bin/python`.
fn oracle_python() -> PathBuf {
    if let Some(p) = std::env::var_os("ESPFLEET_ORACLE_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "ESPFLEET_ORACLE_PYTHON={} does not exist; run `bash tests/run.sh`",
            p.display()
        );
        return p;
    }
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-oracles/bin/python");
    assert!(
        fallback.exists(),
        "esptool oracle missing: ESPFLEET_ORACLE_PYTHON is unset and {} does not exist; run `bash tests/run.sh` \
         (it creates .venv-oracles with the pinned esptool)",
        fallback.display()
    );
    fallback
}

/// Runs `python -m esptool --port PORT --before no-reset --after no-reset ARGS...`, fails the
/// test with esptool's output if it fails, and returns its stdout.
fn esptool(port: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(oracle_python());
    cmd.args(["-m", "esptool", "--port"])
        .arg(port)
        .args(["--before", "no-reset", "--after", "no-reset"])
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start esptool");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("poll esptool").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("esptool output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "esptool {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// Random-looking bytes that do not compress (esptool writes them uncompressed even with the stub).
fn incompressible(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            // xorshift32
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// Mostly-FF bytes with sparse data, like a real partition image: compresses well (FLASH_DEFL_*).
fn compressible(len: usize, seed: u32) -> Vec<u8> {
    let noise = incompressible(len / 9 + 1, seed);
    (0..len)
        .map(|i| if i % 9 == 0 { noise[i / 9] } else { 0xFF })
        .collect()
}

struct Case {
    chip: Chip,
    stub: bool,
}

fn spawn(case: &Case) -> SimHandle {
    let mut config = SimConfig::new(case.chip);
    config.pacing = if case.stub {
        // The stub runs at 921600 after CHANGE_BAUDRATE: keep UART pacing on to show the baud
        // switch working at line rate, with flash times cut to 2 %.
        Pacing {
            uart: true,
            flash_time_scale: 0.02,
            ..Pacing::REALISTIC
        }
    } else {
        Pacing::OFF // ROM transfers at 115200 would take seconds; pacing is not the point here
    };
    Simulator::spawn(config).expect("spawn simulator")
}

fn write_read_verify(case: &Case) {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn(case);
    let port = sim.path().to_owned();
    let a = incompressible(40_000, 1);
    let b = compressible(60_000, 2);
    let (a_path, b_path) = (dir.path().join("a.bin"), dir.path().join("b.bin"));
    std::fs::write(&a_path, &a).unwrap();
    std::fs::write(&b_path, &b).unwrap();
    let (a_s, b_s) = (a_path.to_str().unwrap(), b_path.to_str().unwrap());
    let mut base: Vec<&str> = Vec::new();
    if case.stub {
        base.extend(["--baud", "921600"]);
    } else {
        base.push("--no-stub");
    }
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| (*s).to_owned()).collect()
    };
    let run = |extra: &[&str]| {
        let args = with(extra);
        esptool(&port, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // Write both files in one run, the compressible one first: esptool stops compressing for
    // the rest of a run once a file does not shrink (`docs/formats/serial-protocol.md` §8). Through the ROM, write the
    // compressible file again with --compress (ROM FLASH_DEFL_*).
    let written = run(&[
        "write-flash",
        "--flash-size",
        "detect",
        "0x10000",
        b_s,
        "0x30000",
        a_s,
    ]);
    // Chip auto-detection (no --chip) found the simulated chip, its revision and MAC, and the
    // flash size came from the JEDEC ID read through the SPI registers.
    let (description, mac) = match case.chip {
        Chip::Esp32 => ("ESP32-D0WD-V3 (revision v3.0)", "24:0a:c4:12:34:56"),
        Chip::Esp32c3 => ("ESP32-C3 (QFN32) (revision v0.4)", "58:cf:79:12:34:56"),
    };
    assert!(
        written.contains(description),
        "chip description missing:\n{written}"
    );
    assert!(written.contains(mac), "MAC missing:\n{written}");
    assert!(
        written.contains("Auto-detected flash size: 4MB"),
        "flash size missing:\n{written}"
    );
    if !case.stub {
        run(&["write-flash", "--compress", "0x50000", b_s]);
    }
    assert_eq!(
        sim.state(),
        LoaderState::Rom,
        "--after no-reset leaves the board in the ROM loader"
    );

    // What the simulator holds is exactly what was sent.
    let flash = sim.flash_contents();
    assert_eq!(&flash[0x10000..0x10000 + b.len()], &b[..]);
    assert_eq!(&flash[0x30000..0x30000 + a.len()], &a[..]);
    if !case.stub {
        assert_eq!(&flash[0x50000..0x50000 + b.len()], &b[..]);
    }

    // esptool reads it back (READ_FLASH with the stub, READ_FLASH_SLOW through the ROM) ...
    // READ_FLASH_SLOW moves 64 bytes per round trip, so read back less through the ROM.
    let back = dir.path().join("back.bin");
    let len = if case.stub { b.len() } else { 16 * 1024 };
    run(&[
        "read-flash",
        "0x10000",
        &len.to_string(),
        back.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&back).unwrap(), &b[..len]);
    // ... and verifies both files by MD5.
    let verify = run(&["verify-flash", "0x10000", b_s, "0x30000", a_s]);
    assert_eq!(
        verify
            .matches("Verification successful (digest matched)")
            .count(),
        2,
        "{verify}"
    );

    // The loader paths we meant to exercise were taken.
    let ops = sim.stats().commands_by_opcode;
    let count = |o: u8| ops.get(&o).copied().unwrap_or(0);
    if case.stub {
        assert!(
            count(op::MEM_END) >= 1 && count(op::FLASH_DEFL_DATA) > 0 && count(op::READ_FLASH) == 1,
            "{ops:?}"
        );
        assert!(count(op::CHANGE_BAUDRATE) >= 1, "{ops:?}");
    } else {
        assert_eq!(
            count(op::MEM_BEGIN),
            0,
            "no stub upload with --no-stub: {ops:?}"
        );
        assert!(
            count(op::FLASH_DATA) > 0
                && count(op::FLASH_DEFL_DATA) > 0
                && count(op::READ_FLASH_SLOW) > 0,
            "{ops:?}"
        );
    }
    sim.stop().unwrap();
}

#[test]
fn esptool_esp32_rom_write_read_verify() {
    write_read_verify(&Case {
        chip: Chip::Esp32,
        stub: false,
    });
}

#[test]
fn esptool_esp32_stub_write_read_verify() {
    write_read_verify(&Case {
        chip: Chip::Esp32,
        stub: true,
    });
}

#[test]
fn esptool_esp32c3_rom_write_read_verify() {
    write_read_verify(&Case {
        chip: Chip::Esp32c3,
        stub: false,
    });
}

#[test]
fn esptool_esp32c3_stub_write_read_verify() {
    write_read_verify(&Case {
        chip: Chip::Esp32c3,
        stub: true,
    });
}

/// esptool's erase commands go through the stub (ERASE_REGION, ERASE_FLASH) and leave FF.
#[test]
fn esptool_erase_region_and_chip() {
    let mut config = SimConfig::new(Chip::Esp32c3);
    config.pacing = Pacing::OFF;
    config.flash_size = espfleet_compiler::target::FlashSize::parse("2MB").unwrap();
    let sim = Simulator::spawn(config).unwrap();
    sim.preload_flash(0, &vec![0x00; 0x4000]);
    sim.preload_flash(0x10_0000, &[0x00; 16]);
    esptool(sim.path(), &["erase-region", "0x1000", "0x2000"]);
    let flash = sim.flash_contents();
    assert!(
        flash[..0x1000].iter().all(|&b| b == 0),
        "outside the region stays"
    );
    assert!(
        flash[0x1000..0x3000].iter().all(|&b| b == 0xFF),
        "region erased"
    );
    assert!(flash[0x3000..0x4000].iter().all(|&b| b == 0));
    esptool(sim.path(), &["erase-flash"]);
    assert!(sim.flash_contents().iter().all(|&b| b == 0xFF));
    sim.stop().unwrap();
}
