//! The embedded SQLite store: the generic conformance suite, plus what is SQLite's own (schema
//! version checks, file permissions, WAL and synchronous=FULL).

use std::path::PathBuf;

use espfleet_identity::conformance::Harness;
use espfleet_identity::store::sqlite::{SqliteStore, schema_version};
use espfleet_identity::store::{IdentityStore, StoreError};

struct Fresh {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Fresh {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("identity.sqlite");
        Fresh { _dir: dir, path }
    }
}

impl Harness for Fresh {
    fn open(&self) -> Box<dyn IdentityStore> {
        Box::new(SqliteStore::open(&self.path).expect("open store"))
    }
}

espfleet_identity::conformance_tests!(Fresh::new());

#[test]
fn a_newer_schema_is_refused() {
    let f = Fresh::new();
    assert_eq!(f.open().schema_version().unwrap(), schema_version());
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    conn.pragma_update(None, "user_version", schema_version() + 1)
        .unwrap();
    drop(conn);
    match SqliteStore::open(&f.path) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (schema_version() + 1, schema_version()));
        }
        other => panic!("expected schema_too_new, got {other:?}"),
    }
}

#[cfg(unix)]
#[test]
fn the_store_is_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = Fresh::new();
    let store = f.open();
    store
        .import_pool("p", &espfleet_identity::conformance::pool_entries(1))
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&f.path), 0o600);
    assert_eq!(mode(f.path.parent().unwrap()), 0o700);
    let wal = PathBuf::from(format!("{}-wal", f.path.display()));
    assert!(wal.exists(), "WAL mode keeps a -wal file while open");
    assert_eq!(mode(&wal), 0o600);
    drop(store);
    std::fs::set_permissions(&f.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        SqliteStore::open(&f.path),
        Err(StoreError::Permissions { mode: 0o644, .. })
    ));
}

#[test]
fn commits_are_durable_wal_with_full_sync() {
    let f = Fresh::new();
    let store = SqliteStore::open(&f.path).unwrap();
    let (journal, synchronous) = store.durability().unwrap();
    assert_eq!(journal, "wal");
    assert_eq!(synchronous, 2, "PRAGMA synchronous=FULL is 2");
}
