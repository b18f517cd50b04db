//! The compile commands as a user runs them: exit codes, what goes to stdout and stderr
//! (snapshotted with temporary paths filtered), files on disk, and the merged factory image
//! against `esptool merge_bin` (PyPI, pinned) on the same parts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn espfleet(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_espfleet"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
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

fn transcript(out: &Output, tmp: &Path) -> String {
    let clean = |b: &[u8]| String::from_utf8_lossy(b).replace(&tmp.display().to_string(), "[TMP]");
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        clean(&out.stdout),
        clean(&out.stderr)
    )
}

#[test]
fn check_accepts_every_example() {
    let out = espfleet(&["check", "manifests/examples/"], &repo());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!("check_examples", transcript(&out, &repo()));
}

#[test]
fn check_reports_all_problems_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bench.kdl"),
        "espfleet 1\nmodule \"MINI-1\"\nesp-at \"v4.1.1\"\nuart tx=7 bauds=9600\n",
    )
    .unwrap();
    let out = espfleet(&["--color", "never", "check", "bench.kdl"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("check_errors", transcript(&out, tmp.path()));
}

#[test]
fn usage_errors_exit_2() {
    let out = espfleet(&["check"], &repo());
    assert_eq!(out.status.code(), Some(2));
    let out = espfleet(&["build", "--no-such-flag", "x.kdl"], &repo());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn build_writes_esp_at_layout_and_merged_image_matches_esptool() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let out = espfleet(
        &[
            "build",
            "manifests/examples/wroom-32.kdl",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        &repo(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = out_dir.join("wroom-32");
    for f in [
        "partition_table/partition-table.bin",
        "at_customize.bin",
        "customized_partitions/mfg_nvs.bin",
        "bootloader/bootloader.bin",
        "esp-at.bin",
        "ota_data_initial.bin",
        "flasher_args.json",
        "flash_project_args",
        "download.config",
        "factory/factory_WROOM-32.bin",
        "factory/factory_WROOM-32_unfilled.bin",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // mfg_nvs holds a private key: owner-only permissions.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("customized_partitions/mfg_nvs.bin"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // ESP-AT v4.1+ makes the factory image with `esptool merge_bin @flash_project_args`; run the
    // real esptool on our own args file and compare.
    for (extra, ours) in [
        (
            &["--fill-flash-size", "4MB"][..],
            "factory/factory_WROOM-32.bin",
        ),
        (&[][..], "factory/factory_WROOM-32_unfilled.bin"),
    ] {
        let theirs = tmp.path().join("esptool.bin");
        let status = Command::new(oracle_python())
            .args([
                "-m",
                "esptool",
                "--chip",
                "esp32",
                "merge_bin",
                "--output",
                theirs.to_str().unwrap(),
            ])
            .args(extra)
            .arg("@flash_project_args")
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        assert!(
            std::fs::read(&theirs).unwrap() == std::fs::read(dir.join(ours)).unwrap(),
            "{ours} differs from esptool merge_bin"
        );
    }
}

#[test]
fn failed_build_leaves_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bad.kdl"),
        "espfleet 1\nmodule \"WROOM-32\" chip=\"esp32\"\nesp-at \"v4.1.1.0\"\nuart tx=34\n",
    )
    .unwrap();
    let out = espfleet(&["build", "bad.kdl", "--out", "out"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !tmp.path().join("out/bad").exists(),
        "a failed build wrote output"
    );
}

#[test]
fn check_as_reports_files_the_service_user_cannot_read() {
    // A fleet folder under /tmp is hidden from espfleetd by PrivateTmp=yes: every file the
    // manifests use is reported, and the exit status is 1. (Mode-bit decisions are unit-tested
    // in daemon::access, independent of who runs the tests.)
    let tmp = tempfile::Builder::new().tempdir_in("/tmp").unwrap();
    let fleet = tmp.path().join("fleet");
    let copy = Command::new("cp")
        .args(["-r"])
        .arg(repo().join("manifests/examples/fleet"))
        .arg(&fleet)
        .status()
        .unwrap();
    assert!(copy.success());
    // The fleet's firmware folder is referenced as ../firmware/esp32.
    let copy = Command::new("cp")
        .args(["-r"])
        .arg(repo().join("manifests/examples/firmware"))
        .arg(tmp.path().join("firmware"))
        .status()
        .unwrap();
    assert!(copy.success());
    let out = espfleet(
        &["check", "--as", "root", fleet.to_str().unwrap()],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read") && stderr.contains("bench-01.key"),
        "{stderr}"
    );
    assert!(stderr.contains("PrivateTmp=yes"), "{stderr}");
    assert!(stderr.contains("chmod 0640"), "{stderr}");

    // An unknown user is an error that says how to get one.
    let out = espfleet(
        &[
            "check",
            "--as",
            "no-such-user-here",
            "manifests/examples/fleet",
        ],
        &repo(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("espfleet::access::user_unknown"));
}

#[test]
fn history_and_status_say_when_there_is_nothing_to_show() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("journal.jsonl");
    let out = espfleet(
        &["history", "--journal", journal.to_str().unwrap()],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no journal at"));

    std::fs::write(&journal, "").unwrap();
    let out = espfleet(
        &["history", "--journal", journal.to_str().unwrap()],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no flash attempts recorded yet"));

    let socket = tmp.path().join("status.sock");
    let out = espfleet(
        &["status", "--json", "--socket", socket.to_str().unwrap()],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["running"], serde_json::Value::Bool(false));
    assert_eq!(v["socket"], socket.to_str().unwrap());
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("cannot reach espfleetd")
    );
}

#[test]
fn every_help_teaches_with_an_example() {
    let commands: &[&[&str]] = &[
        &[],
        &["check"],
        &["build"],
        &["cache"],
        &["schema"],
        &["partitions"],
        &["nvs"],
        &["nvs", "generate"],
        &["nvs", "encrypt"],
        &["nvs", "decrypt"],
        &["nvs", "generate-key"],
        &["nvs", "dump"],
        &["inspect"],
        &["import"],
        &["merge-bin"],
        &["flash"],
        &["history"],
        &["status"],
        &["sim"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = espfleet(&args, &repo());
        assert_eq!(out.status.code(), Some(0), "{command:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let shows_a_run = text
            .lines()
            .any(|l| l.trim_start().starts_with("espfleet "));
        assert!(
            text.contains("Example") || shows_a_run,
            "`espfleet {} --help` has no example",
            command.join(" ")
        );
        assert!(
            shows_a_run || command.is_empty(),
            "`espfleet {} --help` shows no command line",
            command.join(" ")
        );
    }
}
