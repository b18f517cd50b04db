//! The on-disk store: one verified file per entry, written atomically, shared between processes.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::key::CacheKey;
use crate::build::Image;

/// Version of the entry file format; part of the bucket directory name (`images-v1`), so an
/// incompatible format never reads another's entries.
pub const ENTRY_FORMAT: u32 = 1;

const MAGIC: &[u8; 16] = b"espfleet-cache\0\x01";
const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by espfleet.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";
/// A hit refreshes the entry's modification time (its "last used" for `gc`) at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(3600);

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CacheError {
    /// The cache directory cannot be created or written.
    #[error("cache directory {dir}: {source}")]
    #[diagnostic(
        code(espfleet::cache::dir_unusable),
        help("pass a writable directory with --cache-dir or ESPFLEET_CACHE_DIR, or --no-cache")
    )]
    DirUnusable {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// Listing or removing entries failed.
    #[error("cache {dir}: {source}")]
    #[diagnostic(
        code(espfleet::cache::io),
        help("check the permissions of the cache directory; `espfleet cache clean` starts over")
    )]
    Io {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// A verified entry.
    Hit(Vec<Image>),
    /// No entry.
    Miss,
    /// An entry that failed verification; it has been removed and must be rebuilt.
    Corrupt(String),
}

/// Entry count and size of a cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries.
    pub entries: u64,
    /// Bytes on disk (entry file sizes).
    pub bytes: u64,
}

/// A content-addressed image cache in one directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    bucket: PathBuf,
}

impl Cache {
    /// The default directory: `$ESPFLEET_CACHE_DIR`, else `$XDG_CACHE_HOME/espfleet`, else
    /// `$HOME/.cache/espfleet`.
    pub fn default_dir() -> Option<PathBuf> {
        let non_empty = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty());
        if let Some(d) = non_empty("ESPFLEET_CACHE_DIR") {
            return Some(PathBuf::from(d));
        }
        if let Some(d) = non_empty("XDG_CACHE_HOME") {
            return Some(PathBuf::from(d).join("espfleet"));
        }
        non_empty("HOME").map(|h| PathBuf::from(h).join(".cache").join("espfleet"))
    }

    /// Opens (creating when missing, mode 0700) the cache in `dir` and tags it with
    /// `CACHEDIR.TAG` so backup tools skip it.
    pub fn open(dir: &Path) -> Result<Cache, CacheError> {
        let unusable = |source| CacheError::DirUnusable {
            dir: dir.to_owned(),
            source,
        };
        let bucket = dir.join(format!("images-v{ENTRY_FORMAT}"));
        create_private_dir(&bucket).map_err(unusable)?;
        let tag = dir.join("CACHEDIR.TAG");
        if !tag.exists() {
            crate::output::write_atomic(&tag, TAG.as_bytes(), None).map_err(unusable)?;
        }
        Ok(Cache {
            dir: dir.to_owned(),
            bucket,
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, key: &CacheKey) -> PathBuf {
        let hex = key.to_hex();
        self.bucket.join(&hex[..2]).join(format!("{hex}.entry"))
    }

    /// Looks `key` up. An entry is used only when its stored content hash matches its bytes;
    /// anything else is removed and reported as [`Lookup::Corrupt`].
    pub fn get(&self, key: &CacheKey) -> Lookup {
        let path = self.entry_path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Corrupt(format!("unreadable: {e}")),
        };
        match decode(&bytes) {
            Ok(images) => {
                touch(&path);
                Lookup::Hit(images)
            }
            Err(why) => {
                let _ = std::fs::remove_file(&path);
                Lookup::Corrupt(why.to_owned())
            }
        }
    }

    /// Stores `images` under `key`: written to a temporary file beside the entry and renamed
    /// into place, so concurrent readers and writers only ever see whole entries. Entries
    /// holding private keys get mode 0600.
    pub fn put(&self, key: &CacheKey, images: &[Image]) -> Result<(), CacheError> {
        let path = self.entry_path(key);
        let secret = images.iter().any(|i| i.secret);
        let bytes = encode(images);
        let parent = path.parent().expect("entries live in a shard directory");
        create_private_dir(parent)
            .and_then(|()| {
                crate::output::write_atomic(&path, &bytes, Some(if secret { 0o600 } else { 0o644 }))
            })
            .map_err(|source| CacheError::Io {
                dir: self.dir.clone(),
                source,
            })
    }

    /// Entries and bytes in every bucket of this directory.
    pub fn stats(&self) -> Result<Stats, CacheError> {
        let mut s = Stats::default();
        for e in self.entries()? {
            s.entries += 1;
            s.bytes += e.1;
        }
        Ok(s)
    }

    /// Removes entries not used for `max_age`, then the least recently used ones until the
    /// cache holds at most `max_bytes`. Returns what was removed. Leftover temporary files older
    /// than a day (a crashed writer) are removed too.
    pub fn gc(
        &self,
        max_age: Option<Duration>,
        max_bytes: Option<u64>,
    ) -> Result<Stats, CacheError> {
        let now = SystemTime::now();
        let mut entries = self.entries()?;
        // Oldest first; ties by path so gc is deterministic.
        entries.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        let mut removed = Stats::default();
        for (path, size, used) in entries {
            let too_old =
                max_age.is_some_and(|age| now.duration_since(used).unwrap_or_default() > age);
            let too_big = max_bytes.is_some_and(|b| total > b);
            if too_old || too_big {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        removed.entries += 1;
                        removed.bytes += size;
                        total -= size;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => total -= size,
                    Err(source) => {
                        return Err(CacheError::Io {
                            dir: self.dir.clone(),
                            source,
                        });
                    }
                }
            }
        }
        self.remove_stale_temporaries(now);
        Ok(removed)
    }

    /// Removes every entry of every bucket, the manifest records and the output stamps; keeps
    /// the directory and its tag.
    pub fn clean(&self) -> Result<Stats, CacheError> {
        let removed = self.stats()?;
        let extra = ["records-v1", "outputs-v1"].map(|d| self.dir.join(d));
        for bucket in self.buckets()?.into_iter().chain(extra) {
            std::fs::remove_dir_all(&bucket)
                .or_else(ignore_not_found)
                .map_err(|source| CacheError::Io {
                    dir: self.dir.clone(),
                    source,
                })?;
        }
        create_private_dir(&self.bucket).map_err(|source| CacheError::Io {
            dir: self.dir.clone(),
            source,
        })?;
        Ok(removed)
    }

    fn buckets(&self) -> Result<Vec<PathBuf>, CacheError> {
        let io_err = |source| CacheError::Io {
            dir: self.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(io_err)? {
            let e = e.map_err(io_err)?;
            if e.file_name().to_string_lossy().starts_with("images-v") && e.path().is_dir() {
                out.push(e.path());
            }
        }
        out.sort();
        Ok(out)
    }

    /// `(path, size, last used)` of every entry file.
    fn entries(&self) -> Result<Vec<(PathBuf, u64, SystemTime)>, CacheError> {
        let io_err = |source| CacheError::Io {
            dir: self.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for bucket in self.buckets()? {
            for shard in std::fs::read_dir(&bucket).map_err(io_err)? {
                let shard = shard.map_err(io_err)?;
                if !shard.path().is_dir() {
                    continue;
                }
                for e in std::fs::read_dir(shard.path()).map_err(io_err)? {
                    let e = e.map_err(io_err)?;
                    let path = e.path();
                    if path.extension().is_none_or(|x| x != "entry") {
                        continue;
                    }
                    // An entry removed by a concurrent gc between listing and stat is skipped.
                    if let Ok(m) = e.metadata() {
                        out.push((
                            path,
                            m.len(),
                            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        ));
                    }
                }
            }
        }
        Ok(out)
    }

    fn remove_stale_temporaries(&self, now: SystemTime) {
        let Ok(buckets) = self.buckets() else { return };
        for bucket in buckets {
            let Ok(shards) = std::fs::read_dir(&bucket) else {
                continue;
            };
            for shard in shards.flatten() {
                let Ok(files) = std::fs::read_dir(shard.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let stale = f.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
                        now.duration_since(t).unwrap_or_default() > Duration::from_secs(86_400)
                    });
                    if f.file_name().to_string_lossy().ends_with(".tmp") && stale {
                        let _ = std::fs::remove_file(f.path());
                    }
                }
            }
        }
    }
}

fn ignore_not_found(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)
}

fn touch(path: &Path) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let now = SystemTime::now();
    let fresh = meta
        .modified()
        .is_ok_and(|t| now.duration_since(t).unwrap_or_default() < TOUCH_EVERY);
    if !fresh {
        if let Ok(f) = std::fs::File::options().write(true).open(path) {
            let _ = f.set_modified(now);
        }
    }
}

fn put_field(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

/// Entry file: magic, u32 LE image count, per image `name, path` (u64 LE length + bytes),
/// `has_offset u8, offset u32 LE, secret u8`, `data` (u64 LE length + bytes); then the blake3
/// hash of everything before it.
fn encode(images: &[Image]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + images.iter().map(|i| i.bytes.len() + 64).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(
        &u32::try_from(images.len())
            .expect("few images")
            .to_le_bytes(),
    );
    for i in images {
        put_field(&mut out, i.name.as_bytes());
        put_field(&mut out, i.path.as_bytes());
        out.push(u8::from(i.offset.is_some()));
        out.extend_from_slice(&i.offset.unwrap_or(0).to_le_bytes());
        out.push(u8::from(i.secret));
        put_field(&mut out, &i.bytes);
    }
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated entry");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn field(&mut self) -> Result<&'a [u8], &'static str> {
        let len = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        self.take(usize::try_from(len).map_err(|_| "field too long")?)
    }
    fn text(&mut self) -> Result<String, &'static str> {
        String::from_utf8(self.field()?.to_vec()).map_err(|_| "text field is not UTF-8")
    }
    fn byte(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
}

fn decode(bytes: &[u8]) -> Result<Vec<Image>, &'static str> {
    if bytes.len() < MAGIC.len() + 4 + 32 {
        return Err("truncated entry");
    }
    let (body, hash) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != hash {
        return Err("content hash mismatch");
    }
    let mut r = Reader(body);
    if r.take(MAGIC.len())? != MAGIC {
        return Err("not an espfleet cache entry");
    }
    let count = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
    let mut images = Vec::new();
    for _ in 0..count {
        let name = r.text()?;
        let path = r.text()?;
        let has_offset = r.byte()? != 0;
        let offset = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
        let secret = r.byte()? != 0;
        let data: Arc<[u8]> = r.field()?.into();
        images.push(Image {
            name,
            path,
            offset: has_offset.then_some(offset),
            bytes: data,
            secret,
        });
    }
    if !r.0.is_empty() {
        return Err("trailing bytes in entry");
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(secret: bool) -> Image {
        Image {
            name: "mfg_nvs".into(),
            path: "customized_partitions/mfg_nvs.bin".into(),
            offset: Some(0x21000),
            bytes: vec![1, 2, 3].into(),
            secret,
        }
    }

    #[test]
    fn round_trip_and_corruption_detected() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = CacheKey([7; 32]);
        assert!(matches!(cache.get(&key), Lookup::Miss));
        cache.put(&key, &[image(true)]).unwrap();
        match cache.get(&key) {
            Lookup::Hit(v) => assert_eq!(v, vec![image(true)]),
            other => panic!("{other:?}"),
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(cache.entry_path(&key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Flip one data byte: the stored hash no longer matches.
        let path = cache.entry_path(&key);
        let mut b = std::fs::read(&path).unwrap();
        let at = b.len() - 40;
        b[at] ^= 1;
        std::fs::write(&path, b).unwrap();
        assert!(matches!(cache.get(&key), Lookup::Corrupt(_)));
        assert!(!path.exists(), "a corrupt entry is removed");
        assert!(matches!(cache.get(&key), Lookup::Miss));
        assert!(dir.path().join("CACHEDIR.TAG").exists());
    }

    #[test]
    fn gc_by_size_and_clean() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        for k in 0..3u8 {
            cache.put(&CacheKey([k; 32]), &[image(false)]).unwrap();
        }
        let s = cache.stats().unwrap();
        assert_eq!(s.entries, 3);
        let removed = cache.gc(None, Some(s.bytes / 3)).unwrap();
        assert_eq!(removed.entries, 2);
        assert_eq!(cache.stats().unwrap().entries, 1);
        assert_eq!(cache.clean().unwrap().entries, 1);
        assert_eq!(cache.stats().unwrap(), Stats::default());
    }
}
