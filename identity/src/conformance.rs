//! The one test suite every [`IdentityStore`] backend must pass, written against the trait
//! only. A backend's test file instantiates it with [`crate::conformance_tests!`] and a
//! [`Harness`] that opens connections to a fresh store:
//!
//! ```text
//! struct Fresh(tempfile::TempDir);
//! impl espfleet_identity::conformance::Harness for Fresh {
//!     fn open(&self) -> Box<dyn IdentityStore> { ... }
//! }
//! espfleet_identity::conformance_tests!(Fresh::new());
//! ```
//!
//! Each case is a public function, so a failing case names itself in the test output.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier, OnceLock};

use espfleet_compiler::identity::{Mac, SerialTemplate, TextTemplate};
use espfleet_compiler::manifest::identity::KeyType;

use crate::mint::{FleetCa, MintError, Minter, NewKey, PlanMinter};
use crate::store::{
    AllocationRequest, Credentials, FlashReport, FlashedImage, IdentityStore, PoolEntry, State,
    StoreError, fingerprint,
};

/// Opens connections to one fresh store (the same store on every call).
pub trait Harness: Sync {
    /// A new connection (a new client, as another thread, process or station would have).
    fn open(&self) -> Box<dyn IdentityStore>;
}

/// A P-256 fleet CA made once per test process, and a minter on it with subject
/// `CN={serial},serialNumber={mac}`.
pub fn test_minter() -> &'static PlanMinter {
    static MINTER: OnceLock<PlanMinter> = OnceLock::new();
    MINTER.get_or_init(|| {
        let (ca, _, _) =
            FleetCa::create_self_signed("CN=espfleet conformance CA", KeyType::P256, 30)
                .expect("test CA");
        PlanMinter::new(
            ca,
            TextTemplate::parse("CN={serial},serialNumber={mac}").expect("subject"),
            KeyType::P256,
            30,
        )
    })
}

/// The `i`-th test MAC (`02:00:00:00:hi:lo`, locally administered).
pub fn mac(i: u16) -> Mac {
    let [hi, lo] = i.to_be_bytes();
    Mac([0x02, 0, 0, 0, hi, lo])
}

fn template() -> SerialTemplate {
    SerialTemplate::parse("ACME-{n:06}", 1000).expect("template")
}

fn req<'a>(
    mac: Mac,
    serial: &'a SerialTemplate,
    credentials: Credentials<'a>,
) -> AllocationRequest<'a> {
    AllocationRequest {
        mac,
        manifest: "conformance",
        station: "station-a",
        serial,
        credentials,
    }
}

/// `n` certificate/key pairs signed by the test CA, as a pool import would read them.
pub fn pool_entries(n: usize) -> Vec<PoolEntry> {
    let m = test_minter();
    (0..n)
        .map(|i| {
            let key = m.new_key().expect("key");
            let cert = m
                .issue(&key, mac(60_000), &format!("POOL-{i}"))
                .expect("pool cert");
            PoolEntry {
                fingerprint: fingerprint(&cert).expect("fingerprint"),
                certificate_pem: cert,
                key_pem: key.pem,
                source: format!("pool-{i}.pem"),
            }
        })
        .collect()
}

/// Re-allocating a MAC returns the same identity, byte for byte, from any connection.
pub fn allocation_is_idempotent_by_mac(h: &dyn Harness) {
    let t = template();
    let store = h.open();
    let first = store
        .allocate(&req(mac(1), &t, Credentials::Mint(test_minter())))
        .unwrap();
    assert!(first.created);
    assert_eq!(first.record.serial, "ACME-001000");
    assert_eq!(first.record.state, State::Reserved);
    assert_eq!(first.record.mac, mac(1));
    assert_eq!(
        first.record.fingerprint,
        fingerprint(&first.record.certificate_pem).unwrap()
    );
    for store in [store, h.open()] {
        let again = store
            .allocate(&req(mac(1), &t, Credentials::Mint(test_minter())))
            .unwrap();
        assert!(!again.created);
        assert_eq!(again.record, first.record);
        assert_eq!(again.key_pem.expose(), first.key_pem.expose());
        assert_eq!(
            store.private_key(mac(1)).unwrap().unwrap().expose(),
            first.key_pem.expose()
        );
    }
    assert_eq!(h.open().identities().unwrap().len(), 1);
}

/// Serials follow the template from `start`, in order, and the counter survives reconnecting;
/// raising `start` jumps forward, lowering it never goes back.
pub fn serials_follow_the_template_and_never_repeat(h: &dyn Harness) {
    let t = template();
    let store = h.open();
    for i in 0..3 {
        let a = store
            .allocate(&req(mac(i), &t, Credentials::Mint(test_minter())))
            .unwrap();
        assert_eq!(a.record.serial, format!("ACME-{:06}", 1000 + u32::from(i)));
    }
    drop(store);
    let store = h.open();
    let a = store
        .allocate(&req(mac(3), &t, Credentials::Mint(test_minter())))
        .unwrap();
    assert_eq!(a.record.serial, "ACME-001003");
    let raised = SerialTemplate::parse("ACME-{n:06}", 5000).unwrap();
    let a = store
        .allocate(&req(mac(4), &raised, Credentials::Mint(test_minter())))
        .unwrap();
    assert_eq!(a.record.serial, "ACME-005000");
    let a = store
        .allocate(&req(mac(5), &t, Credentials::Mint(test_minter())))
        .unwrap();
    assert_eq!(
        a.record.serial, "ACME-005001",
        "a lower start must not reuse the counter's past"
    );
}

/// Two templates that write the same text never hand out one serial twice.
pub fn serials_from_other_templates_are_skipped(h: &dyn Harness) {
    let store = h.open();
    let a = SerialTemplate::parse("X-{n}", 7).unwrap();
    let b = SerialTemplate::parse("X-{n:01}", 7).unwrap();
    let s1 = store
        .allocate(&req(mac(1), &a, Credentials::Mint(test_minter())))
        .unwrap();
    let s2 = store
        .allocate(&req(mac(2), &b, Credentials::Mint(test_minter())))
        .unwrap();
    assert_eq!(s1.record.serial, "X-7");
    assert_eq!(s2.record.serial, "X-8");
}

/// A failed flash leaves the reservation: a later allocation (even after reconnecting) returns
/// it; marking a verified flash records the images and the station.
pub fn reservation_survives_a_failed_flash_and_flashing_is_recorded(h: &dyn Harness) {
    let t = template();
    let first = h
        .open()
        .allocate(&req(mac(7), &t, Credentials::Mint(test_minter())))
        .unwrap();
    // The flash "fails": nothing is recorded. A new connection (a restarted daemon) allocates.
    let store = h.open();
    let again = store
        .allocate(&req(mac(7), &t, Credentials::Mint(test_minter())))
        .unwrap();
    assert_eq!(again.record, first.record);
    assert_eq!(again.record.state, State::Reserved);
    let images = vec![
        FlashedImage {
            name: "mfg_nvs".into(),
            offset: 0x21000,
            size: 0x1c000,
            blake3: "ab".repeat(32),
        },
        FlashedImage {
            name: "device_info".into(),
            offset: 0x3d000,
            size: 0x3000,
            blake3: "cd".repeat(32),
        },
    ];
    let rec = store
        .mark_flashed(
            mac(7),
            &FlashReport {
                station: "station-b".into(),
                images: images.clone(),
            },
        )
        .unwrap();
    assert_eq!(rec.state, State::Flashed);
    assert_eq!(rec.images, images);
    assert_eq!(rec.flashed_by.as_deref(), Some("station-b"));
    assert_eq!(rec.station, "station-a");
    assert!(rec.flashed_at.is_some());
    let read = h.open().identity(mac(7)).unwrap().unwrap();
    assert_eq!(read, rec);
    // Re-plugged after flashing: same identity.
    let replug = store
        .allocate(&req(mac(7), &t, Credentials::Mint(test_minter())))
        .unwrap();
    assert!(!replug.created);
    assert_eq!(replug.record.serial, first.record.serial);
    assert!(matches!(
        store.mark_flashed(
            mac(99),
            &FlashReport {
                station: "s".into(),
                images: vec![]
            }
        ),
        Err(StoreError::NotFound { .. })
    ));
}

/// Revoking keeps the record, refuses the board and never reuses its serial.
pub fn revoked_identities_are_refused_and_never_reused(h: &dyn Harness) {
    let t = template();
    let store = h.open();
    let first = store
        .allocate(&req(mac(1), &t, Credentials::Mint(test_minter())))
        .unwrap();
    let revoked = store.revoke(mac(1), "board scrapped").unwrap();
    assert_eq!(revoked.state, State::Revoked);
    assert_eq!(revoked.revoke_reason.as_deref(), Some("board scrapped"));
    assert_eq!(
        store
            .revoke(mac(1), "again")
            .unwrap()
            .revoke_reason
            .as_deref(),
        Some("board scrapped")
    );
    assert!(matches!(
        store.allocate(&req(mac(1), &t, Credentials::Mint(test_minter()))),
        Err(StoreError::Revoked { .. })
    ));
    assert!(matches!(
        store.mark_flashed(
            mac(1),
            &FlashReport {
                station: "s".into(),
                images: vec![]
            }
        ),
        Err(StoreError::Revoked { .. })
    ));
    let second = store
        .allocate(&req(mac(2), &t, Credentials::Mint(test_minter())))
        .unwrap();
    assert_ne!(first.record.serial, second.record.serial);
    assert_eq!(second.record.serial, "ACME-001001");
    assert!(matches!(
        store.revoke(mac(3), "x"),
        Err(StoreError::NotFound { .. })
    ));
}

/// A pool hands out each entry once, counts what is left, and fails cleanly when empty (no
/// serial consumed); importing the same files again adds nothing.
pub fn pools_hand_out_each_entry_once(h: &dyn Harness) {
    let t = template();
    let store = h.open();
    let entries = pool_entries(3);
    let imp = store.import_pool("p", &entries).unwrap();
    assert_eq!((imp.added, imp.known), (3, 0));
    let imp = store.import_pool("p", &entries).unwrap();
    assert_eq!((imp.added, imp.known), (0, 3));
    assert_eq!(store.pool_status("p").unwrap().remaining, 3);
    assert_eq!(store.pool_status("other").unwrap().total, 0);
    let mut fps = BTreeSet::new();
    for i in 0..3 {
        let a = store
            .allocate(&req(mac(i), &t, Credentials::Pool("p")))
            .unwrap();
        assert_eq!(a.record.origin, crate::store::Origin::Pool("p".into()));
        let e = entries
            .iter()
            .find(|e| e.fingerprint == a.record.fingerprint)
            .expect("from the pool");
        assert_eq!(a.key_pem.expose(), e.key_pem.expose());
        fps.insert(a.record.fingerprint.clone());
    }
    assert_eq!(fps.len(), 3);
    let st = store.pool_status("p").unwrap();
    assert_eq!((st.total, st.assigned, st.remaining), (3, 3, 0));
    match store.allocate(&req(mac(3), &t, Credentials::Pool("p"))) {
        Err(StoreError::PoolExhausted { pool, mac: m }) => {
            assert_eq!(pool, "p");
            assert_eq!(m, mac(3));
        }
        other => panic!("expected pool_exhausted, got {:?}", other.map(|a| a.record)),
    }
    assert!(store.identity(mac(3)).unwrap().is_none());
    // Re-plugged boards still get theirs from an empty pool.
    assert!(
        !store
            .allocate(&req(mac(0), &t, Credentials::Pool("p")))
            .unwrap()
            .created
    );
    // More pairs: the next board gets the next serial, none was consumed by the failure.
    store.import_pool("p", &pool_entries(1)).unwrap();
    let a = store
        .allocate(&req(mac(3), &t, Credentials::Pool("p")))
        .unwrap();
    assert_eq!(a.record.serial, "ACME-001003");
}

struct FailingMinter;

impl Minter for FailingMinter {
    fn new_key(&self) -> Result<NewKey, MintError> {
        test_minter().new_key()
    }
    fn issue(&self, _: &NewKey, _: Mac, _: &str) -> Result<String, MintError> {
        Err(MintError::CaUnreadable {
            path: "fleet-ca.key".into(),
            reason: "permission denied".into(),
        })
    }
}

/// A failed mint allocates nothing and consumes no serial.
pub fn a_failed_mint_changes_nothing(h: &dyn Harness) {
    let t = template();
    let store = h.open();
    assert!(matches!(
        store.allocate(&req(mac(1), &t, Credentials::Mint(&FailingMinter))),
        Err(StoreError::Mint(MintError::CaUnreadable { .. }))
    ));
    assert!(store.identity(mac(1)).unwrap().is_none());
    let a = store
        .allocate(&req(mac(1), &t, Credentials::Mint(test_minter())))
        .unwrap();
    assert_eq!(a.record.serial, "ACME-001000");
}

/// A batch is all or nothing, and gives what single allocations would.
pub fn batches_are_all_or_nothing(h: &dyn Harness) {
    let t = template();
    let store = h.open();
    store.import_pool("p", &pool_entries(2)).unwrap();
    let reqs: Vec<_> = (0..3)
        .map(|i| req(mac(i), &t, Credentials::Pool("p")))
        .collect();
    assert!(matches!(
        store.allocate_batch(&reqs),
        Err(StoreError::PoolExhausted { .. })
    ));
    assert!(store.identities().unwrap().is_empty());
    assert_eq!(store.pool_status("p").unwrap().remaining, 2);
    let out = store.allocate_batch(&reqs[..2]).unwrap();
    assert_eq!(
        out.iter()
            .map(|a| a.record.serial.as_str())
            .collect::<Vec<_>>(),
        ["ACME-001000", "ACME-001001"]
    );
    // Duplicates in a batch get one identity.
    let dup = [
        req(mac(5), &t, Credentials::Mint(test_minter())),
        req(mac(5), &t, Credentials::Mint(test_minter())),
    ];
    let out = store.allocate_batch(&dup).unwrap();
    assert_eq!(out[0].record, out[1].record);
    assert!(out[0].created && !out[1].created);
}

/// Debug output of records and allocations never shows a key.
pub fn keys_never_show_in_debug_output(h: &dyn Harness) {
    let t = template();
    let store = h.open();
    let a = store
        .allocate(&req(mac(1), &t, Credentials::Mint(test_minter())))
        .unwrap();
    let body: Vec<&str> = a
        .key_pem
        .expose()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!body.is_empty());
    let shown = format!(
        "{a:?} {:?} {:?}",
        store.private_key(mac(1)).unwrap(),
        a.device()
    );
    for line in body {
        assert!(!shown.contains(line), "key material in Debug output");
    }
}

/// Sixteen clients at once, each on its own connection, allocating the same 32 boards in
/// different orders: one identity per board, all clients agree, serials contiguous and unique,
/// certificates unique.
pub fn concurrent_clients_never_share_an_identity(h: &dyn Harness) {
    const CLIENTS: u16 = 16;
    const BOARDS: u16 = 32;
    let barrier = Arc::new(Barrier::new(usize::from(CLIENTS)));
    let results: Vec<Vec<(Mac, String, String)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let barrier = barrier.clone();
                s.spawn(move || {
                    let t = template();
                    let store = h.open();
                    let mut order: Vec<u16> = (0..BOARDS).collect();
                    order.rotate_left(usize::from(c * 2 % BOARDS));
                    if c % 2 == 1 {
                        order.reverse();
                    }
                    barrier.wait();
                    order
                        .into_iter()
                        .map(|i| {
                            let a = store
                                .allocate(&req(mac(i), &t, Credentials::Mint(test_minter())))
                                .expect("allocation");
                            (a.record.mac, a.record.serial, a.record.fingerprint)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    let mut by_mac: BTreeMap<Mac, (String, String)> = BTreeMap::new();
    for r in results.iter().flatten() {
        let seen = by_mac
            .entry(r.0)
            .or_insert_with(|| (r.1.clone(), r.2.clone()));
        assert_eq!(
            seen,
            &(r.1.clone(), r.2.clone()),
            "clients disagree on {}",
            r.0
        );
    }
    assert_eq!(by_mac.len(), usize::from(BOARDS));
    let serials: BTreeSet<&String> = by_mac.values().map(|v| &v.0).collect();
    let want: BTreeSet<String> = (0..u32::from(BOARDS))
        .map(|i| format!("ACME-{:06}", 1000 + i))
        .collect();
    assert_eq!(
        serials,
        want.iter().collect(),
        "serials are not 1000..1032 exactly once"
    );
    let fps: BTreeSet<&String> = by_mac.values().map(|v| &v.1).collect();
    assert_eq!(fps.len(), usize::from(BOARDS));
    assert_eq!(h.open().identities().unwrap().len(), usize::from(BOARDS));
}

/// One allocation's result in the concurrency cases: (MAC, serial, fingerprint) or the error.
type Outcome = Result<(Mac, String, String), String>;

/// Sixteen threads sharing ONE client (as the daemon's workers share its store), allocating 32
/// boards minted and 8 from a pool of 6 at once: the same guarantees, and a request that fails
/// (pool exhausted) takes nobody else's allocation with it.
pub fn threads_sharing_one_client_never_share_an_identity(h: &dyn Harness) {
    let store = h.open();
    store.import_pool("p", &pool_entries(6)).unwrap();
    let barrier = Barrier::new(16);
    let results: Vec<Vec<Outcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16u16)
            .map(|c| {
                let (store, barrier) = (&store, &barrier);
                s.spawn(move || {
                    let t = template();
                    barrier.wait();
                    let mut out = Vec::new();
                    for i in 0..2u16 {
                        let m = mac(c * 2 + i);
                        let r = store.allocate(&req(m, &t, Credentials::Mint(test_minter())));
                        out.push(
                            r.map(|a| (a.record.mac, a.record.serial, a.record.fingerprint))
                                .map_err(|e| e.to_string()),
                        );
                    }
                    if c < 8 {
                        let r = store.allocate(&req(mac(100 + c), &t, Credentials::Pool("p")));
                        out.push(
                            r.map(|a| (a.record.mac, a.record.serial, a.record.fingerprint))
                                .map_err(|e| format!("{e:?}")),
                        );
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    let all: Vec<&Outcome> = results.iter().flatten().collect();
    let ok: Vec<&(Mac, String, String)> = all.iter().filter_map(|r| r.as_ref().ok()).collect();
    let failed: Vec<&String> = all.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(ok.len(), 38, "{failed:?}");
    assert_eq!(failed.len(), 2);
    assert!(
        failed.iter().all(|e| e.contains("PoolExhausted")),
        "{failed:?}"
    );
    let serials: BTreeSet<&String> = ok.iter().map(|r| &r.1).collect();
    let want: BTreeSet<String> = (0..38u32)
        .map(|i| format!("ACME-{:06}", 1000 + i))
        .collect();
    assert_eq!(
        serials,
        want.iter().collect(),
        "serials not 1000..1038 exactly once"
    );
    let fps: BTreeSet<&String> = ok.iter().map(|r| &r.2).collect();
    assert_eq!(fps.len(), 38);
    // Everything returned was committed: a fresh connection sees it all.
    let fresh = h.open();
    assert_eq!(fresh.identities().unwrap().len(), 38);
    for r in &ok {
        assert_eq!(fresh.identity(r.0).unwrap().unwrap().serial, r.1);
    }
}

/// Sixteen boards at once against a pool of fifteen: fifteen distinct entries, one board gets
/// `pool_exhausted` and no identity.
pub fn concurrent_clients_share_a_pool_fairly(h: &dyn Harness) {
    h.open().import_pool("p", &pool_entries(15)).unwrap();
    let barrier = Arc::new(Barrier::new(16));
    let results: Vec<Result<String, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16u16)
            .map(|c| {
                let barrier = barrier.clone();
                s.spawn(move || {
                    let t = template();
                    let store = h.open();
                    barrier.wait();
                    store
                        .allocate(&req(mac(c), &t, Credentials::Pool("p")))
                        .map(|a| a.record.fingerprint)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    let ok: BTreeSet<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 15);
    let exhausted = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::PoolExhausted { .. })))
        .count();
    assert_eq!(exhausted, 1, "{results:?}");
    assert_eq!(h.open().pool_status("p").unwrap().remaining, 0);
    assert_eq!(h.open().identities().unwrap().len(), 15);
}

/// Instantiates every conformance case as a `#[test]` for a backend. `$harness` is an
/// expression making a fresh [`Harness`] (evaluated once per test).
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@cases $harness;
            allocation_is_idempotent_by_mac,
            serials_follow_the_template_and_never_repeat,
            serials_from_other_templates_are_skipped,
            reservation_survives_a_failed_flash_and_flashing_is_recorded,
            revoked_identities_are_refused_and_never_reused,
            pools_hand_out_each_entry_once,
            a_failed_mint_changes_nothing,
            batches_are_all_or_nothing,
            keys_never_show_in_debug_output,
            concurrent_clients_never_share_an_identity,
            concurrent_clients_share_a_pool_fairly,
            threads_sharing_one_client_never_share_an_identity,
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let harness = $harness;
                $crate::conformance::$case(&harness);
            }
        )*
    };
}
