//! The real `espfleetd` binary speaks systemd's notify protocol: READY with a status line,
//! WATCHDOG at least every half watchdog period, STOPPING on SIGTERM, exit 0. We play
//! systemd's part with a datagram socket (`docs/testing-hotplug.md` §7). The same run
//! checks `espfleet status` against the live daemon and `espfleet history` on its journal.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ready_status_watchdog_and_stopping_on_a_test_socket() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let status_sock = dir.path().join("run/status.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_espfleetd"))
        .args(["--manifests".as_ref(), manifests.as_os_str()])
        .args(["--state-dir".as_ref(), dir.path().join("state").as_os_str()])
        .args(["--cache-dir".as_ref(), dir.path().join("cache").as_os_str()])
        .args(["--socket".as_ref(), status_sock.as_os_str()])
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "200000") // 200 ms: expect a ping at least every 100 ms
        .env_remove("WATCHDOG_PID")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let mut buf = [0u8; 4096];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a notify message within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    // Status lines may come first (the initial manifest scan); then READY with a status.
    let ready = loop {
        let msg = recv();
        if msg.contains("READY=1") {
            break msg;
        }
        assert!(msg.starts_with("STATUS="), "{msg:?}");
    };
    assert!(ready.starts_with("STATUS=0 manifests;"), "{ready:?}");
    assert!(ready.ends_with("READY=1\n"), "{ready:?}");

    // Watchdog pings keep coming, about every 100 ms.
    let start = Instant::now();
    let mut pings = 0;
    while pings < 5 {
        let msg = recv();
        if msg == "WATCHDOG=1\n" {
            pings += 1;
        }
    }
    let per_ping = start.elapsed() / 5;
    assert!(
        per_ping <= Duration::from_millis(150),
        "pings every {per_ping:?}, watchdog is 200 ms"
    );

    // The status socket answers through the CLI.
    let out = Command::new(env!("CARGO_BIN_EXE_espfleet"))
        .args(["status", "--json", "--socket"])
        .arg(&status_sock)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["pid"], child.id());
    assert_eq!(snap["ports"], serde_json::json!([]));

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    loop {
        let msg = recv();
        if msg == "STOPPING=1\n" {
            break;
        }
        assert!(
            msg == "WATCHDOG=1\n" || msg.starts_with("STATUS="),
            "{msg:?}"
        );
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "espfleetd exited with {status}");
}

#[test]
fn a_dead_manifest_directory_is_reported_and_the_daemon_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_espfleetd"))
        .args([
            "--manifests".as_ref(),
            dir.path().join("missing").as_os_str(),
        ])
        .args(["--state-dir".as_ref(), dir.path().join("state").as_os_str()])
        .args([
            "--socket".as_ref(),
            dir.path().join("status.sock").as_os_str(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("espfleet::daemon::manifest_dir"),
        "{stderr}"
    );
}
