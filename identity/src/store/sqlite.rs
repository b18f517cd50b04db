//! The embedded identity store: one SQLite file (rusqlite with SQLite compiled in, so stations
//! need no system library and all run the same SQLite).
//!
//! - **Durability:** WAL journal with `synchronous=FULL`: every commit is fsynced before
//!   `allocate` returns. With `NORMAL` a power cut could roll back the last allocations after
//!   their boards were flashed and hand those serials and certificates out again; FULL costs one
//!   fsync per allocation (a few milliseconds on slow disks, nothing next to a flash), and
//!   [`IdentityStore::allocate_batch`] commits many MACs with one. See `docs/identity.md`.
//! - **Concurrency:** every write runs inside a `BEGIN IMMEDIATE` transaction (the write lock is
//!   taken before anything is read, so two allocators never decide on the same snapshot) with a
//!   60-second busy timeout; other connections' readers never block (WAL). Unique constraints on
//!   MAC, serial, certificate fingerprint and pool entry back the rules up in the schema itself.
//! - **Group commit:** threads sharing one [`SqliteStore`] (the daemon's workers) join one open
//!   transaction, each in its own savepoint (a failing request rolls back only its own work),
//!   and the last one in commits for all: one fsync for a burst of boards instead of one each.
//!   No call returns before the commit that holds its work succeeded.
//! - **Schema:** versioned with `PRAGMA user_version`; [`MIGRATIONS`] are embedded and applied
//!   in order when the store is opened. A store with a newer version is refused.
//! - **Permissions:** the file is created mode 0600 in a 0700 folder (when espfleet creates the
//!   folder); SQLite gives its `-wal` and `-shm` files the same mode. A store readable by others
//!   is refused.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use espfleet_compiler::identity::Mac;
use espfleet_compiler::secret::Secret;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use super::{
    Allocation, AllocationRequest, Credentials, FlashReport, FlashedImage, IdentityRecord,
    IdentityStore, Origin, PoolEntry, PoolImport, PoolStatus, State, StoreError, check_owner,
    check_private, fingerprint,
};
use crate::mint::NewKey;
use crate::time::Timestamp;

/// Schema migrations, in order: `MIGRATIONS[i]` takes the store from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: identities, serial counters, pools, flashes.
    "
    CREATE TABLE serial_counters (
        template TEXT PRIMARY KEY,
        next INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE pool_entries (
        id INTEGER PRIMARY KEY,
        pool TEXT NOT NULL,
        fingerprint TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        certificate_pem TEXT NOT NULL,
        key_pem TEXT NOT NULL,
        imported_at INTEGER NOT NULL,
        assigned_mac TEXT UNIQUE
    ) STRICT;
    CREATE INDEX pool_entries_free ON pool_entries(pool, id) WHERE assigned_mac IS NULL;
    CREATE TABLE identities (
        id INTEGER PRIMARY KEY,
        mac TEXT NOT NULL UNIQUE,
        serial TEXT NOT NULL UNIQUE,
        serial_template TEXT NOT NULL,
        serial_counter INTEGER NOT NULL,
        manifest TEXT NOT NULL,
        station TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('reserved', 'flashed', 'revoked')),
        certificate_pem TEXT NOT NULL,
        fingerprint TEXT NOT NULL UNIQUE,
        key_pem TEXT NOT NULL,
        pool TEXT,
        pool_entry INTEGER UNIQUE REFERENCES pool_entries(id),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        revoked_at INTEGER,
        revoke_reason TEXT
    ) STRICT;
    CREATE TABLE flashes (
        id INTEGER PRIMARY KEY,
        identity INTEGER NOT NULL REFERENCES identities(id),
        station TEXT NOT NULL,
        at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX flashes_identity ON flashes(identity, id);
    CREATE TABLE flash_images (
        flash INTEGER NOT NULL REFERENCES flashes(id),
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        offset INTEGER NOT NULL,
        size INTEGER NOT NULL,
        blake3 TEXT NOT NULL,
        PRIMARY KEY (flash, position)
    ) STRICT;
    ",
];

/// The schema version this build writes.
pub fn schema_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// The embedded identity store.
pub struct SqliteStore {
    path: PathBuf,
    /// The connection for reads.
    reader: Mutex<Connection>,
    /// The connection for writes, and the transaction its writers share.
    inner: Mutex<Inner>,
    /// Signalled whenever a transaction ends.
    ended: Condvar,
    /// Writers waiting for the connection: while there are any, a finished writer leaves the
    /// commit to them (group commit).
    queued: AtomicUsize,
}

/// The connection and the transaction the writers of this store share.
struct Inner {
    conn: Connection,
    /// A write transaction is open.
    open: bool,
    /// Number of the open (or last) transaction.
    generation: u64,
    /// Last transaction that ended, and its commit error if it failed.
    ended: (u64, Option<String>),
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[allow(clippy::needless_pass_by_value)] // used as `.map_err(backend)`
fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn unavailable(path: &Path, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        location: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Creates `path` (mode 0600, its folder 0700) unless it exists.
fn create_private(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(dir).map_err(|e| unavailable(dir, e))?;
        }
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(unavailable(path, e)),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

impl SqliteStore {
    /// Opens the store at `path`, creating it (mode 0600) and applying migrations as needed.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_private(path)?;
        check_owner(path)?;
        for p in [
            path.to_path_buf(),
            with_suffix(path, "-wal"),
            with_suffix(path, "-shm"),
        ] {
            check_private(&p)?;
        }
        let mut conn = Connection::open(path).map_err(|e| unavailable(path, e))?;
        conn.busy_timeout(Duration::from_secs(60))
            .map_err(backend)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| unavailable(path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(unavailable(
                path,
                format!("SQLite refused WAL mode (journal_mode={mode})"),
            ));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(backend)?;
        migrate(&mut conn)?;
        // Reads go through a second connection: in WAL mode it sees committed data only and
        // never waits for the writers (or their fsync).
        let reader = Connection::open(path).map_err(|e| unavailable(path, e))?;
        reader
            .busy_timeout(Duration::from_secs(60))
            .map_err(backend)?;
        reader
            .execute_batch("PRAGMA query_only=1;")
            .map_err(backend)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            reader: Mutex::new(reader),
            inner: Mutex::new(Inner {
                conn,
                open: false,
                generation: 0,
                ended: (0, None),
            }),
            ended: Condvar::new(),
            queued: AtomicUsize::new(0),
        })
    }

    /// `PRAGMA journal_mode` and `PRAGMA synchronous` of this connection (`wal`, 2 = FULL).
    pub fn durability(&self) -> Result<(String, i64), StoreError> {
        let inner = self.lock();
        let conn = &inner.conn;
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(backend)?;
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(backend)?;
        Ok((journal, sync))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every write is wrapped in a savepoint that is released or rolled back before the lock
        // is let go, so a panic while holding it leaves at most committed-or-not work of the
        // open transaction; the lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The connection for reading (committed data only).
    fn read(&self) -> MutexGuard<'_, Connection> {
        self.reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `work` in the shared write transaction, in its own savepoint, and returns once the
    /// transaction holding it is committed (group commit; see the module documentation).
    fn write<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut g = self.lock();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if g.open && g.conn.is_autocommit() {
            // SQLite ended the open transaction itself (it rolls back on I/O errors and a full
            // disk): its generation failed; start a new one.
            let dead = g.generation;
            g.open = false;
            g.ended = (dead, Some("SQLite rolled the transaction back".to_owned()));
            self.ended.notify_all();
        }
        if !g.open {
            g.conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
            g.open = true;
            g.generation += 1;
        }
        let mine = g.generation;
        let result = match g.conn.execute_batch("SAVEPOINT write") {
            Ok(()) => {
                let r = work(&g.conn);
                let end = if r.is_ok() {
                    "RELEASE write"
                } else {
                    "ROLLBACK TO write; RELEASE write"
                };
                match (g.conn.execute_batch(end), r) {
                    (Ok(()), r) => r,
                    // The work's own error says more than the failed rollback after it.
                    (Err(_), Err(e)) => Err(e),
                    (Err(e), Ok(_)) => Err(backend(e)),
                }
            }
            Err(e) => Err(backend(e)),
        };
        if g.conn.is_autocommit() {
            // The transaction is gone (see above): nothing of this generation will commit.
            g.open = false;
            let why = result.as_ref().err().map_or_else(
                || "SQLite rolled the transaction back".to_owned(),
                ToString::to_string,
            );
            g.ended = (mine, Some(why));
            self.ended.notify_all();
        }
        loop {
            if g.ended.0 >= mine {
                break;
            }
            if self.queued.load(Ordering::SeqCst) == 0 {
                // Nobody else is about to add to this transaction: commit it for everyone in it.
                let commit = g.conn.execute_batch("COMMIT");
                let error = commit.err().map(|e| {
                    let _ = g.conn.execute_batch("ROLLBACK");
                    e.to_string()
                });
                g.open = false;
                g.ended = (mine, error);
                self.ended.notify_all();
                break;
            }
            g = self
                .ended
                .wait(g)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        match (&g.ended, result) {
            // This request failed on its own: its error (its work was rolled back either way).
            (_, Err(e)) => Err(e),
            (&(generation, Some(ref e)), Ok(_)) if generation == mine => Err(StoreError::Backend(
                format!("the transaction did not commit: {e}"),
            )),
            (_, ok) => ok,
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    let latest = schema_version();
    if found > latest {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: latest,
        });
    }
    if found == latest {
        return Ok(());
    }
    for m in &MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
        tx.execute_batch(m).map_err(backend)?;
    }
    tx.pragma_update(None, "user_version", latest)
        .map_err(backend)?;
    tx.commit().map_err(backend)
}

const RECORD_COLUMNS: &str = "id, mac, serial, manifest, station, state, certificate_pem, \
     fingerprint, pool, created_at, updated_at, revoked_at, revoke_reason";

fn mac_text(mac: Mac) -> String {
    mac.to_string()
}

/// Reads one `identities` row (in [`RECORD_COLUMNS`] order) and its last flash.
fn record_from_row(
    conn: &Connection,
    row: &rusqlite::Row<'_>,
) -> Result<IdentityRecord, StoreError> {
    let get = |e: rusqlite::Error| StoreError::Corrupt(e.to_string());
    let id: i64 = row.get(0).map_err(get)?;
    let mac: String = row.get(1).map_err(get)?;
    let state: String = row.get(5).map_err(get)?;
    let pool: Option<String> = row.get(8).map_err(get)?;
    let mut record = IdentityRecord {
        mac: mac
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("MAC `{mac}`")))?,
        serial: row.get(2).map_err(get)?,
        manifest: row.get(3).map_err(get)?,
        station: row.get(4).map_err(get)?,
        state: State::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("state `{state}`")))?,
        certificate_pem: row.get(6).map_err(get)?,
        fingerprint: row.get(7).map_err(get)?,
        origin: pool.map_or(Origin::Minted, Origin::Pool),
        created_at: Timestamp(row.get(9).map_err(get)?),
        updated_at: Timestamp(row.get(10).map_err(get)?),
        flashed_at: None,
        flashed_by: None,
        images: Vec::new(),
        revoked_at: row.get::<_, Option<i64>>(11).map_err(get)?.map(Timestamp),
        revoke_reason: row.get(12).map_err(get)?,
    };
    let flash: Option<(i64, String, i64)> = conn
        .prepare_cached(
            "SELECT id, station, at FROM flashes WHERE identity = ?1 ORDER BY id DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(backend)?;
    if let Some((flash, station, at)) = flash {
        record.flashed_at = Some(Timestamp(at));
        record.flashed_by = Some(station);
        let mut s = conn
            .prepare_cached("SELECT name, offset, size, blake3 FROM flash_images WHERE flash = ?1 ORDER BY position")
            .map_err(backend)?;
        let rows = s
            .query_map([flash], |r| {
                Ok(FlashedImage {
                    name: r.get(0)?,
                    offset: r.get(1)?,
                    size: r.get::<_, i64>(2)?.unsigned_abs(),
                    blake3: r.get(3)?,
                })
            })
            .map_err(backend)?;
        for img in rows {
            record.images.push(img.map_err(get)?);
        }
    }
    Ok(record)
}

fn find(
    conn: &Connection,
    mac: Mac,
) -> Result<Option<(IdentityRecord, Secret<String>)>, StoreError> {
    let mut s = conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS}, key_pem FROM identities WHERE mac = ?1"
        ))
        .map_err(backend)?;
    let mut rows = s.query([mac_text(mac)]).map_err(backend)?;
    let Some(row) = rows.next().map_err(backend)? else {
        return Ok(None);
    };
    let record = record_from_row(conn, row)?;
    let key: String = row
        .get(13)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Some((record, Secret::new(key))))
}

fn exists(conn: &Connection, mac: Mac) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM identities WHERE mac = ?1")
        .and_then(|mut s| s.exists([mac_text(mac)]))
        .map_err(backend)
}

/// The certificate and key of a new identity, with the pool and pool entry they came from.
type NewCredentials = (String, Secret<String>, Option<String>, Option<i64>);

/// Mints, or takes the first free entry of the pool (marking it assigned), inside `tx`.
fn credentials_in(
    tx: &Connection,
    req: &AllocationRequest<'_>,
    key: Option<NewKey>,
    serial: &str,
) -> Result<NewCredentials, StoreError> {
    Ok(match req.credentials {
        Credentials::Mint(minter) => {
            let key = match key {
                Some(k) => k,
                None => minter.new_key()?,
            };
            let cert = minter.issue(&key, req.mac, serial)?;
            (cert, key.pem, None, None)
        }
        Credentials::Pool(pool) => {
            let entry: Option<(i64, String, String)> = tx
                .prepare_cached(
                    "SELECT id, certificate_pem, key_pem FROM pool_entries \
                     WHERE pool = ?1 AND assigned_mac IS NULL ORDER BY id LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row([pool], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                })
                .map_err(backend)?;
            let Some((id, cert, key)) = entry else {
                return Err(StoreError::PoolExhausted {
                    pool: pool.to_owned(),
                    mac: req.mac,
                });
            };
            tx.prepare_cached("UPDATE pool_entries SET assigned_mac = ?1 WHERE id = ?2")
                .and_then(|mut s| s.execute(params![mac_text(req.mac), id]))
                .map_err(backend)?;
            (cert, Secret::new(key), Some(pool.to_owned()), Some(id))
        }
    })
}

/// One allocation inside an open transaction. `key` is the pre-generated key for minting.
fn allocate_in(
    tx: &Connection,
    req: &AllocationRequest<'_>,
    key: Option<NewKey>,
) -> Result<Allocation, StoreError> {
    if let Some((record, key_pem)) = find(tx, req.mac)? {
        if record.state == State::Revoked {
            return Err(StoreError::Revoked {
                mac: req.mac,
                serial: record.serial,
            });
        }
        return Ok(Allocation {
            record,
            key_pem,
            created: false,
        });
    }
    // The next serial: the counter of this template, never below `start`, skipping serials
    // another template already produced.
    let template = req.serial;
    let next: Option<i64> = tx
        .prepare_cached("SELECT next FROM serial_counters WHERE template = ?1")
        .and_then(|mut s| s.query_row([&template.text], |r| r.get(0)).optional())
        .map_err(backend)?;
    let mut n = next
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(0)
        .max(template.start);
    let serial = loop {
        let s = template.format(n);
        let taken = tx
            .prepare_cached("SELECT 1 FROM identities WHERE serial = ?1")
            .and_then(|mut st| st.exists([&s]))
            .map_err(backend)?;
        if !taken {
            break s;
        }
        n = n
            .checked_add(1)
            .ok_or_else(|| StoreError::Backend("serial counter overflow".to_owned()))?;
    };
    let counter = i64::try_from(n)
        .map_err(|_| StoreError::Backend("serial counter beyond 2^63".to_owned()))?;
    let (certificate_pem, key_pem, pool, pool_entry) = credentials_in(tx, req, key, &serial)?;
    let fp = fingerprint(&certificate_pem)?;
    let now = Timestamp::now().0;
    tx.prepare_cached(
        "INSERT INTO identities (mac, serial, serial_template, serial_counter, manifest, station, \
         state, certificate_pem, fingerprint, key_pem, pool, pool_entry, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'reserved', ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
    )
    .and_then(|mut s| {
        s.execute(params![
            mac_text(req.mac),
            serial,
            template.text,
            counter,
            req.manifest,
            req.station,
            certificate_pem,
            fp,
            key_pem.expose(),
            pool,
            pool_entry,
            now
        ])
    })
    .map_err(backend)?;
    tx.prepare_cached(
        "INSERT INTO serial_counters (template, next) VALUES (?1, ?2) \
         ON CONFLICT (template) DO UPDATE SET next = excluded.next",
    )
    .and_then(|mut s| s.execute(params![template.text, counter.saturating_add(1)]))
    .map_err(backend)?;
    let (record, key_pem) = find(tx, req.mac)?
        .ok_or_else(|| StoreError::Backend("the new identity was not found".to_owned()))?;
    Ok(Allocation {
        record,
        key_pem,
        created: true,
    })
}

impl SqliteStore {
    /// Keys for the requests that will mint (MACs without an identity), made before the write
    /// transaction so that slow (RSA) key generation never holds the store's lock.
    fn keys_for(&self, reqs: &[AllocationRequest<'_>]) -> Result<Vec<Option<NewKey>>, StoreError> {
        let need: Vec<bool> = {
            let reader = self.read();
            reqs.iter()
                .map(|r| match r.credentials {
                    Credentials::Mint(_) => exists(&reader, r.mac).map(|e| !e),
                    Credentials::Pool(_) => Ok(false),
                })
                .collect::<Result<_, _>>()?
        };
        reqs.iter()
            .zip(need)
            .map(|(r, need)| match (r.credentials, need) {
                (Credentials::Mint(m), true) => m.new_key().map(Some).map_err(StoreError::from),
                _ => Ok(None),
            })
            .collect()
    }
}

impl IdentityStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        self.read()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend)
    }

    fn allocate(&self, req: &AllocationRequest<'_>) -> Result<Allocation, StoreError> {
        let mut r = self.allocate_batch(std::slice::from_ref(req))?;
        r.pop()
            .ok_or_else(|| StoreError::Backend("empty allocation".to_owned()))
    }

    fn allocate_batch(
        &self,
        reqs: &[AllocationRequest<'_>],
    ) -> Result<Vec<Allocation>, StoreError> {
        let mut keys = self.keys_for(reqs)?;
        self.write(|conn| {
            let mut out = Vec::with_capacity(reqs.len());
            for (req, key) in reqs.iter().zip(keys.iter_mut()) {
                out.push(allocate_in(conn, req, key.take())?);
            }
            Ok(out)
        })
    }

    fn identity(&self, mac: Mac) -> Result<Option<IdentityRecord>, StoreError> {
        Ok(find(&self.read(), mac)?.map(|(r, _)| r))
    }

    fn identities(&self) -> Result<Vec<IdentityRecord>, StoreError> {
        let reader = self.read();
        let conn = &*reader;
        let mut s = conn
            .prepare(&format!(
                "SELECT {RECORD_COLUMNS} FROM identities ORDER BY id"
            ))
            .map_err(backend)?;
        let mut rows = s.query([]).map_err(backend)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(backend)? {
            out.push(record_from_row(conn, row)?);
        }
        Ok(out)
    }

    fn private_key(&self, mac: Mac) -> Result<Option<Secret<String>>, StoreError> {
        Ok(find(&self.read(), mac)?.map(|(_, k)| k))
    }

    fn mark_flashed(&self, mac: Mac, report: &FlashReport) -> Result<IdentityRecord, StoreError> {
        self.write(|tx| {
            let row: Option<(i64, String, String)> = tx
                .query_row(
                    "SELECT id, state, serial FROM identities WHERE mac = ?1",
                    [mac_text(mac)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(backend)?;
            let Some((id, state, serial)) = row else {
                return Err(StoreError::NotFound { mac });
            };
            if state == State::Revoked.as_str() {
                return Err(StoreError::Revoked { mac, serial });
            }
            let now = Timestamp::now().0;
            tx.execute(
                "INSERT INTO flashes (identity, station, at) VALUES (?1, ?2, ?3)",
                params![id, report.station, now],
            )
            .map_err(backend)?;
            let flash = tx.last_insert_rowid();
            for (i, img) in report.images.iter().enumerate() {
                tx.execute(
                    "INSERT INTO flash_images (flash, position, name, offset, size, blake3) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        flash,
                        i64::try_from(i).unwrap_or(i64::MAX),
                        img.name,
                        img.offset,
                        i64::try_from(img.size).unwrap_or(i64::MAX),
                        img.blake3
                    ],
                )
                .map_err(backend)?;
            }
            tx.execute(
                "UPDATE identities SET state = 'flashed', updated_at = ?2 WHERE id = ?1",
                params![id, now],
            )
            .map_err(backend)?;
            let record = find(tx, mac)?.map(|(r, _)| r);
            record.ok_or(StoreError::NotFound { mac })
        })
    }

    fn revoke(&self, mac: Mac, reason: &str) -> Result<IdentityRecord, StoreError> {
        self.write(|tx| {
            let now = Timestamp::now().0;
            tx.execute(
                "UPDATE identities SET state = 'revoked', revoked_at = ?2, revoke_reason = ?3, \
             updated_at = ?2 WHERE mac = ?1 AND state != 'revoked'",
                params![mac_text(mac), now, reason],
            )
            .map_err(backend)?;
            let record = find(tx, mac)?.map(|(r, _)| r);
            record.ok_or(StoreError::NotFound { mac })
        })
    }

    fn import_pool(&self, pool: &str, entries: &[PoolEntry]) -> Result<PoolImport, StoreError> {
        self.write(|tx| {
        let now = Timestamp::now().0;
        let mut out = PoolImport::default();
        {
            let mut s = tx
                .prepare_cached(
                    "INSERT INTO pool_entries (pool, fingerprint, source, certificate_pem, key_pem, imported_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (fingerprint) DO NOTHING",
                )
                .map_err(backend)?;
            for e in entries {
                let n = s
                    .execute(params![
                        pool,
                        e.fingerprint,
                        e.source,
                        e.certificate_pem,
                        e.key_pem.expose(),
                        now
                    ])
                    .map_err(backend)?;
                if n == 1 {
                    out.added += 1;
                } else {
                    out.known += 1;
                }
            }
        }
        Ok(out)
        })
    }

    fn pool_status(&self, pool: &str) -> Result<PoolStatus, StoreError> {
        let (total, assigned): (i64, i64) = self
            .read()
            .query_row(
                "SELECT count(*), count(assigned_mac) FROM pool_entries WHERE pool = ?1",
                [pool],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(backend)?;
        let (total, assigned) = (total.unsigned_abs(), assigned.unsigned_abs());
        Ok(PoolStatus {
            total,
            assigned,
            remaining: total - assigned,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{mac, pool_entries, test_minter};
    use crate::store::AllocationRequest;

    /// A write that fails because the disk is full (SQLite may roll back the whole transaction
    /// then) reports that error, and the store goes on working once there is room again.
    #[test]
    fn a_full_disk_fails_the_write_and_the_store_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
        let pages: i64 = store
            .lock()
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        store
            .lock()
            .conn
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        let err = store.import_pool("p", &pool_entries(40)).unwrap_err();
        assert!(err.to_string().contains("full"), "{err}");
        {
            let g = store.lock();
            assert!(!g.open, "no transaction is left open after the failure");
            assert!(g.conn.is_autocommit());
        }
        store
            .lock()
            .conn
            .pragma_update(None, "max_page_count", 1_073_741_823)
            .unwrap();
        let t = espfleet_compiler::identity::SerialTemplate::parse("F-{n}", 1).unwrap();
        let a = store
            .allocate(&AllocationRequest {
                mac: mac(1),
                manifest: "m",
                station: "s",
                serial: &t,
                credentials: Credentials::Mint(test_minter()),
            })
            .unwrap();
        assert_eq!(a.record.serial, "F-1");
        assert_eq!(store.pool_status("p").unwrap().total, 0);
    }
}
