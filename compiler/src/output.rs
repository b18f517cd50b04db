//! Writing outputs atomically: a temporary file in the target directory, then a rename.
//!
//! Every file espfleet writes goes through [`write_atomic`], so a crash, a full disk or an
//! error half way through never leaves a half-written image where a flasher could pick it up.

use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `path` atomically: the data goes to a temporary file in the same
/// directory, is flushed to disk, and is then renamed over `path`.
///
/// The parent directory is created when missing. `mode` sets Unix permissions on the new file
/// (use `0o600` for anything holding private keys); `None` gives what an ordinary file
/// creation gives, `0o666` less the process umask (temporary files would otherwise start out
/// 0600, which is not what an image or a report should be).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs_err::create_dir_all(dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".espfleet-").suffix(".tmp");
    #[cfg(unix)]
    if mode.is_none() {
        use std::os::unix::fs::PermissionsExt as _;
        // Passed to open(2), so the umask applies as for any new file.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("creating a temporary file in {}: {e}", dir.display()),
        )
    })?;
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| {
        std::io::Error::new(
            e.error.kind(),
            format!("renaming into {}: {}", path.display(), e.error),
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces_without_leaving_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/image.bin");
        write_atomic(&target, b"first", None).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            // Whatever the umask, a plain output gets the mode an ordinary new file gets.
            let plain = dir.path().join("plain");
            std::fs::write(&plain, b"x").unwrap();
            let expected = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
            std::fs::remove_file(&plain).unwrap();
            let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
            assert_eq!(
                mode, expected,
                "plain outputs get the umask's mode, not 0600"
            );
        }
        write_atomic(&target, b"second", Some(0o600)).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(target.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("image.bin")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
