//! The content-addressed cache on the example fleet (`manifests/examples/fleet`): a renewed
//! certificate rebuilds only the images that read it, and a corrupted entry is never used.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use espfleet_compiler::build::{self, Image, Jobs};
use espfleet_compiler::cache::{Cache, JobEvent, Outcome};
use espfleet_compiler::manifest;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A copy of the example fleet (and the firmware it names) in a temporary directory.
fn fleet_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let examples = repo().join("manifests/examples");
    copy_dir(&examples.join("fleet"), &tmp.path().join("fleet"));
    copy_dir(&examples.join("firmware"), &tmp.path().join("firmware"));
    let fleet = tmp.path().join("fleet");
    (tmp, fleet)
}

/// Builds every device of `fleet` through `cache`; returns images and the job events.
fn build(fleet: &Path, cache: &Cache) -> (Vec<(String, Vec<Image>)>, Vec<JobEvent>) {
    let events = Mutex::new(Vec::new());
    let mut out = Vec::new();
    for n in ["01", "02", "03"] {
        let path = fleet.join(format!("devices/bench-{n}.kdl"));
        let (plan, _) = manifest::load(&path).unwrap_or_else(|d| panic!("{d:?}"));
        let images = build::emit_with(&plan, Jobs::Parallel, Some(cache), &|e| {
            events.lock().unwrap().push(e);
        })
        .unwrap();
        out.push((plan.name.clone(), images));
    }
    (out, events.into_inner().unwrap())
}

fn rebuilt(events: &[JobEvent]) -> Vec<(String, String)> {
    let mut v: Vec<_> = events
        .iter()
        .filter(|e| e.outcome != Outcome::Hit)
        .map(|e| (e.manifest.clone(), e.job.clone()))
        .collect();
    v.sort();
    v
}

#[test]
fn renewed_certificate_rebuilds_only_its_dependents() {
    let (_tmp, fleet) = fleet_copy();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(cache_dir.path()).unwrap();
    let (first, events) = build(&fleet, &cache);
    assert!(events.iter().any(|e| e.outcome == Outcome::Miss));

    // Nothing changed: every job of every device is a hit, with the same bytes.
    let (again, events) = build(&fleet, &cache);
    assert_eq!(rebuilt(&events), Vec::<(String, String)>::new());
    assert_eq!(again, first);

    // bench-02's certificate is renewed (same key, new certificate).
    std::fs::copy(
        repo().join("compiler/tests/data/fleet/bench-02-renewed.crt"),
        fleet.join("pki/bench-02.crt"),
    )
    .unwrap();
    let (after, events) = build(&fleet, &cache);
    assert_eq!(
        rebuilt(&events),
        vec![
            ("bench-02".to_owned(), "factory".to_owned()),
            ("bench-02".to_owned(), "mfg_nvs".to_owned()),
        ],
        "only bench-02's mfg_nvs and merged image read the certificate"
    );
    let changed = |i: usize| -> Vec<String> {
        let mut v: Vec<String> = first[i]
            .1
            .iter()
            .zip(&after[i].1)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.path.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(changed(0), Vec::<String>::new());
    assert_eq!(
        changed(1),
        vec![
            "customized_partitions/mfg_nvs.bin",
            "factory/factory_WROOM-32.bin",
            "factory/factory_WROOM-32_unfilled.bin"
        ]
    );
    assert_eq!(changed(2), Vec::<String>::new());
}

#[test]
fn corrupted_entry_is_detected_and_rebuilt_never_used() {
    let (_tmp, fleet) = fleet_copy();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(cache_dir.path()).unwrap();
    let path = fleet.join("devices/bench-01.kdl");
    let (plan, _) = manifest::load(&path).unwrap();
    let reference = build::emit(&plan, Jobs::Sequential).unwrap();
    let none = |_| {};
    assert_eq!(
        build::emit_with(&plan, Jobs::Sequential, Some(&cache), &none).unwrap(),
        reference
    );

    // Flip one byte in the middle of the mfg_nvs entry (inside the image data).
    let key = build::Job::MfgNvs.key(&plan).finish();
    let hex = key.to_hex();
    let entry = cache_dir
        .path()
        .join("images-v1")
        .join(&hex[..2])
        .join(format!("{hex}.entry"));
    let mut bytes = std::fs::read(&entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&entry, &bytes).unwrap();

    let events = Mutex::new(Vec::new());
    let images = build::emit_with(&plan, Jobs::Sequential, Some(&cache), &|e: JobEvent| {
        events.lock().unwrap().push((e.job, e.outcome));
    })
    .unwrap();
    assert_eq!(
        images, reference,
        "the corrupt bytes never reach the output"
    );
    let events = events.into_inner().unwrap();
    assert!(events.contains(&("mfg_nvs".to_owned(), Outcome::Corrupt)));
    assert!(
        events
            .iter()
            .filter(|(j, _)| j != "mfg_nvs")
            .all(|(_, o)| *o == Outcome::Hit)
    );
    // The entry was rewritten whole and is a hit again.
    assert_ne!(std::fs::read(&entry).unwrap(), bytes);
    let events = Mutex::new(Vec::new());
    build::emit_with(&plan, Jobs::Sequential, Some(&cache), &|e: JobEvent| {
        events.lock().unwrap().push(e.outcome);
    })
    .unwrap();
    assert!(
        events
            .into_inner()
            .unwrap()
            .iter()
            .all(|o| *o == Outcome::Hit)
    );
}

#[test]
fn keys_ignore_paths_and_comments() {
    // The same fleet in two places, one with a comment added: every job key is equal.
    let (_a, fleet_a) = fleet_copy();
    let (_b, fleet_b) = fleet_copy();
    let dev_b = fleet_b.join("devices/bench-03.kdl");
    let text = std::fs::read_to_string(&dev_b).unwrap();
    std::fs::write(&dev_b, format!("// moved and commented\n{text}")).unwrap();
    let keys = |fleet: &Path| {
        let (plan, _) = manifest::load(&fleet.join("devices/bench-03.kdl")).unwrap();
        build::job_list(&plan)
            .iter()
            .map(|j| j.key(&plan).finish())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&fleet_a), keys(&fleet_b));
}
