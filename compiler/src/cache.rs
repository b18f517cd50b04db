//! Content-addressed image cache: a build is instant when nothing changed, and changing one
//! input rebuilds only the images that read it.
//!
//! Every emit job of [`crate::build`] describes its inputs to a [`KeyBuilder`]; the blake3 hash
//! of that description is the job's [`CacheKey`]. Keys never contain paths, modification times,
//! user names or the clock — only the resolved values the job reads and the **bytes** of the
//! files it reads — so the same fleet gets the same keys from any checkout on any machine.
//!
//! # Key format (version [`KEY_FORMAT`] = 1)
//!
//! Byte stream fed to blake3: `"espfleet-cache-key\0"`, `KEY_FORMAT` as u32 LE, then fields,
//! each `u64 LE name length, name, u64 LE value length, value`. Integers are i64 LE, flags one
//! byte, "JSON" is the compact serde_json text of a small fixed-shape value, "bytes" are file
//! contents. Every key starts with `compiler` (the crate version) and `kind`.
//!
//! | job (`kind`) | images | fields after `compiler`, `kind` |
//! |---|---|---|
//! | `partition-table`, `at_customize` | the table binary | `offset` (table flash offset), `md5` flag, then per laid-out partition: `name`, `type`, `subtype`, `offset`, `size`, `flags` |
//! | `mfg_nvs` | `customized_partitions/mfg_nvs.bin` | `offset`, `size` (partition), `nvs_pages` (JSON), per PKI item `pki.name`, `pki.kind` (JSON), `pki.count`, per file `pki.file` (bytes); `factory` (JSON of the factory parameters); `ble` (JSON rows, or empty) |
//! | `factory_param` (era A) | `factory_param.bin` | `offset`, `factory` (JSON) |
//! | `pki` (era A) | `customized_partitions/<name>.bin` | `name`, `release` (JSON), `kind` of role (JSON), `offset`, per file `file` (bytes) |
//! | `ble_data` (era A) | `ble_data.bin` | `offset`, `columns`, `rows` (JSON) |
//! | `user-partition` | `<name>.bin` | `primary` flag, `name`, `offset`, `file` (bytes) |
//! | `firmware` | `bootloader/bootloader.bin`, `esp-at.bin`, ... | `name`, `offset`, `file` (bytes) |
//! | `flash-args` | `flasher_args.json`, `flash_project_args`, `download.config` | `chip`, `flash` (JSON), per flashed image `image.name`, `image.path`, `image.offset` |
//! | `factory` | `factory/factory_<MODULE>[_unfilled].bin` | `chip`, `flash` (JSON), `merge` (tool), `module`, per flashed image `image.name`, `image.offset`, `image.secret`, `image.blake3` (hash of its bytes) |
//!
//! So a new client certificate changes the `mfg_nvs` key (era B) or one `pki` key (era A) and,
//! through the image hash, the `factory` key; tables, firmware and flash arguments stay cached.
//! A manifest comment or a renamed certificate file with the same bytes changes nothing.
//!
//! Bump [`KEY_FORMAT`] whenever a description changes or emission produces different bytes
//! for the same inputs; a new entry layout bumps [`store::ENTRY_FORMAT`] (the bucket name).
//!
//! # On disk
//!
//! `DIR/CACHEDIR.TAG`, `DIR/images-v1/<first 2 hex>/<key hex>.entry`. `DIR` is `--cache-dir`,
//! else `$ESPFLEET_CACHE_DIR`, else `$XDG_CACHE_HOME/espfleet`, else `~/.cache/espfleet`.
//! An entry is one file holding the job's images and, last, the blake3 hash of all bytes before
//! it; it is written to a temporary file in the shard directory and renamed into place, so
//! processes building at once only ever see whole entries (two writers of one key write the
//! same bytes). A read that fails verification removes the entry and reports
//! [`Lookup::Corrupt`]; the caller rebuilds. Entries holding private keys are mode 0600 and
//! directories 0700. An entry's modification time is its last use, for [`Cache::gc`].
//!
//! `DIR/records-v1/` holds one [`Record`] per built manifest: the fast path of a warm build
//! (see [`record`]).

pub mod key;
pub mod record;
pub mod store;

pub use key::{CacheKey, KEY_FORMAT, KeyBuilder};
pub use record::{FileMeta, FileStamp, ImageMeta, OutputStamp, Record};
pub use store::{Cache, CacheError, Lookup, Stats};

/// What happened to one emit job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Taken from the cache.
    Hit,
    /// Not in the cache: emitted (and stored).
    Miss,
    /// In the cache but failed verification: discarded, emitted again and stored.
    Corrupt,
    /// Emitted without a cache.
    Uncached,
}

/// One progress event of a build: a job finished.
#[derive(Debug, Clone)]
pub struct JobEvent {
    /// The manifest's name.
    pub manifest: String,
    /// The job's kind and subject (`mfg_nvs`, `pki server_cert`, `firmware app`, ...).
    pub job: String,
    /// The job's cache key.
    pub key: CacheKey,
    /// Where its images came from.
    pub outcome: Outcome,
}
