//! `espfleet build --for-mac` and `espfleet identity` as a user runs them: per-device images
//! from one identity store, the same again on a re-run, sixteen separate processes allocating at
//! once, exports that carry certificates and never keys (grepped at the highest verbosity),
//! revocation and pool exhaustion leaving boards unbuilt. Certificates are checked with the
//! OpenSSL command line; the user NVS partition is read back with `espfleet nvs dump`.
#![allow(clippy::too_many_lines)] // each test is one user session, read top to bottom

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn espfleet(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_espfleet"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("ESPFLEET_STORE")
        .env("ESPFLEET_STATION", "bench-a")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn fixture_pki() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../compiler/tests/data/manifests/identity/pki")
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line (Debian package `openssl`) is needed by this test");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A bench folder: the fixture fleet CA (copied, mode 0600) and `sensor.kdl` with `source` as
/// the identity's certificate source.
fn bench(source: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    for f in ["fleet-ca.crt", "fleet-ca.key"] {
        std::fs::copy(fixture_pki().join(f), pki.join(f)).unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            pki.join("fleet-ca.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let manifest = format!(
        "espfleet 1\nname \"sensor\"\nmodule \"WROOM-32\" chip=\"esp32\"\nesp-at \"v4.1.1.0\"\n\
         at-customize {{\n    remove \"fatfs\"\n    partition \"device_info\" type=\"data\" subtype=\"nvs\" size=\"12K\"\n}}\n\
         identity {{\n    serial \"ACME-{{n:06}}\" start=1000\n    {source}\n    slot \"client\"\n\
             nvs \"device_info\" {{\n        namespace \"device\" {{\n            serial \"string\" \"{{serial}}\"\n            mac \"string\" \"{{mac}}\"\n        }}\n    }}\n}}\n"
    );
    std::fs::write(dir.path().join("sensor.kdl"), manifest).unwrap();
    dir
}

const MINT: &str = "mint ca-cert=\"pki/fleet-ca.crt\" ca-key=\"pki/fleet-ca.key\" subject=\"CN={serial},serialNumber={mac}\"";

fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn identity_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("identity.json")).unwrap()).unwrap()
}

#[test]
fn per_device_builds_give_each_board_its_own_identity_and_the_same_again() {
    let b = bench(MINT);
    let p = b.path();
    let store = "state/identity.sqlite";
    let args = [
        "build",
        "sensor.kdl",
        "--for-mac",
        "24:0a:c4:12:34:56",
        "24-0A-C4-12-34-57",
        "--store",
        store,
        "--out",
        "out",
        "--no-cache",
    ];
    let first = ok(&espfleet(&args, p));
    assert!(first.contains("24:0a:c4:12:34:56  ACME-001000"), "{first}");
    assert!(first.contains("24:0a:c4:12:34:57  ACME-001001"), "{first}");
    let a = p.join("out/sensor/240ac4123456");
    let before = files_of(&a);
    // Re-run: same identity, same bytes, nothing written.
    let again = ok(&espfleet(&args, p));
    assert!(again.contains("existing identity, unchanged"), "{again}");
    assert_eq!(files_of(&a), before);

    // The user NVS partition holds this board's serial and MAC (read back by our NVS decoder).
    let dump = ok(&espfleet(
        &[
            "nvs",
            "dump",
            "out/sensor/240ac4123456/customized_partitions/device_info.bin",
        ],
        p,
    ));
    assert!(dump.contains("serial,data,string,ACME-001000"), "{dump}");
    assert!(dump.contains("mac,data,string,24:0a:c4:12:34:56"), "{dump}");
    // Its certificate verifies against the fleet CA, and carries its MAC.
    let id = identity_json(&a);
    std::fs::write(p.join("dev.crt"), id["certificate_pem"].as_str().unwrap()).unwrap();
    assert_eq!(
        openssl(p, &["verify", "-CAfile", "pki/fleet-ca.crt", "dev.crt"]).trim(),
        "dev.crt: OK"
    );
    let subject = openssl(
        p,
        &[
            "x509", "-in", "dev.crt", "-noout", "-subject", "-nameopt", "RFC2253",
        ],
    );
    assert_eq!(
        subject.trim(),
        "subject=CN=ACME-001000,serialNumber=24:0a:c4:12:34:56"
    );
    // The secret images are private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(a.join("customized_partitions/mfg_nvs.bin"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let store_mode = std::fs::metadata(p.join(store))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(store_mode & 0o777, 0o600);
    }
    let list = ok(&espfleet(&["identity", "--store", store, "list"], p));
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(
        list.lines()
            .all(|l| l.contains("reserved") && l.contains("bench-a")),
        "{list}"
    );
}

#[test]
fn sixteen_processes_at_once_never_share_an_identity() {
    let b = bench(MINT);
    let p = b.path();
    let macs: Vec<String> = (0..8).map(|i| format!("02:00:00:00:00:{i:02x}")).collect();
    // Process k builds four of the eight boards, in an order of its own: every board is wanted
    // by eight processes at once.
    let children: Vec<_> = (0..16)
        .map(|k: usize| {
            let mut args = vec![
                "build".to_owned(),
                "sensor.kdl".to_owned(),
                "--store".into(),
                "identity.sqlite".into(),
                "--out".into(),
                format!("out{k}"),
                "--no-cache".into(),
                "--for-mac".into(),
            ];
            for j in 0..4 {
                args.push(macs[(k + j * 2 + k / 8) % 8].clone());
            }
            Command::new(env!("CARGO_BIN_EXE_espfleet"))
                .args(&args)
                .current_dir(p)
                .env("ESPFLEET_STATION", format!("proc-{k}"))
                .output_async()
        })
        .collect();
    let mut by_mac: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for (k, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        ok(&out);
        for e in std::fs::read_dir(p.join(format!("out{k}/sensor"))).unwrap() {
            let dir = e.unwrap().path();
            let mac = dir.file_name().unwrap().to_string_lossy().into_owned();
            let files = files_of(&dir);
            match by_mac.get(&mac) {
                Some(seen) => assert!(seen == &files, "process {k} built {mac} differently"),
                None => {
                    by_mac.insert(mac, files);
                }
            }
        }
    }
    assert_eq!(by_mac.len(), 8);
    let list = ok(&espfleet(
        &["identity", "--store", "identity.sqlite", "list", "--json"],
        p,
    ));
    let records: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    assert_eq!(records.len(), 8);
    let serials: BTreeSet<&str> = records
        .iter()
        .map(|r| r["serial"].as_str().unwrap())
        .collect();
    let want: BTreeSet<String> = (1000..1008).map(|n| format!("ACME-{n:06}")).collect();
    assert_eq!(serials, want.iter().map(String::as_str).collect());
    let fps: BTreeSet<&str> = records
        .iter()
        .map(|r| r["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(fps.len(), 8);
}

trait SpawnOutput {
    fn output_async(&mut self) -> std::process::Child;
}

impl SpawnOutput for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .env("NO_COLOR", "1")
            .env_remove("ESPFLEET_STORE")
            .spawn()
            .unwrap()
    }
}

#[test]
fn exports_carry_certificates_and_no_output_ever_shows_a_key() {
    let b = bench(MINT);
    let p = b.path();
    let s = ["--store", "identity.sqlite"];
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let mut all = vec!["-vvv"];
        all.extend_from_slice(args);
        let out = espfleet(&all, p);
        outputs.push(format!("{}{}", text(&out.stdout), text(&out.stderr)));
        out
    };
    ok(&run(&[
        "build",
        "sensor.kdl",
        "--for-mac",
        "24:0a:c4:00:00:01",
        "24:0a:c4:00:00:02",
        "--store",
        "identity.sqlite",
        "--out",
        "out",
        "--no-cache",
    ]));
    let csv_text = ok(&run(&["identity", s[0], s[1], "export", "--format", "csv"]));
    let json_text = ok(&run(&[
        "identity", s[0], s[1], "export", "--format", "json",
    ]));
    ok(&run(&["identity", s[0], s[1], "list"]));
    ok(&run(&["identity", s[0], s[1], "list", "--json"]));
    ok(&run(&["identity", s[0], s[1], "show", "24:0a:c4:00:00:01"]));
    ok(&run(&[
        "identity",
        s[0],
        s[1],
        "show",
        "240ac4000001",
        "--json",
    ]));
    ok(&run(&[
        "identity",
        s[0],
        s[1],
        "revoke",
        "24:0a:c4:00:00:02",
        "--reason",
        "test",
    ]));
    run(&[
        "build",
        "sensor.kdl",
        "--for-mac",
        "24:0a:c4:00:00:02",
        "--store",
        "identity.sqlite",
        "--out",
        "out",
        "--no-cache",
    ]);
    ok(&run(&[
        "identity",
        s[0],
        s[1],
        "export-private-key",
        "24:0a:c4:00:00:01",
        "--out",
        "one.key",
    ]));

    // CSV: one row per board, the certificate PEM whole, the fingerprint as openssl computes it.
    let mut rdr = csv::Reader::from_reader(csv_text.as_bytes());
    let headers: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        headers,
        [
            "mac",
            "serial",
            "state",
            "certificate_pem",
            "fingerprint",
            "created_at",
            "station",
            "manifest",
            "origin",
            "flashed_at"
        ]
    );
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (&rows[0][0], &rows[0][1], &rows[0][6]),
        ("24:0a:c4:00:00:01", "ACME-001000", "bench-a")
    );
    std::fs::write(p.join("c.crt"), &rows[0][3]).unwrap();
    let fp = openssl(
        p,
        &["x509", "-in", "c.crt", "-noout", "-fingerprint", "-sha256"],
    );
    assert_eq!(
        rows[0][4],
        fp.trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_ascii_lowercase()
    );
    let json: Vec<serde_json::Value> = serde_json::from_str(&json_text).unwrap();
    assert_eq!(json[0]["certificate_pem"].as_str().unwrap(), &rows[0][3]);
    assert_eq!(json[1]["state"], "reserved");

    // The deliberate key export: mode 0600, and the key of that certificate.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(p.join("one.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    assert_eq!(
        openssl(p, &["x509", "-in", "c.crt", "-noout", "-pubkey"]),
        openssl(p, &["pkey", "-in", "one.key", "-pubout"])
    );
    // No output of any command, at -vvv, holds a line of any key (device keys or the CA's).
    let mut keys = vec![std::fs::read_to_string(p.join("one.key")).unwrap()];
    keys.push(std::fs::read_to_string(p.join("pki/fleet-ca.key")).unwrap());
    ok(&espfleet(
        &[
            "identity",
            s[0],
            s[1],
            "export-private-key",
            "24:0a:c4:00:00:02",
            "--out",
            "two.key",
        ],
        p,
    ));
    keys.push(std::fs::read_to_string(p.join("two.key")).unwrap());
    let lines: Vec<&str> = keys
        .iter()
        .flat_map(|k| k.lines())
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .collect();
    assert!(lines.len() >= 6);
    for (i, out) in outputs.iter().enumerate() {
        for l in &lines {
            assert!(!out.contains(l), "output {i} shows key material");
        }
    }
    // Nor does the per-device identity.json, nor the export.
    let id = std::fs::read_to_string(p.join("out/sensor/240ac4000001/identity.json")).unwrap();
    assert!(
        lines
            .iter()
            .all(|l| !id.contains(l) && !csv_text.contains(l))
    );
    // Exporting over an existing file is refused.
    let again = espfleet(
        &[
            "identity",
            s[0],
            s[1],
            "export-private-key",
            "24:0a:c4:00:00:01",
            "--out",
            "one.key",
        ],
        p,
    );
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn a_revoked_board_is_left_unbuilt() {
    let b = bench(MINT);
    let p = b.path();
    let build = [
        "build",
        "sensor.kdl",
        "--for-mac",
        "24:0a:c4:00:00:09",
        "--store",
        "identity.sqlite",
        "--out",
        "out",
        "--no-cache",
    ];
    ok(&espfleet(&build, p));
    let before = files_of(&p.join("out/sensor/240ac4000009"));
    let rev = ok(&espfleet(
        &[
            "identity",
            "--store",
            "identity.sqlite",
            "revoke",
            "24:0a:c4:00:00:09",
            "--reason",
            "RMA 12",
        ],
        p,
    ));
    assert!(
        rev.starts_with("revoked  24:0a:c4:00:00:09  ACME-001000"),
        "{rev}"
    );
    let out = espfleet(&build, p);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("espfleet::identity::revoked"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(files_of(&p.join("out/sensor/240ac4000009")), before);
    let show = ok(&espfleet(
        &[
            "identity",
            "--store",
            "identity.sqlite",
            "show",
            "24:0a:c4:00:00:09",
        ],
        p,
    ));
    assert!(
        show.contains("state        revoked") && show.contains("RMA 12"),
        "{show}"
    );
    // A new board still gets the next serial: the revoked one is never reused.
    let next = ok(&espfleet(
        &[
            "build",
            "sensor.kdl",
            "--for-mac",
            "24:0a:c4:00:00:0a",
            "--store",
            "identity.sqlite",
            "--out",
            "out",
            "--no-cache",
        ],
        p,
    ));
    assert!(next.contains("ACME-001001"), "{next}");
}

#[test]
fn an_exhausted_pool_leaves_the_extra_board_unbuilt() {
    let b = bench("pool \"pool\" warn-below=5");
    let p = b.path();
    let pool = p.join("pool");
    std::fs::create_dir(&pool).unwrap();
    for i in 0..2 {
        let key = format!("pool/{i}-private.pem.key");
        openssl(
            p,
            &[
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-keyout",
                &key,
                "-out",
                "d.csr",
                "-subj",
                &format!("/CN=pool-{i}"),
            ],
        );
        openssl(
            p,
            &[
                "x509",
                "-req",
                "-in",
                "d.csr",
                "-CA",
                "pki/fleet-ca.crt",
                "-CAkey",
                "pki/fleet-ca.key",
                "-set_serial",
                &format!("{}", 100 + i),
                "-days",
                "30",
                "-out",
                &format!("pool/{i}-certificate.pem.crt"),
            ],
        );
    }
    let out = espfleet(
        &[
            "build",
            "sensor.kdl",
            "--for-mac",
            "02:00:00:00:00:01",
            "02:00:00:00:00:02",
            "02:00:00:00:00:03",
            "--store",
            "identity.sqlite",
            "--out",
            "out",
            "--no-cache",
        ],
        p,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("espfleet::identity::pool_exhausted"), "{err}");
    assert!(err.contains("02:00:00:00:00:03"), "{err}");
    assert!(
        p.join("out/sensor/020000000001").is_dir() && p.join("out/sensor/020000000002").is_dir()
    );
    assert!(!p.join("out/sensor/020000000003").exists());
    // Pool certificates go out as delivered.
    let id = identity_json(&p.join("out/sensor/020000000001"));
    let delivered = std::fs::read_to_string(pool.join("0-certificate.pem.crt")).unwrap();
    assert_eq!(
        id["certificate_pem"].as_str().unwrap().trim(),
        delivered.trim()
    );
    assert_eq!(id["origin"]["kind"], "pool");
}

#[test]
fn help_teaches_with_examples_and_bad_macs_are_usage_errors() {
    let p = std::env::temp_dir();
    for sub in [
        &["identity", "--help"][..],
        &["identity", "list", "--help"],
        &["identity", "show", "--help"],
        &["identity", "export", "--help"],
        &["identity", "revoke", "--help"],
        &["identity", "export-private-key", "--help"],
        &["build", "--help"],
    ] {
        let help = ok(&espfleet(sub, &p));
        assert!(
            help.contains("Examples:\n  espfleet "),
            "{sub:?} has no examples"
        );
    }
    let out = espfleet(&["build", "x.kdl", "--for-mac", "24:0a:c4:12:34"], &p);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not a MAC address"));
    let out = espfleet(&["identity", "--store", "postgres://db/fleet", "list"], &p);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("espfleet::identity::store_unavailable"));
}
