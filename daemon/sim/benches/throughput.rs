//! How realistic the pacing is: esptool (the oracle) writes an image through the ROM loader and
//! through the stub with `Pacing::REALISTIC`, and the measured throughput is printed next to the
//! UART line rate (baud / 10 bytes per second) as a ratio. Real boards reach about 85-90 % of
//! line rate for ROM writes (`docs/formats/serial-protocol.md` §1.2: the prototype measured 10 KB/s against 11.5 KB/s at
//! 115200). Run with `cargo bench -p espfleet-sim`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use espfleet_compiler::target::Chip;
use espfleet_sim::{Pacing, SimConfig, Simulator};

fn oracle_python() -> PathBuf {
    std::env::var_os("ESPFLEET_ORACLE_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-oracles/bin/python"),
        PathBuf::from,
    )
}

fn main() {
    let python = oracle_python();
    assert!(
        python.exists(),
        "{} missing; run `bash tests/run.sh` first",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.bin");
    let mut x = 0x1234_5678u32;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect();
    std::fs::write(&image, &bytes).unwrap();
    println!(
        "{:<34} {:>9} {:>11} {:>11} {:>7}",
        "case (64 KiB, incompressible)", "seconds", "bytes/s", "line B/s", "ratio"
    );
    for (label, chip, stub, baud) in [
        (
            "esp32 ROM --no-stub @115200",
            Chip::Esp32,
            false,
            115_200u32,
        ),
        (
            "esp32c3 ROM --no-stub @115200",
            Chip::Esp32c3,
            false,
            115_200,
        ),
        ("esp32 stub @115200", Chip::Esp32, true, 115_200),
        ("esp32c3 stub @921600", Chip::Esp32c3, true, 921_600),
    ] {
        let mut config = SimConfig::new(chip);
        config.pacing = Pacing::REALISTIC;
        let sim = Simulator::spawn(config).unwrap();
        // Connect (and upload the stub) first, so the timed run measures the write itself as
        // closely as a separate process allows; esptool's own start-up is subtracted below.
        let mut args: Vec<String> = vec![
            "-m".into(),
            "esptool".into(),
            "--port".into(),
            sim.path().display().to_string(),
        ];
        args.extend(
            [
                "--before",
                "no-reset",
                "--after",
                "no-reset",
                "--baud",
                &baud.to_string(),
            ]
            .map(String::from),
        );
        if !stub {
            args.push("--no-stub".into());
        }
        let run = |extra: &[&str]| {
            let t = Instant::now();
            let status = Command::new(&python)
                .args(&args)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "{label}: esptool {extra:?} failed");
            t.elapsed().as_secs_f64()
        };
        let overhead = run(&["flash-id"]);
        let total = run(&["write-flash", "0x10000", image.to_str().unwrap()]);
        let secs = (total - overhead).max(1e-3);
        let rate = f64::from(u32::try_from(bytes.len()).unwrap()) / secs;
        let line = f64::from(baud) / 10.0;
        println!(
            "{label:<34} {secs:>9.2} {rate:>11.0} {line:>11.0} {:>7.2}",
            rate / line
        );
        sim.stop().unwrap();
    }
}
