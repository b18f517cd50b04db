//! The manifests in force: one per `*.kdl` file in the manifest directory or any folder below
//! it, each the last version that built.
//!
//! The directory holds whole fleet folders — manifests with the certificates, keys and firmware
//! they reference — laid out as `espfleet build DIR` reads them: a manifest that another
//! manifest of the directory extends is a base and is not flashed on its own. Manifests are
//! named by their path below the directory (`bench/devices/bench-01.kdl`).
//!
//! On every change in the directory the whole directory is rescanned and every manifest
//! reloaded (builds go through the compiler's cache, so an unchanged manifest costs a cache
//! lookup; reloading everything also catches a changed `extends` base). A file that fails to
//! build keeps its last good version in force and the diagnostic is reported; a board is never
//! flashed from a version that failed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use espfleet_compiler::device_match::{Candidate, MatchRule};
use espfleet_compiler::image::FlashImage;
use espfleet_compiler::target::Chip;

/// A manifest that built: what matching and flashing need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedManifest {
    /// Path below the manifest directory (`bench-c3.kdl`, `bench/devices/bench-01.kdl`): the
    /// key in logs and the journal.
    pub file: String,
    /// The manifest's own `name`.
    pub name: String,
    /// The chip it builds for.
    pub chip: Chip,
    /// Its `match` rules.
    pub rules: Vec<MatchRule>,
    /// The images.
    pub image: Arc<FlashImage>,
    /// Other manifest files this one extends (directly or through a base), as read: they are
    /// bases, not devices.
    pub extends: Vec<PathBuf>,
}

/// Turns a manifest file into images. The production loader parses, resolves and builds
/// through the compiler's cache; tests use simpler ones.
pub trait ManifestLoader: Send + Sync {
    /// Loads and builds one manifest. The error is the rendered diagnostic, ready to log.
    fn load(&self, path: &Path) -> Result<LoadedManifest, String>;
}

/// What a rescan changed, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new manifest, or a new good version of one.
    Loaded {
        /// File name.
        file: String,
        /// True when it replaced an older good version.
        replaced: bool,
    },
    /// The file failed to build (a new failure, or a different error than last time).
    Failed {
        /// File name.
        file: String,
        /// The diagnostic.
        error: String,
        /// True when an older good version stays in force.
        kept_last_good: bool,
    },
    /// A previously failing file builds again but with the images of the version in force.
    Recovered {
        /// File name.
        file: String,
    },
    /// The file is gone; its manifest is no longer in force.
    Removed {
        /// File name.
        file: String,
    },
}

#[derive(Debug)]
struct Entry {
    good: Option<Arc<LoadedManifest>>,
    error: Option<String>,
}

/// The manifests in force.
#[derive(Debug, Default)]
pub struct ManifestStore {
    entries: BTreeMap<String, Entry>,
}

/// Whether a directory entry is a manifest (`*.kdl`, not hidden, not an editor temporary).
pub fn is_manifest_file(name: &str) -> bool {
    Path::new(name).extension().is_some_and(|e| e == "kdl") && !name.starts_with('.')
}

impl ManifestStore {
    /// Rescans `dir` and the folders below it, reloading every manifest, and returns what
    /// changed. Bases (files another manifest that built extends) are left out.
    pub fn rescan(
        &mut self,
        dir: &Path,
        loader: &dyn ManifestLoader,
    ) -> std::io::Result<Vec<Change>> {
        let mut found: Vec<(String, PathBuf)> = Vec::new();
        for path in espfleet_compiler::manifest::discover::discover(&[dir.to_owned()])? {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let Some(key) = path.strip_prefix(dir).ok().and_then(Path::to_str) else {
                continue;
            };
            if is_manifest_file(name) {
                found.push((key.to_owned(), path.clone()));
            }
        }
        found.sort();
        let results: Vec<(String, PathBuf, Result<LoadedManifest, String>)> = found
            .into_iter()
            .map(|(key, path)| {
                let result = loader.load(&path);
                (key, path, result)
            })
            .collect();
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let bases: std::collections::BTreeSet<PathBuf> = results
            .iter()
            .filter_map(|(_, _, r)| r.as_ref().ok())
            .flat_map(|m| m.extends.iter().map(|p| canon(p)))
            .collect();
        let files: Vec<(String, Result<LoadedManifest, String>)> = results
            .into_iter()
            .filter(|(_, path, _)| !bases.contains(&canon(path)))
            .map(|(key, _, result)| (key, result))
            .collect();
        let mut changes = Vec::new();
        let present: std::collections::BTreeSet<&str> =
            files.iter().map(|(n, _)| n.as_str()).collect();
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|k| !present.contains(k.as_str()))
            .cloned()
            .collect();
        for file in gone {
            self.entries.remove(&file);
            changes.push(Change::Removed { file });
        }
        for (file, result) in files {
            let result = result.map(|mut m| {
                m.file.clone_from(&file);
                m
            });
            let entry = self.entries.entry(file.clone()).or_insert(Entry {
                good: None,
                error: None,
            });
            match result {
                Ok(m) => {
                    let was_failing = entry.error.take().is_some();
                    if entry.good.as_deref() == Some(&m) {
                        if was_failing {
                            changes.push(Change::Recovered { file });
                        }
                    } else {
                        let replaced = entry.good.is_some();
                        entry.good = Some(Arc::new(m));
                        changes.push(Change::Loaded { file, replaced });
                    }
                }
                Err(error) => {
                    if entry.error.as_deref() != Some(error.as_str()) {
                        changes.push(Change::Failed {
                            file,
                            error: error.clone(),
                            kept_last_good: entry.good.is_some(),
                        });
                    }
                    entry.error = Some(error);
                }
            }
        }
        Ok(changes)
    }

    /// The manifests in force, by file name.
    pub fn in_force(&self) -> impl Iterator<Item = &Arc<LoadedManifest>> {
        self.entries.values().filter_map(|e| e.good.as_ref())
    }

    /// The manifest in force under `file`.
    pub fn get(&self, file: &str) -> Option<&Arc<LoadedManifest>> {
        self.entries.get(file).and_then(|e| e.good.as_ref())
    }

    /// Matching candidates, keyed by file name.
    pub fn candidates(&self) -> Vec<Candidate<'_, String>> {
        self.in_force()
            .map(|m| Candidate {
                key: m.file.clone(),
                chip: m.chip,
                rules: &m.rules,
            })
            .collect()
    }

    /// Whether any manifest in force names `vid:pid` in a rule (so an unknown bridge still
    /// counts as a board candidate).
    pub fn names_usb_id(&self, vid: Option<u16>, pid: Option<u16>) -> bool {
        self.in_force()
            .flat_map(|m| m.rules.iter())
            .any(|r| r.vid.is_some() && r.vid == vid && r.pid.is_none_or(|p| Some(p) == pid))
    }

    /// Status lines for the status socket.
    pub fn status(&self) -> Vec<super::status::ManifestStatus> {
        self.entries
            .iter()
            .map(|(file, e)| super::status::ManifestStatus {
                file: file.clone(),
                name: e.good.as_ref().map(|m| m.name.clone()),
                error: e.error.clone(),
                in_force: e.good.is_some(),
                pool: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use espfleet_compiler::image::Segment;
    use espfleet_compiler::target::{FlashFreq, FlashMode, FlashSettings, FlashSize};

    /// A loader for this test: a file whose first line is `ok <byte>` builds an image filled
    /// with that byte; anything else fails with the file's text as the error.
    struct LineLoader;
    impl ManifestLoader for LineLoader {
        fn load(&self, path: &Path) -> Result<LoadedManifest, String> {
            let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
            let mut lines = text.lines();
            let byte: u8 = lines
                .next()
                .and_then(|l| l.strip_prefix("ok "))
                .and_then(|b| b.trim().parse().ok())
                .ok_or(text.clone())?;
            // A second line `extends FILE` names a base, relative to this file.
            let extends = lines
                .filter_map(|l| l.strip_prefix("extends "))
                .map(|f| path.parent().unwrap().join(f))
                .collect();
            Ok(LoadedManifest {
                file: String::new(),
                name: "n".into(),
                chip: Chip::Esp32c3,
                rules: vec![MatchRule {
                    vid: Some(0x10c4),
                    ..MatchRule::default()
                }],
                image: Arc::new(FlashImage {
                    chip: Chip::Esp32c3,
                    flash: FlashSettings {
                        mode: FlashMode::Dio,
                        freq: FlashFreq::F40m,
                        size: FlashSize::from_bytes(4 << 20).unwrap(),
                    },
                    segments: vec![Segment {
                        name: "app".into(),
                        offset: 0x10000,
                        data: vec![byte; 16].into(),
                    }],
                }),
                extends,
            })
        }
    }

    #[test]
    fn a_broken_manifest_keeps_its_last_good_version() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.kdl");
        std::fs::write(&a, "ok 1").unwrap();
        std::fs::write(dir.path().join(".a.kdl.swp"), "junk").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "junk").unwrap();
        let mut store = ManifestStore::default();
        assert_eq!(
            store.rescan(dir.path(), &LineLoader).unwrap(),
            [Change::Loaded {
                file: "a.kdl".into(),
                replaced: false
            }]
        );
        assert_eq!(
            store.rescan(dir.path(), &LineLoader).unwrap(),
            [],
            "unchanged: nothing to report"
        );

        std::fs::write(&a, "syntax error").unwrap();
        let changes = store.rescan(dir.path(), &LineLoader).unwrap();
        assert_eq!(
            changes,
            [Change::Failed {
                file: "a.kdl".into(),
                error: "syntax error".into(),
                kept_last_good: true
            }]
        );
        assert_eq!(
            store.get("a.kdl").unwrap().image.segments[0].data[0],
            1,
            "last good stays in force"
        );
        assert_eq!(store.status()[0].error.as_deref(), Some("syntax error"));

        std::fs::write(&a, "ok 2").unwrap();
        assert_eq!(
            store.rescan(dir.path(), &LineLoader).unwrap(),
            [Change::Loaded {
                file: "a.kdl".into(),
                replaced: true
            }]
        );
        assert_eq!(store.get("a.kdl").unwrap().image.segments[0].data[0], 2);

        std::fs::remove_file(&a).unwrap();
        assert_eq!(
            store.rescan(dir.path(), &LineLoader).unwrap(),
            [Change::Removed {
                file: "a.kdl".into()
            }]
        );
        assert!(store.get("a.kdl").is_none());
    }

    #[test]
    fn fleet_folders_are_read_with_their_bases_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = dir.path().join("bench");
        std::fs::create_dir_all(fleet.join("devices")).unwrap();
        std::fs::write(fleet.join("base.kdl"), "ok 9").unwrap();
        std::fs::write(fleet.join("devices/b1.kdl"), "ok 1\nextends ../base.kdl").unwrap();
        std::fs::write(fleet.join("devices/b2.kdl"), "ok 2\nextends ../base.kdl").unwrap();
        std::fs::write(dir.path().join("top.kdl"), "ok 3").unwrap();
        let mut store = ManifestStore::default();
        let changes = store.rescan(dir.path(), &LineLoader).unwrap();
        let loaded: Vec<&str> = changes
            .iter()
            .map(|c| match c {
                Change::Loaded { file, .. } => file.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            loaded,
            ["bench/devices/b1.kdl", "bench/devices/b2.kdl", "top.kdl"],
            "the base is not a device"
        );
        assert_eq!(store.candidates().len(), 3);

        // A device that no longer extends it turns the base into a manifest of its own.
        std::fs::remove_file(fleet.join("devices/b1.kdl")).unwrap();
        std::fs::remove_file(fleet.join("devices/b2.kdl")).unwrap();
        let changes = store.rescan(dir.path(), &LineLoader).unwrap();
        assert!(changes.contains(&Change::Loaded {
            file: "bench/base.kdl".into(),
            replaced: false
        }));
    }

    #[test]
    fn a_manifest_that_never_built_is_not_in_force() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.kdl"), "bad").unwrap();
        let mut store = ManifestStore::default();
        let changes = store.rescan(dir.path(), &LineLoader).unwrap();
        assert_eq!(
            changes,
            [Change::Failed {
                file: "b.kdl".into(),
                error: "bad".into(),
                kept_last_good: false
            }]
        );
        assert!(store.candidates().is_empty());
        assert!(!store.names_usb_id(Some(0x10c4), None));
    }
}
