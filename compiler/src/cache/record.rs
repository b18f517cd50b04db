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
        }
    }
}

impl Cache {
    fn record_path(&self, manifest: &Path) -> PathBuf {
        let canon = std::fs::canonicalize(manifest).unwrap_or_else(|_| manifest.to_path_buf());
        let mut h = blake3::Hasher::new();
        h.update(b"espfleet-record\0");
        h.update(canon.to_string_lossy().as_bytes());
        self.dir()
            .join("records-v1")
            .join(format!("{}.record", h.finalize().to_hex()))
    }

    /// The record of `manifest` when it is current: same compiler, every input file unchanged.
    pub fn record(&self, manifest: &Path) -> Option<Record> {
        let bytes = std::fs::read(self.record_path(manifest)).ok()?;
        if bytes.len() < 32 {
            return None;
        }
        let (body, hash) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != hash {
            return None;
        }
        let r: Record = serde_json::from_slice(body).ok()?;
        if r.version != version() {
            return None;
        }
        for (path, want) in &r.inputs {
            let now = std::fs::read(path).ok()?;
            if blake3::hash(&now).to_hex().as_str() != want {
                return None;
            }
        }
        Some(r)
    }

    /// Stores the record of `manifest` (atomically; failures only cost the next build time).
    pub fn put_record(&self, manifest: &Path, record: &Record) {
        let mut bytes = serde_json::to_vec(record).expect("JSON");
        let hash = blake3::hash(&bytes);
        bytes.extend_from_slice(hash.as_bytes());
        let _ = crate::output::write_atomic(&self.record_path(manifest), &bytes, Some(0o600));
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
}
