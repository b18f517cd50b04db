//! Certificate and key checks for the PKI items a manifest names, before they are baked into
//! an image: is this a certificate or a key, does the key belong to the certificate, did the
//! CA sign the certificate, is the certificate valid now.
//!
//! Pure Rust (RustCrypto `x509-cert`, `rsa`, `p256`, `p384`). Inputs are PEM (any number of
//! blocks, text around them is ignored, as in ESP-AT's `wpa2_client.crt`) or DER.
//!
//! What "signed by" means here, explicitly: [`signed_by`] first compares the certificate's
//! issuer name with the CA's subject name and, when both carry them, the authority key id with
//! the CA's subject key id; then it verifies the signature cryptographically for
//! RSA PKCS#1 v1.5 with SHA-1/SHA-256/SHA-384/SHA-512 and ECDSA P-256/P-384 with
//! SHA-256/SHA-384. For any other algorithm it reports [`SignatureCheck::NotVerified`] with the
//! name/key-id result, never a silent pass.
//!
//! Errors and `Debug` output never contain key material: private keys are dropped as soon as
//! their public half is derived, and errors name only labels, algorithms and positions.

use std::time::{Duration, SystemTime};

use der::{Decode as _, Encode as _};
use pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::signature::Verifier as _;
use rsa::signature::hazmat::PrehashVerifier as _;
use sha2::Digest as _;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, BasicConstraints, SubjectKeyIdentifier};

/// Errors reading certificates and keys. None of them carries key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum CheckError {
    /// Neither PEM with a known label nor DER of a certificate or key.
    #[error("not a certificate or private key (PEM or DER)")]
    #[diagnostic(
        code(espfleet::esp_at::pki::unrecognised),
        help(
            "give a PEM file (-----BEGIN CERTIFICATE----- / PRIVATE KEY / RSA PRIVATE KEY / EC PRIVATE KEY) or its DER form"
        )
    )]
    Unrecognised,
    /// A PEM block whose label we do not handle.
    #[error("PEM block {index} is `{label}`, not a certificate or private key")]
    #[diagnostic(
        code(espfleet::esp_at::pki::pem_label),
        help("ESP-AT stores certificates and private keys; convert or remove other blocks")
    )]
    PemLabel {
        /// 0-based block.
        index: usize,
        /// Its label.
        label: String,
    },
    /// A PEM block with a known label that does not parse.
    #[error("PEM block {index} (`{label}`) is malformed: {reason}")]
    #[diagnostic(
        code(espfleet::esp_at::pki::malformed),
        help(
            "re-export the certificate or key; encrypted keys are not supported (ESP-AT cannot use them either)"
        )
    )]
    Malformed {
        /// 0-based block.
        index: usize,
        /// Its label.
        label: String,
        /// What failed (a parser message, never key bytes).
        reason: String,
    },
    /// A PEM envelope that does not parse.
    #[error("PEM text is malformed: {0}")]
    #[diagnostic(
        code(espfleet::esp_at::pki::pem),
        help("check the BEGIN/END lines and the base64 body")
    )]
    Pem(String),
}

/// A public key in comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA.
    Rsa(rsa::RsaPublicKey),
    /// ECDSA on P-256.
    P256(p256::PublicKey),
    /// ECDSA on P-384.
    P384(p384::PublicKey),
    /// Another algorithm: the SubjectPublicKeyInfo DER, compared byte for byte.
    Other(Vec<u8>),
}

impl PublicKey {
    fn from_spki_der(der: &[u8]) -> Self {
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(der) {
            PublicKey::Rsa(k)
        } else if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
            PublicKey::P256(k)
        } else if let Ok(k) = p384::PublicKey::from_public_key_der(der) {
            PublicKey::P384(k)
        } else {
            PublicKey::Other(der.to_vec())
        }
    }

    /// A short algorithm description (`RSA-2048`, `P-256`).
    pub fn algorithm(&self) -> String {
        match self {
            PublicKey::Rsa(k) => format!("RSA-{}", rsa::traits::PublicKeyParts::n(k).bits()),
            PublicKey::P256(_) => "P-256".to_owned(),
            PublicKey::P384(_) => "P-384".to_owned(),
            PublicKey::Other(_) => "other".to_owned(),
        }
    }
}

/// A parsed certificate: what the checks need, plus its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name (RFC 4514 text).
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Basic constraints `cA` (None when the extension is absent).
    pub is_ca: Option<bool>,
    /// Subject key identifier extension.
    pub subject_key_id: Option<Vec<u8>>,
    /// Authority key identifier extension (key id part).
    pub authority_key_id: Option<Vec<u8>>,
    /// The subject public key.
    pub public_key: PublicKey,
    /// Signature algorithm OID (dotted).
    pub signature_algorithm: String,
    /// The certificate DER.
    pub der: Vec<u8>,
}

/// A parsed private key, reduced to its public half and algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The public key derived from the private key.
    pub public_key: PublicKey,
    /// Container form (`PKCS#1`, `PKCS#8`, `SEC1`).
    pub format: &'static str,
}

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// An X.509 certificate.
    Certificate(Box<CertInfo>),
    /// A private key.
    PrivateKey(KeyInfo),
}

impl Material {
    /// The certificate, if this is one.
    pub fn certificate(&self) -> Option<&CertInfo> {
        match self {
            Material::Certificate(c) => Some(c),
            Material::PrivateKey(_) => None,
        }
    }

    /// The key, if this is one.
    pub fn key(&self) -> Option<&KeyInfo> {
        match self {
            Material::PrivateKey(k) => Some(k),
            Material::Certificate(_) => None,
        }
    }
}

fn cert_from_der(der: &[u8]) -> Result<CertInfo, String> {
    let cert = Certificate::from_der(der).map_err(|e| e.to_string())?;
    let tbs = &cert.tbs_certificate;
    let mut info = CertInfo {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        not_before: tbs.validity.not_before.to_system_time(),
        not_after: tbs.validity.not_after.to_system_time(),
        is_ca: None,
        subject_key_id: None,
        authority_key_id: None,
        public_key: PublicKey::from_spki_der(
            &tbs.subject_public_key_info
                .to_der()
                .map_err(|e| e.to_string())?,
        ),
        signature_algorithm: cert.signature_algorithm.oid.to_string(),
        der: der.to_vec(),
    };
    for ext in tbs.extensions.iter().flatten() {
        let v = ext.extn_value.as_bytes();
        match ext.extn_id.to_string().as_str() {
            "2.5.29.14" => {
                info.subject_key_id = SubjectKeyIdentifier::from_der(v)
                    .ok()
                    .map(|s| s.0.as_bytes().to_vec());
            }
            "2.5.29.35" => {
                info.authority_key_id = AuthorityKeyIdentifier::from_der(v)
                    .ok()
                    .and_then(|a| a.key_identifier)
                    .map(|k| k.as_bytes().to_vec());
            }
            "2.5.29.19" => {
                info.is_ca = BasicConstraints::from_der(v).ok().map(|b| b.ca);
            }
            _ => {}
        }
    }
    Ok(info)
}

fn key_from_der(label: &str, der: &[u8]) -> Result<KeyInfo, String> {
    let spki = |r: Result<der::Document, pkcs8::spki::Error>| {
        r.map(|d| PublicKey::from_spki_der(d.as_bytes()))
            .map_err(|e| e.to_string())
    };
    match label {
        "RSA PRIVATE KEY" => {
            let k = rsa::RsaPrivateKey::from_pkcs1_der(der).map_err(|e| e.to_string())?;
            Ok(KeyInfo {
                public_key: spki(k.to_public_key().to_public_key_der())?,
                format: "PKCS#1",
            })
        }
        "EC PRIVATE KEY" => {
            if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
                return Ok(KeyInfo {
                    public_key: PublicKey::P256(k.public_key()),
                    format: "SEC1",
                });
            }
            let k = p384::SecretKey::from_sec1_der(der).map_err(|_| {
                "unsupported curve or malformed SEC1 key (P-256 and P-384 are supported)".to_owned()
            })?;
            Ok(KeyInfo {
                public_key: PublicKey::P384(k.public_key()),
                format: "SEC1",
            })
        }
        "PRIVATE KEY" => {
            if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
                return Ok(KeyInfo {
                    public_key: spki(k.to_public_key().to_public_key_der())?,
                    format: "PKCS#8",
                });
            }
            if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
                return Ok(KeyInfo {
                    public_key: PublicKey::P256(k.public_key()),
                    format: "PKCS#8",
                });
            }
            let k = p384::SecretKey::from_pkcs8_der(der)
                .map_err(|_| "unsupported algorithm or malformed PKCS#8 key (RSA, P-256 and P-384 are supported)".to_owned())?;
            Ok(KeyInfo {
                public_key: PublicKey::P384(k.public_key()),
                format: "PKCS#8",
            })
        }
        _ => Err(format!("unknown key label {label}")),
    }
}

/// Parses PEM (every block, text around blocks ignored) or, when there is no PEM block, DER.
pub fn parse(bytes: &[u8]) -> Result<Vec<Material>, CheckError> {
    let text = std::str::from_utf8(bytes)
        .ok()
        .filter(|t| t.contains("-----BEGIN "));
    let Some(text) = text else {
        if let Ok(c) = cert_from_der(bytes) {
            return Ok(vec![Material::Certificate(Box::new(c))]);
        }
        for label in ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"] {
            if let Ok(k) = key_from_der(label, bytes) {
                return Ok(vec![Material::PrivateKey(k)]);
            }
        }
        return Err(CheckError::Unrecognised);
    };
    let blocks = pem::parse_many(text).map_err(|e| CheckError::Pem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(CheckError::Unrecognised);
    }
    let mut out = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        let label = block.tag();
        let malformed = |reason: String| CheckError::Malformed {
            index,
            label: label.to_owned(),
            reason,
        };
        match label {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                out.push(Material::Certificate(Box::new(
                    cert_from_der(block.contents()).map_err(malformed)?,
                )));
            }
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                out.push(Material::PrivateKey(
                    key_from_der(label, block.contents()).map_err(malformed)?,
                ));
            }
            // OpenSSL writes curve parameters before SEC1 keys; they carry nothing we need.
            "EC PARAMETERS" => {}
            other => {
                return Err(CheckError::PemLabel {
                    index,
                    label: other.to_owned(),
                });
            }
        }
    }
    Ok(out)
}

/// Whether `key` is the private key of `cert` (public key equality).
pub fn key_matches(key: &KeyInfo, cert: &CertInfo) -> bool {
    key.public_key == cert.public_key
}

/// Validity of a certificate at some instant. Not-yet-valid and expired are warnings for the
/// caller to show, not errors: a board's clock, not the build machine's, decides at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Inside the window; `remaining` until `not_after`.
    Valid {
        /// Time left.
        remaining: Duration,
    },
    /// `not_before` is in the future.
    NotYetValid {
        /// Time until it becomes valid.
        starts_in: Duration,
    },
    /// `not_after` has passed.
    Expired {
        /// Time since it expired.
        since: Duration,
    },
}

/// The certificate's validity at `now`.
pub fn validity(cert: &CertInfo, now: SystemTime) -> Validity {
    if let Ok(d) = cert.not_before.duration_since(now) {
        if d > Duration::ZERO {
            return Validity::NotYetValid { starts_in: d };
        }
    }
    match now.duration_since(cert.not_after) {
        Ok(since) if since > Duration::ZERO => Validity::Expired { since },
        _ => Validity::Valid {
            remaining: cert.not_after.duration_since(now).unwrap_or_default(),
        },
    }
}

/// The result of [`signed_by`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Issuer name matches, key ids (when present) match and the signature verifies.
    Verified,
    /// The issuer name differs from the CA's subject.
    IssuerMismatch {
        /// Certificate's issuer.
        issuer: String,
        /// CA's subject.
        ca_subject: String,
    },
    /// Names match but the authority key id differs from the CA's subject key id.
    KeyIdMismatch,
    /// Names (and key ids) match but the signature does not verify with the CA's key.
    BadSignature,
    /// Names (and key ids) match; the algorithm is one we cannot verify, so only those were
    /// checked.
    NotVerified {
        /// Signature algorithm OID.
        algorithm: String,
    },
}

impl SignatureCheck {
    /// Whether the CA signed the certificate (cryptographically verified).
    pub fn is_verified(&self) -> bool {
        matches!(self, SignatureCheck::Verified)
    }
}

/// Whether `ca` signed `cert`: issuer/subject names, key ids, then the signature (see the
/// module documentation for the supported algorithms).
pub fn signed_by(cert: &CertInfo, ca: &CertInfo) -> SignatureCheck {
    if cert.issuer != ca.subject {
        return SignatureCheck::IssuerMismatch {
            issuer: cert.issuer.clone(),
            ca_subject: ca.subject.clone(),
        };
    }
    if let (Some(aki), Some(ski)) = (&cert.authority_key_id, &ca.subject_key_id) {
        if aki != ski {
            return SignatureCheck::KeyIdMismatch;
        }
    }
    match verify_signature(cert, ca) {
        Some(true) => SignatureCheck::Verified,
        Some(false) => SignatureCheck::BadSignature,
        None => SignatureCheck::NotVerified {
            algorithm: cert.signature_algorithm.clone(),
        },
    }
}

/// `Some(valid)` for supported algorithms, `None` otherwise.
fn verify_signature(cert: &CertInfo, ca: &CertInfo) -> Option<bool> {
    let parsed = Certificate::from_der(&cert.der).ok()?;
    let tbs = parsed.tbs_certificate.to_der().ok()?;
    let sig = parsed.signature.as_bytes()?;
    let rsa_verify = |f: &dyn Fn(&rsa::RsaPublicKey, &rsa::pkcs1v15::Signature) -> bool| match &ca
        .public_key
    {
        PublicKey::Rsa(k) => Some(rsa::pkcs1v15::Signature::try_from(sig).is_ok_and(|s| f(k, &s))),
        _ => Some(false),
    };
    macro_rules! rsa_with {
        ($h:ty) => {
            rsa_verify(&|k, s| {
                rsa::pkcs1v15::VerifyingKey::<$h>::new(k.clone())
                    .verify(&tbs, s)
                    .is_ok()
            })
        };
    }
    let ecdsa = |hash: &[u8]| match &ca.public_key {
        PublicKey::P256(k) => Some(p256::ecdsa::Signature::from_der(sig).is_ok_and(|s| {
            p256::ecdsa::VerifyingKey::from(k)
                .verify_prehash(hash, &s)
                .is_ok()
        })),
        PublicKey::P384(k) => Some(p384::ecdsa::Signature::from_der(sig).is_ok_and(|s| {
            p384::ecdsa::VerifyingKey::from(k)
                .verify_prehash(hash, &s)
                .is_ok()
        })),
        _ => Some(false),
    };
    match cert.signature_algorithm.as_str() {
        "1.2.840.113549.1.1.5" => rsa_with!(sha1::Sha1),
        "1.2.840.113549.1.1.11" => rsa_with!(sha2::Sha256),
        "1.2.840.113549.1.1.12" => rsa_with!(sha2::Sha384),
        "1.2.840.113549.1.1.13" => rsa_with!(sha2::Sha512),
        "1.2.840.10045.4.3.2" => ecdsa(&sha2::Sha256::digest(&tbs)),
        "1.2.840.10045.4.3.3" => ecdsa(&sha2::Sha384::digest(&tbs)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_unrecognised() {
        assert_eq!(parse(b"hello"), Err(CheckError::Unrecognised));
        assert!(matches!(
            parse(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
            Err(CheckError::PemLabel { .. })
        ));
        let err = parse(b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
            .unwrap_err();
        assert!(matches!(err, CheckError::Malformed { .. }));
        assert!(
            !err.to_string().contains("AAAA"),
            "errors must not echo key bytes"
        );
    }
}
