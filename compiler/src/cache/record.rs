//! Manifest records: the fast path of a build where nothing changed.
//!
//! After a manifest is built, its record lists every file the build read with the blake3 of
//! its bytes, and the cache keys of its jobs in output order. When every listed file still has
//! those bytes, the manifest's images are the cached entries of those keys: resolving (KDL
//! parsing, certificate checks) and key computation are skipped. Records are looked up by the
//! manifest's canonical path (machine-local, like the cache itself); their contents are
//! verified by hash and any mismatch falls back to the full build. Manifests whose resolution
//! gave warnings (an expiring certificate, say) get no record, so warnings are never hidden.

use std::path::{Path, PathBuf};

use super::key::{CacheKey, KEY_FORMAT};
use super::store::Cache;
use crate::build::Image;

/// What a manifest's last build read and produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// Key format and compiler version the record was made with.
    pub version: String,
    /// The manifest's name (output directory).
    pub name: String,
    /// Every file the build read (manifest, bases, certificates, firmware, ...) and the blake3
    /// hex of its bytes.
    pub inputs: Vec<(PathBuf, String)>,
    /// Cache keys of the manifest's jobs, in output order.
    pub jobs: Vec<String>,
    /// What the images are (without their bytes), in output order: enough for the lock file,
    /// the report and checking the output directory without reading any cache entry.
    #[serde(default)]
    pub images: Vec<ImageMeta>,
}

/// An image without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageMeta {
    /// As [`Image::name`].
    pub name: String,
    /// As [`Image::path`].
    pub path: String,
    /// As [`Image::offset`].
    pub offset: Option<u32>,
    /// Length of the bytes.
    pub size: u64,
    /// blake3 hex of the bytes.
    pub blake3: String,
    /// As [`Image::secret`].
    pub secret: bool,
}

impl ImageMeta {
    /// The description of `image`.
    pub fn of(image: &Image) -> ImageMeta {
        ImageMeta {
            name: image.name.clone(),
            path: image.path.clone(),
            offset: image.offset,
            size: image.bytes.len() as u64,
            blake3: blake3::hash(&image.bytes).to_hex().to_string(),
            secret: image.secret,
        }
    }
}

/// What an output directory held when espfleet last wrote or checked it: per file, the blake3
/// of the bytes and the file's size, modification time, inode and mode then. A file whose
/// metadata still matches is taken to still hold those bytes (as git's index does), so a
/// rebuild where nothing changed reads neither cache entries nor outputs. Anything that
/// touches a file changes its metadata, and the file is then read and compared again.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutputStamp {
    /// Relative path → state.
    pub files: std::collections::BTreeMap<String, FileStamp>,
}

/// One file of an [`OutputStamp`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStamp {
    /// blake3 hex of the bytes.
    pub blake3: String,
    /// Metadata when stamped.
    pub meta: FileMeta,
}

/// The parts of a file's metadata that change whenever it is written or replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileMeta {
    /// Length.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Inode number (0 where there is none).
    pub ino: u64,
    /// Permission bits (0 where there are none).
    pub mode: u32,
}

impl FileMeta {
    /// The metadata of `path`, or `None` when it cannot be read.
    pub fn of(path: &Path) -> Option<FileMeta> {
        let m = std::fs::symlink_metadata(path).ok()?;
        if !m.is_file() {
            return None;
        }
        let mtime_ns = m
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
        #[cfg(unix)]
        let (ino, mode) = {
            use std::os::unix::fs::MetadataExt as _;
            (m.ino(), m.mode() & 0o7777)
        };
        #[cfg(not(unix))]
        let (ino, mode) = (0, 0);
        Some(FileMeta {
            size: m.len(),
            mtime_ns,
            ino,
            mode,
        })
    }
}

fn version() -> String {
    format!("{KEY_FORMAT}/{}", env!("CARGO_PKG_VERSION"))
}

impl Record {
    /// A record of one build.
    pub fn new(
        name: &str,
        inputs: &crate::manifest::plan::InputFiles,
        jobs: &[CacheKey],
        images: &[Image],
    ) -> Record {
        Record {
            version: version(),
            name: name.to_owned(),
            inputs: inputs
                .0
                .iter()
                .map(|(p, b)| (p.clone(), blake3::hash(b).to_hex().to_string()))
                .collect(),
            jobs: jobs.iter().map(CacheKey::to_hex).collect(),
            images: images.iter().map(ImageMeta::of).collect(),
        }
    }
}

/// Reads a JSON file sealed with the blake3 of its body (its last 32 bytes); `None` when it is
/// missing, torn or does not parse.
fn read_sealed<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = crate::input::read(path, crate::input::InputKind::LOCK).ok()?;
    if bytes.len() < 32 {
        return None;
    }
    let (body, hash) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != hash {
        return None;
    }
    serde_json::from_slice(body).ok()
}

/// Writes `value` as JSON sealed with its blake3, atomically and owner-only (a failure only
/// costs the next build time).
fn write_sealed<T: serde::Serialize>(path: &Path, value: &T) {
    let mut bytes = serde_json::to_vec(value).expect("JSON");
    let hash = blake3::hash(&bytes);
    bytes.extend_from_slice(hash.as_bytes());
    let _ = crate::output::write_atomic(path, &bytes, Some(0o600));
}

impl Cache {
    /// `DIR/<folder>/<blake3 of domain and the canonical path>.<ext>`: machine-local state about
    /// a path.
    fn path_state(&self, domain: &str, folder: &str, ext: &str, path: &Path) -> PathBuf {
        let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut h = blake3::Hasher::new();
        h.update(domain.as_bytes());
        h.update(b"\0");
        h.update(canon.to_string_lossy().as_bytes());
        self.dir()
            .join(folder)
            .join(format!("{}.{ext}", h.finalize().to_hex()))
    }

    fn record_path(&self, manifest: &Path) -> PathBuf {
        self.path_state("espfleet-record", "records-v1", "record", manifest)
    }

    /// The record of `manifest` when it is current: same compiler, every input file unchanged.
    pub fn record(&self, manifest: &Path) -> Option<Record> {
        let r: Record = read_sealed(&self.record_path(manifest))?;
        if r.version != version() || r.images.is_empty() {
            return None;
        }
        for (path, want) in &r.inputs {
            // Bounded, and never blocking on a FIFO that replaced an input.
            let now = crate::input::read(path, crate::input::InputKind::IMAGE).ok()?;
            if blake3::hash(&now).to_hex().as_str() != want {
                return None;
            }
        }
        Some(r)
    }

    /// Stores the record of `manifest` (atomically; failures only cost the next build time).
    pub fn put_record(&self, manifest: &Path, record: &Record) {
        write_sealed(&self.record_path(manifest), record);
    }

    /// The images of a current record, all from verified entries; `None` when any entry is
    /// missing or corrupt (then build normally).
    pub fn record_images(&self, record: &Record) -> Option<Vec<Image>> {
        let mut images = Vec::new();
        for hex in &record.jobs {
            let raw: [u8; 32] = hex::decode(hex).ok()?.try_into().ok()?;
            match self.get(&CacheKey(raw)) {
                super::Lookup::Hit(v) => images.extend(v),
                _ => return None,
            }
        }
        Some(images)
    }

    fn stamp_path(&self, out_dir: &Path) -> PathBuf {
        self.path_state("espfleet-output-stamp", "outputs-v1", "stamp", out_dir)
    }

    /// The stamp of output directory `out_dir`, if there is a readable one.
    pub fn output_stamp(&self, out_dir: &Path) -> Option<OutputStamp> {
        read_sealed(&self.stamp_path(out_dir))
    }

    /// Stores the stamp of `out_dir` (atomically; a failure only costs reading the outputs
    /// next time).
    pub fn put_output_stamp(&self, out_dir: &Path, stamp: &OutputStamp) {
        write_sealed(&self.stamp_path(out_dir), stamp);
    }
}
