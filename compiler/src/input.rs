//! Reading input files with bounds: the one place where espfleet reads a file a user (or a
//! manifest, or a release folder) names.
//!
//! Every input is hostile until bounded. [`read`] therefore
//!
//! * refuses anything that is not a regular file *before opening it* (a FIFO named `x.kdl`
//!   would block forever, `/dev/zero` never ends, and opening a serial port resets the board
//!   behind it), then opens without blocking and checks the opened file again, so that a file
//!   swapped for a FIFO between the two looks is refused too;
//! * refuses a file larger than its kind's limit ([`InputKind`]) from its size, without
//!   reading it, and never reads more than the limit (a file that grows while being read);
//! * refuses private key material in inputs whose text ends up quoted in diagnostics
//!   (manifests, CSV tables, release recipes): a key named by mistake as `extends` or
//!   `gatts` must not be echoed line by line in an error message, a log or a status page.
//!
//! The limits, and where they come from, are in `docs/input-limits.md`.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// What an input is, which decides how large it may be and whether its text may be quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputKind {
    what: &'static str,
    max: u64,
    quoted: bool,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

impl InputKind {
    /// A manifest (`*.kdl`, or a base it `extends`). The largest example is 5 KB; the limit
    /// also bounds the work of the KDL parser on a hostile file (`docs/input-limits.md`).
    pub const MANIFEST: InputKind = InputKind {
        what: "a manifest",
        max: 64 * KIB,
        quoted: true,
    };
    /// A table in CSV form: GATTS services, a partition table, factory parameters.
    pub const TABLE_CSV: InputKind = InputKind {
        what: "a CSV table",
        max: MIB,
        quoted: true,
    };
    /// An NVS generator CSV (`nvs generate`); its values fill at most one NVS partition. Its
    /// rows may hold a key inline (a `string` value), so it is not refused for one: the NVS
    /// reader then shows no source lines in its diagnostics (`nvs::csv`).
    pub const NVS_CSV: InputKind = InputKind {
        what: "an NVS CSV",
        max: 64 * MIB,
        quoted: false,
    };
    /// A certificate or private key (PEM or DER).
    pub const CERTIFICATE: InputKind = InputKind {
        what: "a certificate or key",
        max: MIB,
        quoted: false,
    };
    /// A flash image or part of one (firmware, partition contents, NVS images, keys files,
    /// files an NVS CSV names): at most the largest flash size there is
    /// ([`crate::target::FlashSize::KNOWN`], 128 MB).
    pub const IMAGE: InputKind = InputKind {
        what: "an image",
        max: 128 * MIB,
        quoted: false,
    };
    /// A release folder's flashing recipe (`flasher_args.json`, `download.config`,
    /// `flash_project_args`).
    pub const RECIPE: InputKind = InputKind {
        what: "a flashing recipe",
        max: MIB,
        quoted: true,
    };
    /// A lock file or JSON report espfleet wrote (`espfleet.lock`).
    pub const LOCK: InputKind = InputKind {
        what: "a lock file",
        max: 64 * MIB,
        quoted: true,
    };

    /// What the input is, for messages (`a manifest`).
    pub fn what(self) -> &'static str {
        self.what
    }

    /// The largest size accepted, in bytes.
    pub fn max(self) -> u64 {
        self.max
    }

    /// Whether the text of this input may be quoted in diagnostics (and so must not hold key
    /// material).
    pub fn is_quoted(self) -> bool {
        self.quoted
    }
}

/// Why an input was not read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum InputError {
    /// The path names nothing.
    #[error("{} does not exist", path.display())]
    #[diagnostic(
        code(espfleet::input::missing),
        help("check the spelling of the path, or create the file")
    )]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// A FIFO, device, socket or directory.
    #[error("{} is {kind}, not a regular file", path.display())]
    #[diagnostic(
        code(espfleet::input::not_a_file),
        help(
            "espfleet reads {what} only from a regular file (not a FIFO, device, socket or directory); copy the data into a file"
        )
    )]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead (`a FIFO`).
        kind: &'static str,
        /// What was expected (`a manifest`).
        what: &'static str,
    },
    /// Larger than the kind's limit.
    #[error("{} is {size} bytes; {what} may be at most {max} bytes", path.display())]
    #[diagnostic(
        code(espfleet::input::too_large),
        help(
            "is this the right file? The limits are in docs/input-limits.md; split a large manifest with `extends`"
        )
    )]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
        /// Its size (at least; reading stops past the limit).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// PEM private key material where quotable text was expected.
    #[error("{} holds a private key, not {what}", path.display())]
    #[diagnostic(
        code(espfleet::input::private_key),
        help(
            "keys belong in `certificates {{ client-key \"...\" }}`; its contents are not shown so that the key cannot leak into a log"
        )
    )]
    PrivateKey {
        /// The path.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
    },
    /// Any other I/O error (permissions, ...).
    #[error("cannot read {}: {source}", path.display())]
    #[diagnostic(
        code(espfleet::input::unreadable),
        help("check the file's permissions")
    )]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl InputError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            InputError::Missing { path }
            | InputError::NotAFile { path, .. }
            | InputError::TooLarge { path, .. }
            | InputError::PrivateKey { path, .. }
            | InputError::Io { path, .. } => path,
        }
    }

    /// The error as an [`std::io::Error`] whose message leaves the path out, for callers whose
    /// own error type names the path already.
    pub fn into_io_error(self) -> std::io::Error {
        use std::io::{Error, ErrorKind};
        match self {
            InputError::Missing { .. } => Error::new(ErrorKind::NotFound, "does not exist"),
            InputError::NotAFile { kind, .. } => {
                Error::other(format!("it is {kind}, not a regular file"))
            }
            InputError::TooLarge {
                what, size, max, ..
            } => Error::new(
                ErrorKind::FileTooLarge,
                format!("it is {size} bytes; {what} may be at most {max} bytes"),
            ),
            InputError::PrivateKey { what, .. } => Error::new(
                ErrorKind::InvalidData,
                format!("it holds a private key, not {what}"),
            ),
            InputError::Io { source, .. } => source,
        }
    }

    /// The help text of the variant (for callers that wrap the error in their own type).
    pub fn help_text(&self) -> String {
        miette::Diagnostic::help(self).map_or_else(String::new, |h| h.to_string())
    }
}

fn file_kind(t: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Reads the input at `path` as `kind`, within its bounds (see the module documentation).
pub fn read(path: &Path, kind: InputKind) -> Result<Vec<u8>, InputError> {
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            InputError::Missing {
                path: path.to_owned(),
            }
        } else {
            InputError::Io {
                path: path.to_owned(),
                source,
            }
        }
    };
    let not_a_file = |what: &'static str| InputError::NotAFile {
        path: path.to_owned(),
        kind: what,
        what: kind.what,
    };
    let too_large = |size: u64| InputError::TooLarge {
        path: path.to_owned(),
        what: kind.what,
        size,
        max: kind.max,
    };
    // Look before opening: opening a FIFO blocks, opening a tty toggles its modem lines.
    let meta = std::fs::metadata(path).map_err(io)?;
    if let Some(k) = file_kind(meta.file_type()) {
        return Err(not_a_file(k));
    }
    if meta.len() > kind.max {
        return Err(too_large(meta.len()));
    }
    let file = open_nonblocking(path).map_err(io)?;
    // The path may have been replaced between the two looks: check what was opened.
    let meta = file.metadata().map_err(io)?;
    if let Some(k) = file_kind(meta.file_type()) {
        return Err(not_a_file(k));
    }
    let expected = usize::try_from(meta.len().min(kind.max)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(expected);
    file.take(kind.max + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > kind.max {
        return Err(too_large(bytes.len() as u64));
    }
    if kind.quoted && holds_private_key(&bytes) {
        return Err(InputError::PrivateKey {
            path: path.to_owned(),
            what: kind.what,
        });
    }
    Ok(bytes)
}

/// Reads standard input as `kind`, at most its limit (`-` as a file name).
pub fn read_stdin(kind: InputKind) -> Result<Vec<u8>, InputError> {
    let path = PathBuf::from("<stdin>");
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(kind.max + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Io {
            path: path.clone(),
            source,
        })?;
    if bytes.len() as u64 > kind.max {
        return Err(InputError::TooLarge {
            path,
            what: kind.what,
            size: bytes.len() as u64,
            max: kind.max,
        });
    }
    if kind.quoted && holds_private_key(&bytes) {
        return Err(InputError::PrivateKey {
            path,
            what: kind.what,
        });
    }
    Ok(bytes)
}

fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// The base64 lines of every PEM private key block in `text` (what must never be quoted).
pub fn private_key_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let l = line.trim();
        // The markers may share a line with other text (a key quoted in a CSV field).
        if l.contains("-----BEGIN ") && l.contains("PRIVATE KEY-----") {
            inside = true;
        } else if l.contains("-----END ") {
            inside = false;
        } else if inside && !l.is_empty() && !l.contains(':') {
            out.push(l);
        }
    }
    out
}

/// Whether `text` contains any 16-character piece of `key_lines` (or a whole shorter line).
pub fn quotes_key_material(text: &str, key_lines: &[&str]) -> bool {
    key_lines.iter().any(|line| {
        line.as_bytes()
            .chunks(16)
            .filter(|c| c.len() == 16 || c.len() == line.len())
            .any(|c| std::str::from_utf8(c).is_ok_and(|c| text.contains(c)))
    })
}

/// Whether `bytes` hold a PEM private key block (`-----BEGIN ... PRIVATE KEY-----`: PKCS#8,
/// encrypted PKCS#8, PKCS#1 RSA, SEC1 EC, DSA, OpenSSH).
pub fn holds_private_key(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(at) = memchr::memmem::find(rest, b"-----BEGIN ") {
        let line = &rest[at + 11..];
        let end = memchr::memchr(b'\n', line).unwrap_or(line.len());
        let label = &line[..end];
        if memchr::memmem::find(label, b"PRIVATE KEY-----").is_some() {
            return true;
        }
        rest = &line[end..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.kdl");
        std::fs::write(&p, b"espfleet 1\n").unwrap();
        assert_eq!(read(&p, InputKind::MANIFEST).unwrap(), b"espfleet 1\n");
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("bomb.kdl");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        for (p, kind) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
        ] {
            match read(p, InputKind::MANIFEST) {
                Err(InputError::NotAFile { kind: k, .. }) => assert_eq!(k, kind),
                other => panic!("{}: {other:?}", p.display()),
            }
        }
    }

    #[test]
    fn size_is_checked_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.kdl");
        let f = std::fs::File::create(&p).unwrap();
        // A sparse 50 MB file: refused from its size, nothing read.
        f.set_len(50 * MIB).unwrap();
        match read(&p, InputKind::MANIFEST) {
            Err(InputError::TooLarge { size, max, .. }) => {
                assert_eq!((size, max), (50 * MIB, 64 * KIB));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn private_keys_are_refused_where_text_is_quoted() {
        let key = b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n";
        assert!(holds_private_key(key));
        assert!(!holds_private_key(b"-----BEGIN CERTIFICATE-----\nMIIB\n"));
        assert!(holds_private_key(
            b"x\n-----BEGIN CERTIFICATE-----\n-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        ));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("client.key");
        std::fs::write(&p, key).unwrap();
        assert!(matches!(
            read(&p, InputKind::MANIFEST),
            Err(InputError::PrivateKey { .. })
        ));
        assert_eq!(read(&p, InputKind::CERTIFICATE).unwrap(), key);
    }
}
