//! `espfleet build DIR` on the example fleet: concurrent builds on one cache, byte-identical
//! output from different checkouts and time zones, and `--locked`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// A checkout-like copy of the example fleet and the firmware it names, under `root/<name>`.
fn checkout(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let examples = repo().join("manifests/examples");
    copy_dir(&examples.join("fleet"), &dir.join("fleet"));
    copy_dir(&examples.join("firmware"), &dir.join("firmware"));
    dir
}

fn espfleet(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_espfleet"));
    c.current_dir(cwd)
        .args(args)
        .env_remove("ESPFLEET_CACHE_DIR");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "espfleet failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every file under `dir`, by relative path, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn two_concurrent_builds_on_one_cache_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let src = checkout(tmp.path(), "src");
    let cache = tmp.path().join("cache");
    let spawn = |out: &str| {
        Command::new(env!("CARGO_BIN_EXE_espfleet"))
            .current_dir(&src)
            .args([
                "build",
                "fleet",
                "--no-lock",
                "--quiet",
                "--out",
                out,
                "--cache-dir",
            ])
            .arg(&cache)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("out-a"), spawn("out-b"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    ok(&a);
    ok(&b);
    let (ta, tb) = (tree(&src.join("out-a")), tree(&src.join("out-b")));
    assert_eq!(ta.len(), 33, "3 devices × 11 files");
    assert_eq!(ta, tb);
    // And the shared cache serves a third build without rebuilding anything.
    let c = espfleet(
        &src,
        &[
            "build",
            "fleet",
            "--no-lock",
            "--out",
            "out-c",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        &[],
    );
    ok(&c);
    assert!(
        String::from_utf8_lossy(&c.stderr).contains(", 0 built;"),
        "{}",
        String::from_utf8_lossy(&c.stderr)
    );
    assert_eq!(tree(&src.join("out-c")), ta);
}

#[test]
fn same_bytes_from_another_checkout_path_and_time_zone() {
    let tmp = tempfile::tempdir().unwrap();
    let one = checkout(tmp.path(), "checkout-one");
    let two = checkout(&tmp.path().join("deeper/elsewhere"), "a different name");
    // Independent caches, different time zones, absolute vs relative paths.
    let a = espfleet(
        &one,
        &[
            "build",
            "fleet",
            "--out",
            "out",
            "--report",
            "out/report.json",
            "--cache-dir",
            "c",
        ],
        &[("TZ", "UTC")],
    );
    ok(&a);
    let fleet_two = two.join("fleet");
    let b = espfleet(
        tmp.path(),
        &[
            "build",
            fleet_two.to_str().unwrap(),
            "--out",
            two.join("out").to_str().unwrap(),
            "--report",
            two.join("out/report.json").to_str().unwrap(),
            "--no-cache",
            "--jobs",
            "1",
        ],
        &[("TZ", "Pacific/Kiritimati"), ("LC_ALL", "C")],
    );
    ok(&b);
    let (mut ta, mut tb) = (tree(&one.join("out")), tree(&two.join("out")));
    // Reports name where the manifests and outputs were; everything else is identical.
    let images = |r: Vec<u8>| {
        let v: serde_json::Value = serde_json::from_slice(&r).unwrap();
        v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["name"].clone(), m["images"].clone()))
            .collect::<Vec<_>>()
    };
    let (ra, rb) = (
        ta.remove("report.json").unwrap(),
        tb.remove("report.json").unwrap(),
    );
    assert_eq!(images(ra), images(rb));
    assert_eq!(ta.len(), 33);
    assert_eq!(ta, tb);
    // Both lock files equal the committed one: the bytes are the same on every machine.
    let committed = std::fs::read(repo().join("manifests/examples/fleet/espfleet.lock")).unwrap();
    assert_eq!(
        std::fs::read(one.join("fleet/espfleet.lock")).unwrap(),
        committed
    );
    assert_eq!(
        std::fs::read(two.join("fleet/espfleet.lock")).unwrap(),
        committed
    );
}

#[test]
fn locked_build_fails_with_a_readable_diff_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = checkout(tmp.path(), "src");
    let args = ["build", "fleet", "--out", "out", "--no-cache", "--locked"];
    ok(&espfleet(&src, &args, &[]));
    let before = tree(&src.join("out"));
    std::fs::copy(
        repo().join("compiler/tests/data/fleet/bench-02-renewed.crt"),
        src.join("fleet/pki/bench-02.crt"),
    )
    .unwrap();
    let o = espfleet(&src, &args, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("~ bench-02/customized_partitions/mfg_nvs.bin: blake3"),
        "{err}"
    );
    assert!(
        err.contains("~ bench-02/factory/factory_WROOM-32.bin"),
        "{err}"
    );
    assert!(!err.contains("bench-01/"), "{err}");
    assert_eq!(tree(&src.join("out")), before, "nothing written");
    // Without --locked the change is built and recorded; then --locked passes again.
    ok(&espfleet(&src, &args[..5], &[]));
    ok(&espfleet(&src, &args, &[]));
}

/// A fleet build through a cache in the checkout, without a lock file.
const WARM_ARGS: [&str; 7] = [
    "build",
    "fleet",
    "--out",
    "out",
    "--cache-dir",
    "cache",
    "--no-lock",
];

#[test]
fn unchanged_manifests_skip_resolving_and_changed_ones_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let src = checkout(tmp.path(), "src");
    let args = WARM_ARGS;
    ok(&espfleet(&src, &args, &[]));
    let before = tree(&src.join("out"));
    let warm = espfleet(&src, &args, &[]);
    ok(&warm);
    let err = String::from_utf8_lossy(&warm.stderr);
    assert!(err.contains("3 manifest(s) (3 unchanged)"), "{err}");
    assert!(err.contains("0 file(s) written"), "{err}");
    std::fs::copy(
        repo().join("compiler/tests/data/fleet/bench-02-renewed.crt"),
        src.join("fleet/pki/bench-02.crt"),
    )
    .unwrap();
    let after = espfleet(&src, &args, &[]);
    ok(&after);
    let err = String::from_utf8_lossy(&after.stderr);
    assert!(err.contains("3 manifest(s) (2 unchanged)"), "{err}");
    let after = tree(&src.join("out"));
    let changed: Vec<&String> = before.keys().filter(|k| before[*k] != after[*k]).collect();
    assert_eq!(
        changed,
        [
            "bench-02/customized_partitions/mfg_nvs.bin",
            "bench-02/factory/factory_WROOM-32.bin",
            "bench-02/factory/factory_WROOM-32_unfilled.bin"
        ]
    );
}

#[test]
fn a_warm_rebuild_restores_outputs_touched_since_even_after_cache_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let src = checkout(tmp.path(), "src");
    let args = WARM_ARGS;
    ok(&espfleet(&src, &args, &[]));
    let good = tree(&src.join("out"));
    // Outputs damaged by hand: a changed byte of the same length, a deleted file, a secret
    // made world-readable. The warm path must notice all three without resolving.
    let nvs = src.join("out/bench-01/customized_partitions/mfg_nvs.bin");
    let mut bytes = std::fs::read(&nvs).unwrap();
    bytes[100] ^= 0xFF;
    std::fs::write(&nvs, &bytes).unwrap();
    std::fs::remove_file(src.join("out/bench-02/flasher_args.json")).unwrap();
    let secret = src.join("out/bench-03/customized_partitions/mfg_nvs.bin");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let warm = espfleet(&src, &args, &[]);
    ok(&warm);
    let err = String::from_utf8_lossy(&warm.stderr);
    assert!(err.contains("3 manifest(s) (3 unchanged)"), "{err}");
    assert!(err.contains("3 file(s) written"), "{err}");
    assert_eq!(tree(&src.join("out")), good);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // With the cache emptied, a damaged output is rebuilt from the manifest.
    ok(&espfleet(
        &src,
        &["cache", "clean", "--cache-dir", "cache"],
        &[],
    ));
    std::fs::write(&nvs, b"junk").unwrap();
    let after = espfleet(&src, &args, &[]);
    ok(&after);
    assert_eq!(tree(&src.join("out")), good);
    let quiet = espfleet(&src, &args, &[]);
    ok(&quiet);
    assert!(
        String::from_utf8_lossy(&quiet.stderr).contains("0 file(s) written"),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
}
