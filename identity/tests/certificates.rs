//! Device certificates checked by an independent tool: the fleet CAs are made by the OpenSSL
//! command line (Debian `openssl`, in tests/apt-packages.txt), and every certificate espfleet
//! mints must pass `openssl verify -CAfile`, carry the board's MAC in its subject and belong to
//! its key (`openssl x509 -pubkey` = `openssl pkey -pubout`). Certificate pools are made by
//! OpenSSL too, laid out as AWS IoT bulk registration delivers them.

use std::path::{Path, PathBuf};
use std::process::Command;

use espfleet_compiler::identity::{Mac, TextTemplate};
use espfleet_compiler::manifest::identity::KeyType;
use espfleet_identity::mint::{FleetCa, Minter as _, PlanMinter};
use espfleet_identity::pool;

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line (Debian package `openssl`) is needed by this test");
    assert!(
        out.status.success(),
        "openssl {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fleet CA made by OpenSSL: `ca.crt` and `ca.key` in `dir`.
fn openssl_ca(dir: &Path, kind: &str) -> (PathBuf, PathBuf) {
    let newkey: &[&str] = match kind {
        "p256" => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "p384" => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        _ => &["-newkey", "rsa:2048"],
    };
    let mut args = vec!["req", "-x509", "-nodes"];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&[
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/O=ACME/CN=ACME Fleet CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args);
    (dir.join("ca.crt"), dir.join("ca.key"))
}

fn minter(ca_cert: &Path, ca_key: &Path, key_type: KeyType) -> PlanMinter {
    PlanMinter::new(
        FleetCa::load(ca_cert, ca_key).expect("load the OpenSSL-made CA"),
        TextTemplate::parse("CN={serial},O=ACME,serialNumber={mac}").unwrap(),
        key_type,
        365,
    )
}

/// Checks one device certificate and key with OpenSSL.
fn check_with_openssl(dir: &Path, cert: &str, key: &str, mac: Mac, serial: &str) {
    std::fs::write(dir.join("dev.crt"), cert).unwrap();
    std::fs::write(dir.join("dev.key"), key).unwrap();
    let verify = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-purpose",
            "sslclient",
            "dev.crt",
        ],
    );
    assert_eq!(verify.trim(), "dev.crt: OK");
    let subject = openssl(
        dir,
        &[
            "x509", "-in", "dev.crt", "-noout", "-subject", "-nameopt", "RFC2253",
        ],
    );
    assert_eq!(
        subject.trim(),
        format!("subject=CN={serial},O=ACME,serialNumber={mac}"),
        "the subject carries the board's MAC and serial"
    );
    let from_cert = openssl(dir, &["x509", "-in", "dev.crt", "-noout", "-pubkey"]);
    let from_key = openssl(dir, &["pkey", "-in", "dev.key", "-pubout"]);
    assert_eq!(from_cert, from_key, "the key belongs to the certificate");
    let text = openssl(dir, &["x509", "-in", "dev.crt", "-noout", "-text"]);
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
}

#[test]
fn minted_certificates_verify_against_p256_p384_and_rsa_fleet_cas() {
    for (i, ca_kind) in ["p256", "p384", "rsa"].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = openssl_ca(dir.path(), ca_kind);
        let m = minter(&cert, &key, KeyType::P256);
        let mac = Mac([0x24, 0x0a, 0xc4, 0x12, 0x34, u8::try_from(i).unwrap()]);
        let dev_key = m.new_key().unwrap();
        let dev_cert = m.issue(&dev_key, mac, "ACME-001000").unwrap();
        check_with_openssl(
            dir.path(),
            &dev_cert,
            dev_key.pem.expose(),
            mac,
            "ACME-001000",
        );
    }
}

#[test]
fn rsa_2048_device_keys_verify_too() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_ca(dir.path(), "p256");
    let m = minter(&cert, &key, KeyType::Rsa2048);
    let mac = Mac([0x84, 0xf7, 0x03, 0, 0, 1]);
    let dev_key = m.new_key().unwrap();
    let dev_cert = m.issue(&dev_key, mac, "ACME-000007").unwrap();
    check_with_openssl(
        dir.path(),
        &dev_cert,
        dev_key.pem.expose(),
        mac,
        "ACME-000007",
    );
    std::fs::write(dir.path().join("dev.key"), dev_key.pem.expose()).unwrap();
    let text = openssl(dir.path(), &["pkey", "-in", "dev.key", "-noout", "-text"]);
    assert!(
        text.contains("Private-Key: (2048 bit"),
        "{}",
        text.lines().next().unwrap_or("")
    );
}

#[test]
fn a_ca_key_that_is_not_the_certificates_is_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (cert, _) = openssl_ca(a.path(), "p256");
    let (_, other_key) = openssl_ca(b.path(), "p256");
    let err = FleetCa::load(&cert, &other_key).unwrap_err();
    assert!(
        err.to_string()
            .contains("not the key of the CA certificate"),
        "{err}"
    );
    // The error names files and reasons, never key material.
    let key_text = std::fs::read_to_string(&other_key).unwrap();
    let shown = format!("{err} {err:?}");
    for line in key_text.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!shown.contains(line));
    }
}

/// `n` device pairs signed by the CA in `dir`, named as AWS IoT's bulk registration names them.
fn openssl_pool(dir: &Path, pool: &Path, n: usize) {
    std::fs::create_dir_all(pool).unwrap();
    for i in 0..n {
        let id = format!("{:064x}", i + 1);
        let key = pool.join(format!("{id}-private.pem.key"));
        let csr = dir.join(format!("{id}.csr"));
        let crt = pool.join(format!("{id}-certificate.pem.crt"));
        let key_s = key.to_str().unwrap();
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-keyout",
                key_s,
                "-out",
                csr.to_str().unwrap(),
                "-subj",
                &format!("/CN=pool-{i}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                csr.to_str().unwrap(),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-out",
                crt.to_str().unwrap(),
            ],
        );
        openssl(
            dir,
            &[
                "pkey",
                "-in",
                key_s,
                "-pubout",
                "-out",
                pool.join(format!("{id}-public.pem.key")).to_str().unwrap(),
            ],
        );
    }
}

#[test]
fn pools_pair_certificates_and_keys_by_public_key() {
    let dir = tempfile::tempdir().unwrap();
    openssl_ca(dir.path(), "p256");
    let pool_dir = dir.path().join("pool");
    openssl_pool(dir.path(), &pool_dir, 4);
    // A certificate without its key, a key without its certificate, and a stray file.
    let stray = dir.path().join("stray");
    openssl_pool(dir.path(), &stray, 2);
    let mut names: Vec<_> = std::fs::read_dir(&stray)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in &names {
        let n = p.file_name().unwrap().to_str().unwrap().to_owned();
        if (n.starts_with(&format!("{:064x}", 1)) && n.ends_with("certificate.pem.crt"))
            || (n.starts_with(&format!("{:064x}", 2)) && n.ends_with("private.pem.key"))
        {
            std::fs::copy(p, pool_dir.join(format!("stray-{n}"))).unwrap();
        }
    }
    std::fs::write(pool_dir.join("README.txt"), "delivered 2025-01-01").unwrap();
    let scan = pool::scan(&pool_dir).unwrap();
    assert_eq!(scan.entries.len(), 4);
    let reasons: Vec<String> = scan
        .problems
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p.file.file_name().unwrap().to_string_lossy(),
                p.reason
            )
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:#?}");
    assert!(reasons.iter().any(|r| r.starts_with("README.txt")));
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("without its private key"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("without its certificate"))
    );
    for (i, e) in scan.entries.iter().enumerate() {
        assert!(e.source.ends_with("-certificate.pem.crt"));
        let mac = Mac([2, 0, 0, 0, 0, u8::try_from(i).unwrap()]);
        std::fs::write(dir.path().join("dev.crt"), &e.certificate_pem).unwrap();
        std::fs::write(dir.path().join("dev.key"), e.key_pem.expose()).unwrap();
        assert_eq!(
            openssl(dir.path(), &["verify", "-CAfile", "ca.crt", "dev.crt"]).trim(),
            "dev.crt: OK"
        );
        assert_eq!(
            openssl(dir.path(), &["x509", "-in", "dev.crt", "-noout", "-pubkey"]),
            openssl(dir.path(), &["pkey", "-in", "dev.key", "-pubout"])
        );
        let fp = openssl(
            dir.path(),
            &[
                "x509",
                "-in",
                "dev.crt",
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        );
        let want = fp
            .trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_ascii_lowercase();
        assert_eq!(
            e.fingerprint, want,
            "fingerprint = SHA-256 of the DER, as openssl prints it"
        );
        let _ = mac;
    }
}

#[test]
fn the_ca_key_never_shows_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_ca(dir.path(), "p256");
    let m = minter(&cert, &key, KeyType::P256);
    let shown = format!("{m:?} {:?} {m:#?}", m.ca());
    let key_text = std::fs::read_to_string(&key).unwrap();
    for line in key_text.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !shown.contains(line),
            "CA key material in Debug output: {shown}"
        );
    }
    assert!(shown.contains("ACME Fleet CA"), "{shown}");
}
