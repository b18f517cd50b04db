//! The status socket: `espfleet status` asks the running daemon what each port is doing.
//!
//! Protocol: connect to the Unix socket, read one JSON document ([`Snapshot`]), EOF. The loop
//! publishes a fresh snapshot after every event; the socket thread only reads it, so a slow
//! client never holds up flashing. The socket is mode 0660 inside a 0750 runtime directory:
//! only the daemon's user and group can ask.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// Everything `espfleet status` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Daemon process id.
    pub pid: u32,
    /// Manifests in force, by file name.
    pub manifests: Vec<ManifestStatus>,
    /// Ports the daemon knows, sorted by slot.
    pub ports: Vec<PortStatus>,
}

/// One manifest file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestStatus {
    /// File name.
    pub file: String,
    /// The manifest's `name`, from its last good version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Set when the file's current contents fail to build; the last good version stays in
    /// force, if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether a good version is in force.
    pub in_force: bool,
    /// The manifest's certificate pool, when its identity section takes certificates from a
    /// pool. Integration point for per-device identity (issue 15): `None` until the identity
    /// store reports it; the bench page shows "—" meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolStatus>,
}

/// What is left in a manifest's pool of ready-made certificate/key pairs. Counts only: no
/// certificate, key or file name of the pool is ever part of a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// Pairs not yet handed to a board.
    pub remaining: u64,
    /// The manifest's warning threshold: below this many, status and the page warn.
    pub warn_below: u64,
}

/// One port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    /// Device node.
    pub port: String,
    /// Bench slot (USB path).
    pub slot: String,
    /// What is happening: `connecting`, `flashing`, `verifying` (every byte sent, reading
    /// back MD5s), `retrying`, `flashed`, `verified`, `failed`, `left-alone`, `present`
    /// (there at start, not flashed), `idle`.
    pub state: String,
    /// Manifest file in use or used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Chip, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip: Option<String>,
    /// MAC, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Bytes done so far.
    pub done: u64,
    /// Bytes in total (0 until known).
    pub total: u64,
    /// Attempt number on this plug-in.
    pub attempt: u32,
    /// Last error or reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The board's serial number. Integration point for per-device identity (issue 15):
    /// `None` until the identity store allocates one for this board's MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// When work on this plug-in began (the worker started), in milliseconds since the Unix
    /// epoch. With `until_ms` and the clock it gives the elapsed time a page shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// When the plug-in reached its outcome (flashed, verified, failed, left alone), in
    /// milliseconds since the Unix epoch; absent while work goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Average progress rate of the current (or last) flash attempt, in bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
}

/// The snapshot the loop publishes and the socket serves.
pub type Shared = Arc<Mutex<Snapshot>>;

/// The one JSON form of a running daemon's snapshot: what `espfleet status --json` prints and
/// what the bench page's `GET /api/status` serves, byte for byte — the snapshot's fields plus
/// `"running": true` (a script tells it from the `"running": false` document `status --json`
/// prints when no daemon answers), pretty-printed, one trailing newline.
pub fn to_json(snap: &Snapshot) -> String {
    let mut value = serde_json::to_value(snap).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("running".into(), serde_json::Value::Bool(true));
    }
    format!("{value:#}\n")
}

/// Status socket errors.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StatusError {
    /// The socket could not be created.
    #[error("status socket {path}: {source}")]
    #[diagnostic(
        code(espfleet::status::bind),
        help("check that the runtime directory exists and is writable, or pass --socket")
    )]
    Bind {
        /// Socket path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No daemon answered.
    #[error("cannot reach espfleetd at {path}: {source}")]
    #[diagnostic(
        code(espfleet::status::unreachable),
        help(
            "is espfleetd running (`systemctl status espfleetd`)? Are you in its group? Use --socket for another path"
        )
    )]
    Unreachable {
        /// Socket path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The daemon's answer was not a status document.
    #[error("espfleetd at {path} sent an unreadable answer: {message}")]
    #[diagnostic(
        code(espfleet::status::bad_answer),
        help("the daemon and this espfleet may be different versions")
    )]
    BadAnswer {
        /// Socket path.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
}

/// Binds the socket (replacing a stale one left by a crash) with mode 0660.
pub fn bind(path: &Path) -> Result<UnixListener, StatusError> {
    let err = |source| StatusError::Bind {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs_err::create_dir_all(dir).map_err(err)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    Ok(listener)
}

/// Serves snapshots until the listener fails. Runs on its own thread.
pub fn serve(listener: &UnixListener, shared: &Shared) -> std::io::Error {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let doc = {
                    let snap = shared.lock().unwrap_or_else(PoisonError::into_inner);
                    serde_json::to_vec(&*snap).unwrap_or_default()
                };
                // A client that hangs up early is its own problem.
                let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(2)));
                let _ = stream
                    .write_all(&doc)
                    .and_then(|()| stream.write_all(b"\n"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return e,
        }
    }
}

/// Asks the daemon at `path` for a snapshot.
pub fn query(path: &Path) -> Result<Snapshot, StatusError> {
    use std::io::Read as _;
    let unreachable = |source| StatusError::Unreachable {
        path: path.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .map_err(unreachable)?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).map_err(unreachable)?;
    serde_json::from_slice(&buf).map_err(|e| StatusError::BadAnswer {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_published_snapshot_with_restrictive_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/status.sock");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"stale").unwrap();
        let listener = bind(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o660
        );
        let shared: Shared = Arc::default();
        shared.lock().unwrap().pid = 42;
        shared.lock().unwrap().ports.push(PortStatus {
            port: "/dev/ttyUSB0".into(),
            slot: "1-1.3".into(),
            state: "flashing".into(),
            manifest: Some("bench.kdl".into()),
            chip: Some("esp32c3".into()),
            mac: None,
            done: 10,
            total: 100,
            attempt: 1,
            detail: None,
            serial: None,
            since_ms: Some(1_795_227_556_250),
            until_ms: None,
            rate: Some(90_000),
        });
        let s2 = shared.clone();
        std::thread::spawn(move || serve(&listener, &s2));
        let got = query(&path).unwrap();
        assert_eq!(got, *shared.lock().unwrap());
    }

    #[test]
    fn no_daemon_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = query(&dir.path().join("nothing.sock")).unwrap_err();
        assert!(matches!(err, StatusError::Unreachable { .. }));
    }
}
