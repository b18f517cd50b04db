//! The identity store: which board (MAC) has which serial number and certificate, where it came
//! from, and what was flashed — behind one interface, [`IdentityStore`], so that a
//! server-backed store can take the embedded one's place with the same behaviour (the
//! [`crate::conformance`] suite).
//!
//! Rules every backend keeps (and the suite checks):
//!
//! - **Idempotent by MAC.** Allocating for a MAC that has an identity returns it unchanged —
//!   same serial, certificate and key bytes — whatever its state, except `revoked`, which is
//!   refused.
//! - **Transactional.** An allocation takes the next serial, mints a certificate or takes a pool
//!   entry, and records the identity in one transaction: all of it happens or none (a failed
//!   mint or an empty pool consumes no serial).
//! - **Never twice.** A serial number, a certificate and a pool entry belong to at most one MAC,
//!   enforced by unique constraints, with any number of concurrent allocators in any number of
//!   processes.
//! - **Durable before it leaves.** An allocation is on stable storage when `allocate` returns,
//!   so a board flashed afterwards can never see its identity handed out again after a crash or
//!   a power cut.
//! - A failed flash changes nothing: the identity stays `reserved` for that MAC.

use std::path::{Path, PathBuf};

use espfleet_compiler::identity::{DeviceIdentity, Mac, SerialTemplate};
use espfleet_compiler::secret::Secret;
use serde::Serialize;

use crate::mint::{MintError, Minter};
use crate::time::Timestamp;

pub mod sqlite;

/// Where an identity is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Allocated to the MAC; not (yet) flashed and verified.
    Reserved,
    /// Flashed onto the board and verified.
    Flashed,
    /// Revoked: kept for the audit, never handed out again, refused for its board.
    Revoked,
}

impl State {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Reserved => "reserved",
            State::Flashed => "flashed",
            State::Revoked => "revoked",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reserved" => Some(State::Reserved),
            "flashed" => Some(State::Flashed),
            "revoked" => Some(State::Revoked),
            _ => None,
        }
    }
}

/// Where a certificate came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "pool")]
pub enum Origin {
    /// Minted by the fleet CA.
    Minted,
    /// Taken from the named pool.
    Pool(String),
}

/// One image written to a board, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlashedImage {
    /// Image name (`mfg_nvs`, `app`, ...).
    pub name: String,
    /// Flash offset.
    pub offset: u32,
    /// Size in bytes.
    pub size: u64,
    /// blake3 of its bytes, hex.
    pub blake3: String,
}

/// A flash that was verified, for [`IdentityStore::mark_flashed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashReport {
    /// The station that flashed.
    pub station: String,
    /// Every image written (or verified unchanged).
    pub images: Vec<FlashedImage>,
}

/// An identity as the store records it. It carries no key: read that deliberately with
/// [`IdentityStore::private_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityRecord {
    /// The board.
    pub mac: Mac,
    /// Its serial number.
    pub serial: String,
    /// The manifest it was allocated for.
    pub manifest: String,
    /// The station that allocated it.
    pub station: String,
    /// Its state.
    pub state: State,
    /// Its certificate, PEM.
    pub certificate_pem: String,
    /// SHA-256 of the certificate's DER, lower-case hex (what AWS IoT calls the certificate ID).
    pub fingerprint: String,
    /// Minted, or from which pool.
    pub origin: Origin,
    /// When it was allocated.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it was last flashed and verified.
    pub flashed_at: Option<Timestamp>,
    /// The station that last flashed it.
    pub flashed_by: Option<String>,
    /// The images of the last flash.
    pub images: Vec<FlashedImage>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// Why.
    pub revoke_reason: Option<String>,
}

/// Where certificates come from for an allocation.
#[derive(Clone, Copy)]
pub enum Credentials<'a> {
    /// Minted by this minter.
    Mint(&'a dyn Minter),
    /// Taken from the pool of this name (imported with [`IdentityStore::import_pool`]).
    Pool(&'a str),
}

/// What to allocate.
#[derive(Clone, Copy)]
pub struct AllocationRequest<'a> {
    /// The board.
    pub mac: Mac,
    /// The manifest (name) it is allocated for.
    pub manifest: &'a str,
    /// The station allocating.
    pub station: &'a str,
    /// Serial numbers (the counter is kept per template text).
    pub serial: &'a SerialTemplate,
    /// Certificates.
    pub credentials: Credentials<'a>,
}

/// An allocated identity with its key.
#[derive(Debug, Clone)]
pub struct Allocation {
    /// The record.
    pub record: IdentityRecord,
    /// The private key, PEM.
    pub key_pem: Secret<String>,
    /// True when this call created it, false when the MAC already had it.
    pub created: bool,
}

impl Allocation {
    /// What the compiler bakes into the board's images.
    pub fn device(&self) -> DeviceIdentity {
        DeviceIdentity {
            mac: self.record.mac,
            serial: self.record.serial.clone(),
            certificate_pem: self.record.certificate_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

/// A certificate/key pair to import into a pool.
#[derive(Debug, Clone)]
pub struct PoolEntry {
    /// Certificate, PEM.
    pub certificate_pem: String,
    /// Its key, PEM.
    pub key_pem: Secret<String>,
    /// SHA-256 of the certificate DER, hex.
    pub fingerprint: String,
    /// Where it came from (file name), for the audit.
    pub source: String,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PoolImport {
    /// New entries.
    pub added: u64,
    /// Entries the store already had.
    pub known: u64,
}

/// A pool's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PoolStatus {
    /// Entries imported.
    pub total: u64,
    /// Entries given to a board.
    pub assigned: u64,
    /// Entries left.
    pub remaining: u64,
}

/// Store errors. Messages name MACs, serials, pools and files, never key material.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StoreError {
    /// The store cannot be opened or created.
    #[error("cannot open the identity store {location}: {reason}")]
    #[diagnostic(
        code(espfleet::identity::store_unavailable),
        help("check the path (--store) and that this user may read and write it and its folder")
    )]
    Unavailable {
        /// Path or URL.
        location: String,
        /// Why.
        reason: String,
    },
    /// The store file can be read by other users.
    #[error(
        "the identity store {path} is readable by other users (mode {mode:o}); it holds private keys"
    )]
    #[diagnostic(
        code(espfleet::identity::store_permissions),
        help("chmod 600 the store (and any -wal/-shm file beside it), owned by the service user")
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The store belongs to another user.
    #[error("the identity store {path} belongs to user {owner}, not to this user ({uid})")]
    #[diagnostic(
        code(espfleet::identity::store_owner),
        help(
            "run as the store's owner (`sudo -u espfleet espfleet identity ...`): files SQLite creates beside the store would otherwise lock its owner out"
        )
    )]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// This process's effective uid.
        uid: u32,
    },
    /// The store was written by a newer espfleet.
    #[error("the identity store has schema version {found}; this espfleet knows up to {supported}")]
    #[diagnostic(
        code(espfleet::identity::schema_too_new),
        help("upgrade espfleet on this station; an older espfleet never writes a newer store")
    )]
    SchemaTooNew {
        /// Version in the store.
        found: i64,
        /// Newest this build knows.
        supported: i64,
    },
    /// No pool entry left.
    #[error("pool `{pool}` is exhausted: no certificate left for {mac}")]
    #[diagnostic(
        code(espfleet::identity::pool_exhausted),
        help("add certificate/key pairs to the pool folder; the board was left untouched")
    )]
    PoolExhausted {
        /// The pool.
        pool: String,
        /// The board that got none.
        mac: Mac,
    },
    /// The MAC's identity was revoked.
    #[error("the identity of {mac} (serial {serial}) was revoked")]
    #[diagnostic(
        code(espfleet::identity::revoked),
        help("a revoked identity is never handed out again; the board was left untouched")
    )]
    Revoked {
        /// The board.
        mac: Mac,
        /// Its (revoked) serial.
        serial: String,
    },
    /// No identity for the MAC.
    #[error("no identity for {mac}")]
    #[diagnostic(
        code(espfleet::identity::not_found),
        help("`espfleet identity list` shows every board the store knows")
    )]
    NotFound {
        /// The board.
        mac: Mac,
    },
    /// Minting failed; the allocation did not happen.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Mint(#[from] MintError),
    /// The backend failed.
    #[error("identity store: {0}")]
    #[diagnostic(
        code(espfleet::identity::store_failed),
        help("the allocation did not happen; retry, and check the disk and the store file")
    )]
    Backend(String),
    /// A stored value does not parse.
    #[error("identity store: corrupt value: {0}")]
    #[diagnostic(
        code(espfleet::identity::store_corrupt),
        help("restore the store from a backup")
    )]
    Corrupt(String),
}

/// The identity store interface. Every method is one transaction; implementations are
/// shareable between threads (`&self`), and several instances (threads, processes, stations)
/// may work on one store at once.
pub trait IdentityStore: Send + Sync {
    /// `sqlite`, `postgres`, ...
    fn backend(&self) -> &'static str;

    /// Schema version of the store.
    fn schema_version(&self) -> Result<i64, StoreError>;

    /// Allocates (or returns) the identity of `req.mac`.
    fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, StoreError>;

    /// Allocates for several boards in one transaction: all or none. For pre-provisioning
    /// many MACs at once (one durable commit instead of one per board).
    fn allocate_batch(
        &self,
        reqs: &[AllocationRequest<'_>],
    ) -> Result<Vec<Allocation>, StoreError> {
        reqs.iter().map(|r| self.allocate(r)).collect()
    }

    /// The identity of `mac`.
    fn identity(&self, mac: Mac) -> Result<Option<IdentityRecord>, StoreError>;

    /// Every identity, in allocation order.
    fn identities(&self) -> Result<Vec<IdentityRecord>, StoreError>;

    /// The private key of `mac`'s identity: a deliberate key export.
    fn private_key(&self, mac: Mac) -> Result<Option<Secret<String>>, StoreError>;

    /// Records a verified flash: state `flashed`, the images' hashes, the station and time.
    fn mark_flashed(&self, mac: Mac, report: &FlashReport) -> Result<IdentityRecord, StoreError>;

    /// Revokes `mac`'s identity (idempotent).
    fn revoke(&self, mac: Mac, reason: &str) -> Result<IdentityRecord, StoreError>;

    /// Adds certificate/key pairs to pool `pool` (pairs already in the store are skipped).
    fn import_pool(&self, pool: &str, entries: &[PoolEntry]) -> Result<PoolImport, StoreError>;

    /// Pool `pool`'s counts.
    fn pool_status(&self, pool: &str) -> Result<PoolStatus, StoreError>;
}

/// Where a store is: a SQLite file (the default), or later a server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
}

impl StoreLocation {
    /// Parses `--store`: a path, or a `postgres://` URL (not built in yet).
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Err(StoreError::Unavailable {
                location: "a postgres:// URL".to_owned(),
                reason: "this espfleet has no PostgreSQL backend; use a SQLite file path"
                    .to_owned(),
            });
        }
        Ok(StoreLocation::Sqlite(PathBuf::from(s)))
    }

    /// The default store: `identity.sqlite` in the daemon's state directory
    /// (`$ESPFLEET_STATE_DIR`, else `/var/lib/espfleet`).
    pub fn default_location() -> Self {
        let dir = std::env::var_os("ESPFLEET_STATE_DIR")
            .map_or_else(|| PathBuf::from("/var/lib/espfleet"), PathBuf::from);
        StoreLocation::Sqlite(dir.join("identity.sqlite"))
    }

    /// Opens (creating and migrating if needed) the store.
    pub fn open(&self) -> Result<Box<dyn IdentityStore>, StoreError> {
        match self {
            StoreLocation::Sqlite(p) => Ok(Box::new(sqlite::SqliteStore::open(p)?)),
        }
    }

    /// The path, for messages.
    pub fn display(&self) -> String {
        match self {
            StoreLocation::Sqlite(p) => p.display().to_string(),
        }
    }
}

/// SHA-256 of the DER of the first certificate in `pem`, lower-case hex.
pub fn fingerprint(certificate_pem: &str) -> Result<String, StoreError> {
    use sha2::Digest as _;
    let block = pem::parse_many(certificate_pem.as_bytes())
        .ok()
        .and_then(|blocks| blocks.into_iter().find(|b| b.tag() == "CERTIFICATE"))
        .ok_or_else(|| StoreError::Corrupt("a certificate is not PEM".to_owned()))?;
    Ok(hex::encode(sha2::Sha256::digest(block.contents())))
}

/// The station name: `$ESPFLEET_STATION`, else the host name.
pub fn default_station() -> String {
    if let Ok(s) = std::env::var("ESPFLEET_STATION") {
        if !s.trim().is_empty() {
            return s.trim().to_owned();
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "station".to_owned())
}

/// Checks that this process runs as the owner of the store file `path`: SQLite creates its
/// `-wal` and `-shm` files as the user who opens the store, and a store opened once by root
/// would lock the service user out of its own store.
#[cfg(unix)]
pub(crate) fn check_owner(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    owner_matches(path, meta.uid(), rustix::process::geteuid().as_raw())
}

#[cfg(not(unix))]
pub(crate) fn check_owner(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// [`check_owner`]'s rule: the file's owner is the effective user.
pub(crate) fn owner_matches(path: &Path, owner: u32, uid: u32) -> Result<(), StoreError> {
    if owner == uid {
        Ok(())
    } else {
        Err(StoreError::Owner {
            path: path.to_path_buf(),
            owner,
            uid,
        })
    }
}

/// Checks that `path` (if it exists) is not readable or writable by group or others.
#[cfg(unix)]
pub(crate) fn check_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Err(StoreError::Permissions {
            path: path.to_path_buf(),
            mode: m.permissions().mode() & 0o7777,
        }),
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
pub(crate) fn check_private(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{StoreError, owner_matches};

    #[test]
    fn only_the_owner_opens_the_store() {
        assert!(owner_matches(Path::new("s"), 998, 998).is_ok());
        assert!(matches!(
            owner_matches(Path::new("s"), 998, 0),
            Err(StoreError::Owner {
                owner: 998,
                uid: 0,
                ..
            })
        ));
    }
}
