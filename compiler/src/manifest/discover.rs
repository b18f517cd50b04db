//! Finding manifests: files given directly, and every `*.kdl` under a directory.

use std::path::{Path, PathBuf};

/// Expands `paths` into manifest files: a file stays as given; a directory contributes every
/// `*.kdl` below it (hidden directories and `target` skipped), sorted so builds are ordered
/// the same on every machine.
pub fn discover(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if fs_err::metadata(p)?.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            if !name.starts_with('.') && name != "target" {
                walk(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "kdl") && !name.starts_with('.') {
            out.push(path);
        }
    }
    Ok(())
}
