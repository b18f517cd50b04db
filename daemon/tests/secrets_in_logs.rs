//! No key material in any log at any verbosity: `espfleet flash` of the example manifests, which
//! carry ESP-AT's example private keys in `mfg_nvs`, at the highest verbosity (`-vvv`, and
//! `ESPFLEET_LOG=trace`), through the stub and through the ROM loader, on both chips. Every byte
//! of stdout and stderr is searched for every line of every key: as text, and as the hex and
//! decimal byte lists a `{:x?}`/`{:?}` of a buffer prints (espflash 4.7 logs each command's
//! bytes that way at debug level, `Connection::write_command`).
//!
//! The daemon's side of the same check is `daemon_logs_no_key_material_at_trace` in
//! `daemon_umockdev.rs`. The expected "nothing" needs no oracle; that the keys really crossed the
//! wire is checked on the simulator's flash.

use std::path::{Path, PathBuf};
use std::process::Command;

use espfleet_compiler::target::Chip;
use espfleet_sim::{Pacing, SimConfig, Simulator};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples")
}

/// The private keys a manifest names (`*-key` entries of its `certificates` block).
fn keys_of(manifest: &str) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(examples().join(manifest)).unwrap();
    let mut keys: Vec<PathBuf> = text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.ends_with("-key"))
        })
        .flat_map(|l| {
            l.split('"')
                .skip(1)
                .step_by(2)
                .map(|p| examples().join(p))
                .collect::<Vec<_>>()
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert!(!keys.is_empty(), "{manifest} names no key");
    keys
}

/// Ways a run of key bytes can show up in a log line.
fn renderings(bytes: &[u8]) -> Vec<String> {
    let join =
        |f: &dyn Fn(&u8) -> String, sep: &str| bytes.iter().map(f).collect::<Vec<_>>().join(sep);
    vec![
        String::from_utf8_lossy(bytes).into_owned(),
        join(&|b| format!("{b:02x}"), ""),
        join(&|b| format!("{b:02X}"), ""),
        join(&|b| format!("{b:02x}"), ", "),
        join(&|b| format!("{b:#04x}"), ", "),
        join(&|b| format!("{b}"), ", "),
    ]
}

/// Panics if `output` holds any line of any key, or a 16-byte piece of one, in any rendering.
pub fn assert_no_key_material(output: &str, keys: &[PathBuf], what: &str) {
    for key in keys {
        let text = std::fs::read(key).unwrap();
        for line in text.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() < 8 {
                continue;
            }
            let pieces = std::iter::once(line).chain(line.chunks(16).filter(|c| c.len() >= 8));
            for piece in pieces {
                for r in renderings(piece) {
                    assert!(
                        !output.contains(&r),
                        "{what}: the log holds part of {} ({r:?})",
                        key.display()
                    );
                }
            }
        }
    }
}

/// The keys' lines really were flashed: the simulator's flash holds each key's second line.
fn assert_keys_on_flash(flash: &[u8], keys: &[PathBuf], what: &str) {
    for key in keys {
        let text = std::fs::read_to_string(key).unwrap();
        let line = text.lines().nth(1).unwrap().as_bytes();
        assert!(
            flash.windows(line.len()).any(|w| w == line),
            "{what}: {} is not on the flash, so this run proves nothing",
            key.display()
        );
    }
}

#[test]
fn cli_flash_at_trace_logs_no_key_material() {
    for (manifest, chip) in [
        ("wroom-32.kdl", Chip::Esp32),
        ("mini-1-c3.kdl", Chip::Esp32c3),
    ] {
        let keys = keys_of(manifest);
        for stub in [false, true] {
            for verbosity in ["-vvv", "ESPFLEET_LOG=trace"] {
                let what = format!(
                    "{manifest}, {}, {verbosity}",
                    if stub { "stub" } else { "ROM" }
                );
                let mut config = SimConfig::new(chip);
                config.pacing = Pacing::OFF;
                let sim = Simulator::spawn(config).unwrap();
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_espfleet"));
                if verbosity == "-vvv" {
                    cmd.arg("-vvv").env_remove("ESPFLEET_LOG");
                } else {
                    cmd.env("ESPFLEET_LOG", "trace");
                }
                cmd.arg("flash")
                    .arg(examples().join(manifest))
                    .arg("--port")
                    .arg(sim.path())
                    .args(["--baud", "921600", "--after", "no-reset"]);
                if !stub {
                    cmd.arg("--no-stub");
                }
                let out = cmd.output().unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "{what}: {stderr}");
                // The log really is at its most verbose, espflash's own lines included.
                assert!(
                    stderr.contains("DEBUG"),
                    "{what}: no debug lines:\n{stderr}"
                );
                assert!(
                    stderr.contains("Staying in bootloader"),
                    "{what}: espflash's log lines do not come through:\n{stderr}"
                );
                assert_keys_on_flash(&sim.flash_contents(), &keys, &what);
                assert_no_key_material(&stdout, &keys, &what);
                assert_no_key_material(&stderr, &keys, &what);
            }
        }
    }
}
