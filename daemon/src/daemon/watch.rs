//! Watches the manifest directory and every folder below it (fleet folders) with inotify (via
//! `notify`) and reports "something changed".
//!
//! Directories are watched, never single files: editors and `git pull` replace files by
//! rename or unlink + create, which would orphan a per-file watch. Access events are ignored;
//! every other event becomes [`Event::ManifestsChanged`], which the loop debounces before
//! rescanning. If the directory itself goes away the watch is dead, so the source reports
//! itself dead and the daemon exits for systemd to restart it.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use notify::Watcher as _;

use super::event::Event;

/// Keeps the watch alive; dropping it stops watching.
pub struct ManifestWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for ManifestWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManifestWatcher")
    }
}

/// Starts watching `dir`.
pub fn watch(dir: &Path, events: mpsc::Sender<Event>) -> notify::Result<ManifestWatcher> {
    let root: PathBuf = dir.to_owned();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let event = match res {
            Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => return,
            Ok(ev)
                if matches!(
                    ev.kind,
                    notify::EventKind::Remove(notify::event::RemoveKind::Folder)
                ) && ev.paths.iter().any(|p| p == &root) =>
            {
                Event::SourceDied {
                    source: "manifest watcher",
                    error: format!("{} was removed", root.display()),
                }
            }
            Ok(_) => Event::ManifestsChanged,
            Err(e) => Event::SourceDied {
                source: "manifest watcher",
                error: e.to_string(),
            },
        };
        let _ = events.send(event);
    })?;
    watcher.watch(dir, notify::RecursiveMode::Recursive)?;
    Ok(ManifestWatcher { _watcher: watcher })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_atomic_rename_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let _w = watch(dir.path(), tx).unwrap();
        std::fs::write(dir.path().join(".a.kdl.tmp"), "x").unwrap();
        std::fs::rename(dir.path().join(".a.kdl.tmp"), dir.path().join("a.kdl")).unwrap();
        let ev = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(matches!(ev, Event::ManifestsChanged), "{ev:?}");
    }

    #[test]
    fn a_change_inside_a_fleet_folder_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bench/pki")).unwrap();
        let (tx, rx) = mpsc::channel();
        let _w = watch(dir.path(), tx).unwrap();
        std::fs::write(dir.path().join("bench/pki/board.key"), "renewed").unwrap();
        let ev = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(matches!(ev, Event::ManifestsChanged), "{ev:?}");
    }
}
