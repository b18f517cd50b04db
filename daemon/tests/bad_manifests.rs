//! Hostile manifests through the real binaries (issue 13, items 1, 5 and 6): `espfleet check`
//! and `espfleetd` at the highest verbosity must refuse them with diagnostics — no abort, no
//! hang — and no byte of a private key named by mistake may reach stdout, stderr, the daemon's
//! log or `espfleet status --json`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn example_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../compiler/tests/data/esp_at/raw_data_master/client_key/client_key_00.key")
}

/// Fails if any 16-character piece of the key's body appears in `text`.
fn assert_no_key_material(what: &str, text: &str) {
    let key = std::fs::read_to_string(example_key()).unwrap();
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        for piece in line.as_bytes().chunks(16).filter(|c| c.len() == 16) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(
                !text.contains(piece),
                "{what}: key material `{piece}` in:\n{text}"
            );
        }
    }
}

/// A directory of hostile manifests: a key renamed `*.kdl`, manifests naming the key as a
/// base and as a GATTS table, a 2,000-level nesting bomb, a FIFO and a sparse 50 MB file.
fn hostile(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::create_dir_all(dir.join("../certs")).unwrap();
    std::fs::copy(example_key(), dir.join("../certs/client.key")).unwrap();
    std::fs::copy(example_key(), dir.join("stolen.kdl")).unwrap();
    std::fs::write(
        dir.join("extends-key.kdl"),
        "espfleet 1\nextends \"../certs/client.key\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("gatts-key.kdl"),
        "espfleet 1\nmodule \"WROOM-32\" chip=\"esp32\"\nesp-at \"v4.1.1.0\"\nble {\n    gatts \"../certs/client.key\"\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("bomb.kdl"),
        format!("espfleet 1\n{}{}\n", "a {".repeat(2000), "}".repeat(2000)),
    )
    .unwrap();
    let fifo = Command::new("mkfifo")
        .arg(dir.join("fifo.kdl"))
        .status()
        .unwrap();
    assert!(fifo.success());
    std::fs::File::create(dir.join("huge.kdl"))
        .unwrap()
        .set_len(50 << 20)
        .unwrap();
}

const EXPECTED: [(&str, &str); 6] = [
    ("stolen.kdl", "espfleet::manifest::file_holds_key"),
    ("extends-key.kdl", "espfleet::manifest::value_invalid"),
    ("gatts-key.kdl", "espfleet::manifest::file_holds_key"),
    ("bomb.kdl", "espfleet::manifest::nesting_too_deep"),
    ("fifo.kdl", "espfleet::manifest::file_not_regular"),
    ("huge.kdl", "espfleet::manifest::file_too_large"),
];

#[test]
fn check_refuses_hostile_manifests_at_maximum_verbosity_without_leaking_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    hostile(&manifests);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_espfleet"));
    cmd.args(["-vvv", "--color", "never", "check"])
        .env("ESPFLEET_LOG", "trace");
    for (file, _) in EXPECTED {
        cmd.arg(manifests.join(file));
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for (file, code) in EXPECTED {
        assert!(stderr.contains(code), "{file}: no {code} in\n{stderr}");
    }
    assert!(
        stderr.contains("6 of 6 manifest(s) have errors"),
        "{stderr}"
    );
    assert_no_key_material("stdout", &stdout);
    assert_no_key_material("stderr", &stderr);
}

#[test]
fn the_daemon_survives_hostile_manifests_and_its_log_and_status_hold_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    hostile(&manifests);
    let status_sock = dir.path().join("run/status.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_espfleetd"))
        .args(["--manifests".as_ref(), manifests.as_os_str()])
        .args(["--state-dir".as_ref(), dir.path().join("state").as_os_str()])
        .args(["--cache-dir".as_ref(), dir.path().join("cache").as_os_str()])
        .args(["--socket".as_ref(), status_sock.as_os_str()])
        .env("ESPFLEET_LOG", "trace")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait until the daemon reports every hostile manifest as failing.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "espfleetd exited while reading hostile manifests"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_espfleet"))
            .args(["status", "--json", "--socket"])
            .arg(&status_sock)
            .output()
            .unwrap();
        if out.status.success() {
            let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let failing = snap["manifests"]
                .as_array()
                .map_or(0, |m| m.iter().filter(|m| m["error"].is_string()).count());
            if failing == EXPECTED.len() {
                break String::from_utf8(out.stdout).unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no status with 6 failing manifests"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let snap: serde_json::Value = serde_json::from_str(&status).unwrap();
    for (file, code) in EXPECTED {
        let m = snap["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["file"] == file)
            .unwrap_or_else(|| panic!("{file} not in {status}"));
        assert!(
            m["error"].as_str().unwrap().contains(code),
            "{file}: {}",
            m["error"]
        );
        assert_eq!(m["in_force"], false);
    }
    assert_no_key_material("espfleet status --json", &status);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "espfleetd exited with {}", out.status);
    assert_no_key_material("espfleetd stdout", &String::from_utf8_lossy(&out.stdout));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("nesting_too_deep"),
        "the log reports the bomb:\n{log}"
    );
    assert_no_key_material("espfleetd log", &log);
}

fn bad_value(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../compiler/tests/data/bad/values")
        .join(name)
}

#[test]
fn deny_warnings_makes_check_and_build_fail_on_warnings() {
    let dir = tempfile::tempdir().unwrap();
    for manifest in ["expired_ca.kdl", "property_repeated.kdl"] {
        let run = |args: &[&str], env: Option<&str>| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_espfleet"));
            cmd.args(["--color", "never"])
                .args(args)
                .arg(bad_value(manifest))
                .env_remove("ESPFLEET_DENY_WARNINGS");
            if let Some(v) = env {
                cmd.env("ESPFLEET_DENY_WARNINGS", v);
            }
            cmd.output().unwrap()
        };
        let out_dir = dir.path().join("out");
        let out = out_dir.to_str().unwrap();
        // Warnings alone: exit 0.
        assert_eq!(run(&["check"], None).status.code(), Some(0), "{manifest}");
        // Denied, by flag or by environment (CI): exit 1, for check and for build.
        for (args, env) in [
            (vec!["--deny-warnings", "check"], None),
            (vec!["check"], Some("true")),
            (
                vec![
                    "--deny-warnings",
                    "build",
                    "--no-cache",
                    "--no-lock",
                    "--out",
                    out,
                ],
                None,
            ),
        ] {
            let o = run(&args, env);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{manifest} {args:?}: {stderr}");
            assert!(stderr.contains("error"), "{stderr}");
        }
        assert!(!out_dir.join(manifest.trim_end_matches(".kdl")).exists());
    }
}

#[test]
fn check_dev_zero_and_nvs_generate_with_a_huge_size_fail_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_espfleet"))
        .args(["--color", "never", "check", "/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("espfleet::manifest::file_not_regular"));

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    std::fs::write(
        &csv,
        "key,type,encoding,value\nns,namespace,,\nk,data,u8,1\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_espfleet"))
        .args(["--color", "never", "nvs", "generate"])
        .arg(&csv)
        .arg(dir.path().join("out.bin"))
        .arg("0xFFFFFFFFF000")
        .output()
        .unwrap();
    // An error (exit 1), not an allocation abort (134).
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("espfleet::nvs::size_too_large"));
    assert!(!dir.path().join("out.bin").exists());
}
