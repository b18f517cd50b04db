//! Certificate/key checks on ESP-AT's example PKI data. The expected relations were found with
//! OpenSSL (an independent tool), see `tests/data/esp_at/README.md`:
//! `openssl verify -no_check_time -partial_chain -CAfile <ca> <cert>` and comparing
//! `openssl pkey -pubout` with `openssl x509 -pubkey`.

mod esp_at_support;

use std::time::{Duration, SystemTime};

use esp_at_support::data;
use espfleet_compiler::esp_at::pki::check::{
    self, CertInfo, KeyInfo, PublicKey, SignatureCheck, Validity,
};

fn material(rel: &str) -> Vec<check::Material> {
    check::parse(&fs_err::read(data().join(rel)).unwrap()).unwrap()
}

fn cert(rel: &str) -> CertInfo {
    let m = material(rel);
    assert_eq!(m.len(), 1, "{rel}");
    m[0].certificate()
        .unwrap_or_else(|| panic!("{rel} is not a certificate"))
        .clone()
}

fn key(rel: &str) -> KeyInfo {
    let m = material(rel);
    m[0].key()
        .unwrap_or_else(|| panic!("{rel} is not a key"))
        .clone()
}

const M: &str = "raw_data_master";

#[test]
fn tells_certificates_from_keys_and_matches_them() {
    let pairs = [
        ("server_key/server.key", "server_cert/server_cert.crt"),
        (
            "client_key/client_key_00.key",
            "client_cert/client_cert_00.crt",
        ),
        (
            "client_key/client_key_01.key",
            "client_cert/client_cert_01.crt",
        ),
        ("mqtt_key/mqtt_client.key", "mqtt_cert/mqtt_client.crt"),
        (
            "https_key/https_client_00.key",
            "https_cert/https_client_00.crt",
        ),
        (
            "https_key/https_client_01.key",
            "https_cert/https_client_01.crt",
        ),
        ("wss_key/wss_client_00.key", "wss_cert/wss_client_00.crt"),
        ("wss_key/wss_client_01.key", "wss_cert/wss_client_01.crt"),
        (
            "wpa_ent_key/wpa_ent_client.key",
            "wpa_ent_cert/wpa_ent_client.crt",
        ),
    ];
    for (k, c) in pairs {
        let (k, c) = (key(&format!("{M}/{k}")), cert(&format!("{M}/{c}")));
        assert!(check::key_matches(&k, &c), "{c:?}");
    }
    // Formats: PKCS#1 RSA, PKCS#8 RSA, SEC1 P-384.
    assert_eq!(key(&format!("{M}/server_key/server.key")).format, "PKCS#1");
    assert_eq!(
        key(&format!("{M}/https_key/https_client_00.key")).format,
        "PKCS#8"
    );
    let ec = key(&format!("{M}/wpa_ent_key/wpa_ent_client.key"));
    assert_eq!(
        (ec.format, ec.public_key.algorithm().as_str()),
        ("SEC1", "P-384")
    );
    assert_eq!(
        key(&format!("{M}/server_key/server.key"))
            .public_key
            .algorithm(),
        "RSA-2048"
    );
    // Wrong pairs do not match.
    assert!(!check::key_matches(
        &key(&format!("{M}/client_key/client_key_00.key")),
        &cert(&format!("{M}/client_cert/client_cert_01.crt"))
    ));
    assert!(!check::key_matches(
        &key(&format!("{M}/server_key/server.key")),
        &cert(&format!("{M}/mqtt_cert/mqtt_client.crt"))
    ));
}

#[test]
fn ca_signatures_match_openssl() {
    let c = |rel: &str| cert(&format!("{M}/{rel}"));
    // Verified relations (signature checked cryptographically).
    for (leaf, ca) in [
        ("client_cert/client_cert_00.crt", "server_ca/server_ca.crt"),
        ("client_cert/client_cert_01.crt", "server_ca/server_ca.crt"),
        ("server_cert/server_cert.crt", "client_ca/client_ca_00.crt"),
        (
            "wpa_ent_cert/wpa_ent_client.crt",
            "wpa_ent_ca/wpa_ent_ca.pem",
        ),
        // Self-signed roots (sha1WithRSAEncryption and sha256WithRSAEncryption).
        ("server_ca/server_ca.crt", "server_ca/server_ca.crt"),
        ("client_ca/client_ca_01.crt", "client_ca/client_ca_01.crt"),
        ("mqtt_ca/mqtt_ca.crt", "mqtt_ca/mqtt_ca.crt"),
        ("wpa_ent_ca/wpa_ent_ca.pem", "wpa_ent_ca/wpa_ent_ca.pem"),
    ] {
        assert_eq!(
            check::signed_by(&c(leaf), &c(ca)),
            SignatureCheck::Verified,
            "{leaf} by {ca}"
        );
    }
    // client_ca_01 has the same subject name as client_ca_00 but another key.
    assert_eq!(
        check::signed_by(
            &c("server_cert/server_cert.crt"),
            &c("client_ca/client_ca_01.crt")
        ),
        SignatureCheck::BadSignature
    );
    // ESP-AT's MQTT client certificate names "Root CA" as issuer but mqtt_ca did not sign it.
    assert_eq!(
        check::signed_by(&c("mqtt_cert/mqtt_client.crt"), &c("mqtt_ca/mqtt_ca.crt")),
        SignatureCheck::BadSignature
    );
    // HTTPS/WSS client certificates carry an authority key id that no shipped CA has.
    assert_eq!(
        check::signed_by(
            &c("https_cert/https_client_00.crt"),
            &c("https_ca/https_ca_00.crt")
        ),
        SignatureCheck::KeyIdMismatch
    );
    assert_eq!(
        check::signed_by(&c("wss_cert/wss_client_01.crt"), &c("wss_ca/wss_ca_01.crt")),
        SignatureCheck::KeyIdMismatch
    );
    assert!(matches!(
        check::signed_by(
            &c("server_cert/server_cert.crt"),
            &c("server_ca/server_ca.crt")
        ),
        SignatureCheck::IssuerMismatch { .. }
    ));
}

#[test]
fn pem_with_surrounding_text_parses() {
    // v2.4.0.0's wpa2_client.crt starts with an OpenSSL text dump before the PEM block.
    let leaf = cert("raw_data_v2.4.0.0/wpa2_cert/wpa2_client.crt");
    let ca = cert("raw_data_v2.4.0.0/wpa2_ca/wpa2_ca.pem");
    assert_eq!(check::signed_by(&leaf, &ca), SignatureCheck::Verified);
    assert!(check::key_matches(
        &key("raw_data_v2.4.0.0/wpa2_key/wpa2_client.key"),
        &leaf
    ));
    assert!(
        leaf.subject.contains("CN=user@example.com"),
        "{}",
        leaf.subject
    );
}

#[test]
fn validity_is_a_warning_value() {
    let c = cert(&format!("{M}/server_ca/server_ca.crt")); // 2019-06-21 .. 2029-06-18
    let t = |unix: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(unix);
    assert!(matches!(
        check::validity(&c, t(1_500_000_000)),
        Validity::NotYetValid { .. }
    )); // 2017
    assert!(matches!(
        check::validity(&c, t(1_800_000_000)),
        Validity::Valid { .. }
    )); // 2027
    assert!(matches!(
        check::validity(&c, t(1_900_000_000)),
        Validity::Expired { .. }
    )); // 2030
    assert_eq!(c.is_ca, Some(true));
}

#[test]
fn der_input_is_accepted() {
    let pem_text =
        fs_err::read_to_string(data().join(M).join("server_cert/server_cert.crt")).unwrap();
    let der = pem::parse(pem_text).unwrap().into_contents();
    let from_der = check::parse(&der).unwrap();
    assert_eq!(
        from_der[0].certificate().unwrap(),
        &cert(&format!("{M}/server_cert/server_cert.crt"))
    );
    assert!(matches!(
        from_der[0].certificate().unwrap().public_key,
        PublicKey::Rsa(_)
    ));
}
