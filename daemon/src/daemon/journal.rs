//! The flash journal: an append-only JSON-lines record of every attempt.
//!
//! Each record is one line, written with a single `write` and `fsync`ed before the daemon goes
//! on, so a record that was reported is on disk. A crash or power loss mid-write can leave a
//! torn last line; readers skip a last line that does not parse (and report how many they
//! skipped) rather than failing. A torn line is never followed by good ones: before appending,
//! the writer ends an unterminated last line with a newline, so the next record starts clean.
//!
//! This is the one file espfleet appends to instead of writing through
//! `espfleet_compiler::output::write_atomic`: rewriting a growing log on every attempt would
//! make each attempt cost O(journal size), and the append + fsync above gives the same promise
//! (nothing half-written is ever taken for a record).

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What came of one attempt on one board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Images written and verified.
    Flashed,
    /// The board already held the images; verified, nothing written.
    Verified,
    /// The attempt failed (see `error`); a retry may follow.
    Failed,
    /// No manifest matches the board, or two match equally: nothing was written.
    LeftAlone,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When the attempt ended (RFC 3339, UTC).
    pub time: String,
    /// Device node.
    pub port: String,
    /// Bench slot (USB path), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// USB vendor id, `10c4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vid: Option<String>,
    /// USB product id, `ea60`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// USB serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usb_serial: Option<String>,
    /// Chip, once connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip: Option<String>,
    /// MAC, once connected (`84:f7:03:12:34:56`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Manifest file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// SHA-256 of each image, by image name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageHash>,
    /// What came of it.
    pub outcome: Outcome,
    /// Attempt number on this plug-in, from 1.
    #[serde(default)]
    pub attempt: u32,
    /// Bytes written.
    #[serde(default)]
    pub bytes: u64,
    /// Milliseconds the attempt took.
    #[serde(default)]
    pub duration_ms: u64,
    /// The error or the reason the board was left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One image's identity in a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageHash {
    /// Image name (`app`, `mfg_nvs`, ...).
    pub name: String,
    /// Flash offset.
    pub offset: u32,
    /// SHA-256, hex.
    pub sha256: String,
}

/// Journal I/O errors.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum JournalError {
    /// The journal could not be opened, read or appended to.
    #[error("journal {path}: {source}")]
    #[diagnostic(
        code(espfleet::journal::io),
        help("check that the state directory exists and is writable by the daemon's user")
    )]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line in the middle of the journal is not a record: the file was edited or corrupted.
    #[error("journal {path}, line {line}: not a journal record: {message}")]
    #[diagnostic(
        code(espfleet::journal::corrupt_line),
        help(
            "the journal is append-only; move the damaged file aside and let the daemon start a new one"
        )
    )]
    CorruptLine {
        /// The journal file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        message: String,
    },
}

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

impl Journal {
    /// Opens (creating with mode 0640 if missing) the journal at `path` and repairs a torn
    /// last line so the next record starts on a line of its own.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs_err::create_dir_all(dir).map_err(io)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o640);
        let mut file = opts.open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > 0 {
            file.seek(SeekFrom::Start(len - 1)).map_err(io)?;
            let mut last = [0u8; 1];
            file.read_exact(&mut last).map_err(io)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(io)?;
                file.sync_data().map_err(io)?;
            }
        }
        Ok(Journal {
            path: path.to_owned(),
            file,
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and waits until it is on disk.
    pub fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(record).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

/// What [`read`] found.
#[derive(Debug, Default)]
pub struct Contents {
    /// Every complete record, oldest first.
    pub records: Vec<Record>,
    /// Lines skipped because they were torn by a crash (0 or 1 in practice: the last line,
    /// or an unterminated line the writer ended before appending).
    pub torn_lines: usize,
}

/// Reads every record. A line that does not parse is tolerated when it is the last line or
/// was torn (it has no closing brace, i.e. the write stopped part way); anything else is
/// corruption and an error. A missing file is an empty journal.
pub fn read(path: &Path) -> Result<Contents, JournalError> {
    let text = match fs_err::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contents::default()),
        Err(source) => {
            return Err(JournalError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Contents::default();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => out.records.push(r),
            Err(e) => {
                let is_last = lines[i + 1..].iter().all(|l| l.trim().is_empty());
                let torn = !line.trim_end().ends_with('}');
                if is_last || torn {
                    out.torn_lines += 1;
                } else {
                    return Err(JournalError::CorruptLine {
                        path: path.to_owned(),
                        line: i + 1,
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Formats a time as RFC 3339 UTC with milliseconds (`2026-11-21T02:19:16.123Z`).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(port: &str, outcome: Outcome) -> Record {
        Record {
            time: "2026-11-21T02:19:16.000Z".into(),
            port: port.into(),
            slot: Some("1-1.3".into()),
            vid: Some("10c4".into()),
            pid: Some("ea60".into()),
            usb_serial: None,
            chip: Some("esp32c3".into()),
            mac: Some("84:f7:03:12:34:56".into()),
            manifest: Some("bench-c3.kdl".into()),
            images: vec![ImageHash {
                name: "app".into(),
                offset: 0x10000,
                sha256: "00".repeat(32),
            }],
            outcome,
            attempt: 1,
            bytes: 1234,
            duration_ms: 56,
            error: None,
        }
    }

    #[test]
    fn appends_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/journal.jsonl");
        let mut j = Journal::open(&path).unwrap();
        j.append(&record("/dev/ttyUSB0", Outcome::Flashed)).unwrap();
        j.append(&record("/dev/ttyUSB1", Outcome::Failed)).unwrap();
        drop(j);
        let mut j = Journal::open(&path).unwrap();
        j.append(&record("/dev/ttyUSB2", Outcome::Verified))
            .unwrap();
        let c = read(&path).unwrap();
        assert_eq!(c.torn_lines, 0);
        let ports: Vec<_> = c.records.iter().map(|r| r.port.as_str()).collect();
        assert_eq!(ports, ["/dev/ttyUSB0", "/dev/ttyUSB1", "/dev/ttyUSB2"]);
        assert_eq!(c.records[0], record("/dev/ttyUSB0", Outcome::Flashed));
        #[cfg(unix)]
        {
            // 0640 less the umask (systemd's UMask=0027 keeps it 0640): whatever the umask of
            // the test run, the same as any file created with mode 0640 there.
            use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
            let probe = dir.path().join("probe");
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o640)
                .open(&probe)
                .unwrap();
            let expected = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                expected
            );
            assert_eq!(expected & !0o640, 0, "never more than 0640");
        }
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_repaired_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut j = Journal::open(&path).unwrap();
        j.append(&record("/dev/ttyUSB0", Outcome::Flashed)).unwrap();
        drop(j);
        // Simulate power loss half way through the second record.
        let full = serde_json::to_string(&record("/dev/ttyUSB1", Outcome::Flashed)).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&full.as_bytes()[..full.len() / 2]).unwrap();
        drop(f);
        let c = read(&path).unwrap();
        assert_eq!((c.records.len(), c.torn_lines), (1, 1));
        // The daemon restarts and appends: the torn line stays torn, the new record is whole.
        let mut j = Journal::open(&path).unwrap();
        j.append(&record("/dev/ttyUSB2", Outcome::Verified))
            .unwrap();
        let c = read(&path).unwrap();
        assert_eq!(c.torn_lines, 1);
        let ports: Vec<_> = c.records.iter().map(|r| r.port.as_str()).collect();
        assert_eq!(ports, ["/dev/ttyUSB0", "/dev/ttyUSB2"]);
    }

    #[test]
    fn a_damaged_middle_line_is_an_error_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        assert!(read(&path).unwrap().records.is_empty());
        let good = serde_json::to_string(&record("/dev/ttyUSB0", Outcome::Flashed)).unwrap();
        std::fs::write(
            &path,
            format!("{good}\n{{\"not\": \"a record\"}}\n{good}\n"),
        )
        .unwrap();
        let err = read(&path).unwrap_err();
        assert!(
            matches!(err, JournalError::CorruptLine { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        use std::time::{Duration, UNIX_EPOCH};
        // Expected values from GNU date: `date -u -d @951782400` (a leap day) and
        // `date -u -d @1795227556`.
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_795_227_556_250)),
            "2026-11-21T02:19:16.250Z"
        );
    }
}
