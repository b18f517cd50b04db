//! Plug-time identity benchmark (run by `tests/bench/identity.sh`; see tests/bench/README.md).
//!
//! 1. Per board, what the daemon does between reading a MAC and flashing: allocate the identity
//!    (mint a P-256 certificate, one durable transaction) and build that board's images in
//!    memory through a warm cache. Median, p90 and range over `--boards` boards, for a manifest
//!    without firmware and for one with the example ESP-AT firmware (merged factory image too).
//! 2. Allocations per second in the embedded store on the state disk (WAL, synchronous=FULL):
//!    one transaction per allocation (minted, and from a pool), 16 concurrent clients, and
//!    batches of 100; the disk's fsync time; the same on tmpfs (/dev/shm) to show what fsync
//!    costs.
//! 3. The peer: the same per-board work done the way a user would without espfleet — `openssl`
//!    to make the key and certificate, and `esp-idf-nvs-partition-gen` (PyPI, pinned) for the
//!    mfg_nvs and the user NVS partition — and the ratio. The user partition the peer makes is
//!    compared with espfleet's for the same serial and MAC.
//!
//! Arguments: `--boards N` (default 200), `--peer-boards N` (default 10), `--python PATH`,
//! `--state-dir DIR` (default: a temporary directory on the repository's disk).
#![allow(
    clippy::cast_precision_loss,      // counts and durations become rates
    clippy::cast_possible_truncation, // a percentile index from a rounded fraction
    clippy::cast_sign_loss,
    clippy::many_single_char_names,
    clippy::items_after_statements
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use espfleet_compiler::build::Jobs;
use espfleet_compiler::cache::Cache;
use espfleet_compiler::identity::{Mac, device_flash_images, device_images};
use espfleet_compiler::manifest::{self, identity::KeyType};
use espfleet_identity::conformance::pool_entries;
use espfleet_identity::mint::FleetCa;
use espfleet_identity::provision::Provisioner;
use espfleet_identity::store::IdentityStore;
use espfleet_identity::store::sqlite::SqliteStore;

struct Args {
    boards: usize,
    peer_boards: usize,
    python: PathBuf,
    state_dir: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        boards: 200,
        peer_boards: 10,
        python: PathBuf::from("python3"),
        state_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--boards" => a.boards = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.boards),
            "--peer-boards" => {
                a.peer_boards = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(a.peer_boards);
            }
            "--python" => a.python = it.next().map(PathBuf::from).unwrap_or(a.python),
            "--state-dir" => a.state_dir = it.next().map(PathBuf::from),
            _ => {} // cargo bench passes `--bench`
        }
    }
    a
}

fn mac(i: usize) -> Mac {
    let b = u32::try_from(i).unwrap().to_be_bytes();
    Mac([0x02, 0x42, b[0], b[1], b[2], b[3]])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64, f64) {
    v.sort();
    let at = |q: f64| {
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        ms(v[i])
    };
    (at(0.5), at(0.9), ms(v[0]), ms(v[v.len() - 1]))
}

/// A bench folder: fleet CA, user NVS partition, optionally the example firmware.
fn bench_dir(root: &Path, repo: &Path, firmware: bool) -> PathBuf {
    let dir = root.join(if firmware {
        "with-firmware"
    } else {
        "no-firmware"
    });
    std::fs::create_dir_all(dir.join("pki")).unwrap();
    let (_, cert, key) =
        FleetCa::create_self_signed("O=ACME,CN=ACME bench CA", KeyType::P256, 3650).unwrap();
    std::fs::write(dir.join("pki/ca.crt"), cert).unwrap();
    std::fs::write(dir.join("pki/ca.key"), key.expose()).unwrap();
    let fw = if firmware {
        format!(
            "firmware {{\n    release \"{}\"\n}}\n",
            repo.join("manifests/examples/firmware/esp32").display()
        )
    } else {
        String::new()
    };
    let manifest = format!(
        "espfleet 1\nname \"bench\"\nmodule \"WROOM-32\" chip=\"esp32\"\nesp-at \"v4.1.1.0\"\n\
         at-customize {{\n    remove \"fatfs\"\n    partition \"device_info\" type=\"data\" subtype=\"nvs\" size=\"12K\"\n}}\n\
         identity {{\n    serial \"ACME-{{n:06}}\" start=1000\n\
             mint ca-cert=\"pki/ca.crt\" ca-key=\"pki/ca.key\" subject=\"CN={{serial}},serialNumber={{mac}}\"\n\
             slot \"client\"\n    nvs \"device_info\" {{\n        namespace \"device\" {{\n\
                     serial \"string\" \"{{serial}}\"\n            mac \"string\" \"{{mac}}\"\n            hw_rev \"u8\" 3\n        }}\n    }}\n}}\n{fw}"
    );
    std::fs::write(dir.join("bench.kdl"), manifest).unwrap();
    dir
}

/// Per-board plug-time work: allocate + build in memory through a warm cache. `flash_only`:
/// the images the daemon writes (`device_flash_images`); else every output file
/// (`device_images`, what `build --for-mac` writes, merged factory images included).
fn per_board(
    dir: &Path,
    state: &Path,
    boards: usize,
    flash_only: bool,
) -> (f64, f64, f64, f64, usize) {
    let (plan, _) = manifest::load(&dir.join("bench.kdl")).unwrap();
    let name = dir.file_name().unwrap().to_string_lossy();
    let store = SqliteStore::open(&state.join(format!("{name}-{flash_only}.sqlite"))).unwrap();
    let cache = Cache::open(&dir.join("cache")).unwrap();
    let prov = Provisioner::prepare(&plan, &store).unwrap();
    let build = |a: &espfleet_identity::store::Allocation| {
        if flash_only {
            device_flash_images(&plan, &a.device(), Jobs::Parallel, Some(&cache)).unwrap()
        } else {
            device_images(&plan, &a.device(), Jobs::Parallel, Some(&cache), &|_| {}).unwrap()
        }
    };
    // Warm the cache with the jobs every board shares (tables, firmware).
    let images = build(&prov.allocate(&store, mac(1_000_000), "bench").unwrap());
    let mut times = Vec::with_capacity(boards);
    for i in 0..boards {
        let t = Instant::now();
        let a = prov.allocate(&store, mac(i), "bench").unwrap();
        let imgs = build(&a);
        times.push(t.elapsed());
        assert_eq!(imgs.len(), images.len());
    }
    let (m, p90, lo, hi) = stats(times);
    (m, p90, lo, hi, images.len())
}

fn fsync_ms(dir: &Path) -> f64 {
    use std::io::Write as _;
    let p = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&p).unwrap();
    let n = 50;
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(&[0u8; 4096]).unwrap();
        f.sync_data().unwrap();
    }
    let d = t.elapsed();
    drop(f);
    let _ = std::fs::remove_file(&p);
    ms(d) / f64::from(n)
}

/// Allocations per second: single transactions (mint, pool), 16 clients, batches of 100.
fn store_rates(state: &Path, label: &str, n: usize) {
    let minter = espfleet_identity::conformance::test_minter();
    let template = espfleet_compiler::identity::SerialTemplate::parse("R-{n}", 1).unwrap();
    let path = state.join(format!("rates-{label}.sqlite"));
    let store = SqliteStore::open(&path).unwrap();
    let req = |m: Mac, cred| espfleet_identity::store::AllocationRequest {
        mac: m,
        manifest: "bench",
        station: "bench",
        serial: &template,
        credentials: cred,
    };
    use espfleet_identity::store::Credentials;
    let t = Instant::now();
    for i in 0..n {
        store
            .allocate(&req(mac(2_000_000 + i), Credentials::Mint(minter)))
            .unwrap();
    }
    let single_mint = n as f64 / t.elapsed().as_secs_f64();
    store.import_pool("bench", &pool_entries(n)).unwrap();
    let t = Instant::now();
    for i in 0..n {
        store
            .allocate(&req(mac(3_000_000 + i), Credentials::Pool("bench")))
            .unwrap();
    }
    let single_pool = n as f64 / t.elapsed().as_secs_f64();
    // 16 threads sharing one store (the daemon's workers): group commit.
    let t = Instant::now();
    std::thread::scope(|s| {
        for c in 0..16usize {
            let (store, req) = (&store, &req);
            s.spawn(move || {
                for i in 0..n / 16 {
                    store
                        .allocate(&req(
                            mac(4_000_000 + c * 100_000 + i),
                            Credentials::Mint(minter),
                        ))
                        .unwrap();
                }
            });
        }
    });
    let shared = (n / 16 * 16) as f64 / t.elapsed().as_secs_f64();
    // 16 separate connections (as 16 processes would have): one commit each.
    let t = Instant::now();
    std::thread::scope(|s| {
        for c in 0..16usize {
            let (path, req) = (&path, &req);
            s.spawn(move || {
                let store = SqliteStore::open(path).unwrap();
                for i in 0..n / 16 {
                    store
                        .allocate(&req(
                            mac(6_000_000 + c * 100_000 + i),
                            Credentials::Mint(minter),
                        ))
                        .unwrap();
                }
            });
        }
    });
    let separate = (n / 16 * 16) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let batches = (n / 100).max(1);
    for b in 0..batches {
        let reqs: Vec<_> = (0..100)
            .map(|i| req(mac(5_000_000 + b * 100 + i), Credentials::Mint(minter)))
            .collect();
        store.allocate_batch(&reqs).unwrap();
    }
    let batch = (batches * 100) as f64 / t.elapsed().as_secs_f64();
    println!(
        "store on {label}: {single_mint:.0}/s one transaction each (minted), {single_pool:.0}/s (pool), \
         {shared:.0}/s with 16 threads sharing one store (minted), {separate:.0}/s with 16 separate connections (minted), \
         {batch:.0}/s in batches of 100 (minted)"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The peer pipeline for one board: openssl key + certificate, then esp-idf-nvs-partition-gen
/// for mfg_nvs (client cert/key + factory_param, as ESP-AT's mfg_nvs.py lays it out) and for
/// the user partition.
fn peer_board(dir: &Path, work: &Path, python: &Path, i: usize, mfg_csv: &str) -> Duration {
    let m = mac(i);
    let serial = format!("ACME-{:06}", 1000 + i);
    let key = work.join(format!("{i}.key"));
    let csr = work.join(format!("{i}.csr"));
    let crt = work.join(format!("{i}.crt"));
    let t = Instant::now();
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-subj",
        ])
        .arg(format!("/CN={serial}/serialNumber={m}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "3650", "-CAcreateserial"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(dir.join("pki/ca.crt"))
        .arg("-CAkey")
        .arg(dir.join("pki/ca.key"))
        .arg("-out")
        .arg(&crt));
    let mfg = work.join(format!("{i}-mfg.csv"));
    std::fs::write(
        &mfg,
        mfg_csv
            .replace("@CERT@", &crt.display().to_string())
            .replace("@KEY@", &key.display().to_string()),
    )
    .unwrap();
    run(Command::new(python)
        .args(["-m", "esp_idf_nvs_partition_gen", "generate"])
        .arg(&mfg)
        .arg(work.join(format!("{i}-mfg.bin")))
        .arg("0x1c000"));
    let user = work.join(format!("{i}-user.csv"));
    std::fs::write(&user, format!("key,type,encoding,value\ndevice,namespace,,\nserial,data,string,{serial}\nmac,data,string,{m}\nhw_rev,data,u8,3\n")).unwrap();
    run(Command::new(python)
        .args(["-m", "esp_idf_nvs_partition_gen", "generate"])
        .arg(&user)
        .arg(work.join(format!("{i}-user.bin")))
        .arg("0x3000"));
    t.elapsed()
}

fn main() {
    let a = args();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = tempfile::tempdir_in(repo.join("target")).unwrap();
    let state = a
        .state_dir
        .clone()
        .unwrap_or_else(|| root.path().join("state"));
    std::fs::create_dir_all(&state).unwrap();

    println!(
        "== per-board plug-time work: allocate (mint P-256, durable) + build images in memory through a warm cache; {} boards",
        a.boards
    );
    let mut ours = 0.0;
    for (fw, flash_only, what) in [
        (
            false,
            true,
            "no firmware, flashed images (the daemon's work)",
        ),
        (
            true,
            true,
            "ESP-AT firmware, flashed images (the daemon's work)",
        ),
        (
            true,
            false,
            "ESP-AT firmware, every output incl. merged factory images (build --for-mac)",
        ),
    ] {
        let dir = bench_dir(root.path(), &repo, fw);
        let (m, p90, lo, hi, n) = per_board(&dir, &state, a.boards, flash_only);
        let target = if flash_only { "  [target < 10 ms]" } else { "" };
        println!(
            "{what}: median {m:.2} ms, p90 {p90:.2} ms, range {lo:.2}–{hi:.2} ms per board ({n} images){target}"
        );
        if !fw {
            ours = m;
        }
    }

    println!(
        "== allocations per second (WAL, synchronous=FULL; {} allocations per figure)",
        400
    );
    println!(
        "fsync (4 KiB write + fdatasync) on the state disk: {:.2} ms",
        fsync_ms(&state)
    );
    store_rates(&state, "the state disk", 400);
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        let t = tempfile::tempdir_in(shm).unwrap();
        store_rates(t.path(), "tmpfs (no fsync cost, for reference)", 400);
    }

    println!(
        "== the peer: openssl + esp-idf-nvs-partition-gen per board; {} boards",
        a.peer_boards
    );
    let dir = bench_dir(root.path(), &repo, false);
    let work = root.path().join("peer");
    std::fs::create_dir_all(&work).unwrap();
    // mfg_nvs as ESP-AT's mfg_nvs.py writes it for this manifest, with the device files.
    let (plan, _) = manifest::load(&dir.join("bench.kdl")).unwrap();
    let mfg_csv = {
        let mut csv = espfleet_compiler::build::mfg_nvs_content(&plan).to_csv();
        csv = csv.replace("factory_param,namespace,,\n", "client_cert,namespace,,\nclient_cert,file,binary,@CERT@\nclient_key,namespace,,\nclient_key,file,binary,@KEY@\nfactory_param,namespace,,\n");
        csv
    };
    let peer: Vec<Duration> = (0..a.peer_boards)
        .map(|i| peer_board(&dir, &work, &a.python, i, &mfg_csv))
        .collect();
    let (pm, _, plo, phi) = stats(peer);
    // The peer's user partition for board 0 must be espfleet's.
    let store = SqliteStore::open(&state.join("peer-check.sqlite")).unwrap();
    let prov = Provisioner::prepare(&plan, &store).unwrap();
    let a0 = prov.allocate(&store, mac(0), "bench").unwrap();
    let imgs = device_images(&plan, &a0.device(), Jobs::Sequential, None, &|_| {}).unwrap();
    let mine = imgs.iter().find(|i| i.name == "device_info").unwrap();
    let theirs = std::fs::read(work.join("0-user.bin")).unwrap();
    assert!(
        mine.bytes[..] == theirs[..],
        "the peer's user NVS partition differs from espfleet's"
    );
    println!(
        "peer: median {pm:.1} ms per board (range {plo:.1}–{phi:.1} ms); user NVS partition byte-identical to espfleet's"
    );
    println!(
        "ratio: espfleet {:.1}× faster per board (median {ours:.2} ms vs {pm:.1} ms)",
        pm / ours
    );
    let _ = store.identities();
}
