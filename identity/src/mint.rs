//! The fleet CA: mints one device certificate per allocation.
//!
//! Built on RustCrypto's `x509-cert` certificate builder with the `p256`, `p384` and `rsa`
//! signers (all already used by the compiler to check certificates): pure Rust, no C library,
//! and the issuer name and authority key identifier are copied byte for byte from the CA
//! certificate, so chains verify with OpenSSL and mbedTLS alike. ECDSA signatures are
//! deterministic (RFC 6979); the store keeps every minted certificate and key, so a re-plugged
//! board gets the same bytes (see `docs/identity.md` for this choice and the threat model).
//!
//! A device certificate has: version 3; a random 127-bit serial number; validity from one hour
//! before issue (clock skew) for `validity-days`; the subject template filled with the device's
//! serial and MAC (RFC 4514-escaped); basicConstraints cA=false (critical); keyUsage
//! digitalSignature (+ keyEncipherment for RSA) (critical); extendedKeyUsage clientAuth; a
//! subject key identifier (SHA-1 of the public key) and the CA's key identifier.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::{Duration, SystemTime};

use der::referenced::OwnedToRef as _;
use der::{Decode as _, Encode as _, EncodePem as _};
use espfleet_compiler::identity::{Fields, Mac, TextTemplate};
use espfleet_compiler::manifest::identity::{KeyType, MintPlan, rfc4514_escape};
use espfleet_compiler::secret::Secret;
use pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use x509_cert::Certificate;
use x509_cert::builder::{Builder as _, CertificateBuilder, Profile};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

/// Why a certificate could not be minted. Messages name files and algorithms, never key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum MintError {
    /// A CA file could not be read.
    #[error("cannot read {path}: {reason}")]
    #[diagnostic(
        code(espfleet::identity::ca_unreadable),
        help(
            "the service user must be able to read the fleet CA certificate and key (keep the key mode 0600)"
        )
    )]
    CaUnreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The CA certificate or key does not parse, or they do not belong together.
    #[error("fleet CA unusable: {reason}")]
    #[diagnostic(
        code(espfleet::identity::ca_invalid),
        help(
            "give the fleet CA's certificate and its unencrypted private key (RSA, P-256 or P-384), PEM or DER"
        )
    )]
    CaInvalid {
        /// What is wrong.
        reason: String,
    },
    /// The subject does not make a distinguished name for this device.
    #[error("subject `{subject}` is not a distinguished name")]
    #[diagnostic(
        code(espfleet::identity::subject_invalid),
        help("write attribute=value pairs separated by commas: \"CN={{serial}},O=ACME\"")
    )]
    SubjectInvalid {
        /// The filled-in subject.
        subject: String,
    },
    /// The random number generator failed.
    #[error("no randomness for a new key: {reason}")]
    #[diagnostic(code(espfleet::identity::rng_failed), help("check /dev/urandom"))]
    RngFailed {
        /// The error.
        reason: String,
    },
    /// Building or signing the certificate failed.
    #[error("signing the device certificate failed: {reason}")]
    #[diagnostic(
        code(espfleet::identity::sign_failed),
        help("check the fleet CA certificate and key")
    )]
    SignFailed {
        /// The builder's message.
        reason: String,
    },
}

fn invalid(reason: impl Into<String>) -> MintError {
    MintError::CaInvalid {
        reason: reason.into(),
    }
}

fn sign_failed(e: impl std::fmt::Display) -> MintError {
    MintError::SignFailed {
        reason: e.to_string(),
    }
}

/// Makes device credentials for the store: the key first (outside the store's transaction, as
/// RSA key generation is slow), then the certificate once the serial is known.
pub trait Minter: Send + Sync {
    /// A fresh private key.
    fn new_key(&self) -> Result<NewKey, MintError>;
    /// The certificate (PEM) of `key` for the device `mac` with serial number `serial`.
    fn issue(&self, key: &NewKey, mac: Mac, serial: &str) -> Result<String, MintError>;
}

/// A freshly made device key: PKCS#8 PEM, and its public half (kept so that issuing the
/// certificate does not derive it again).
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The private key, PKCS#8 PEM.
    pub pem: Secret<String>,
    public_key: SubjectPublicKeyInfoOwned,
}

impl NewKey {
    /// Wraps an existing private key (PEM or DER; PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(pem: Secret<String>) -> Result<Self, MintError> {
        let public_key = public_key_of(&pem)?;
        Ok(NewKey { pem, public_key })
    }

    /// The public key.
    pub fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public_key
    }
}

/// A CA private key that can sign.
enum CaSigner {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>),
}

/// A fleet CA: its certificate and its private key.
pub struct FleetCa {
    cert: Certificate,
    /// The CA's key identifier (its subjectKeyIdentifier, else SHA-1 of its public key).
    key_id: Vec<u8>,
    signer: CaSigner,
}

impl std::fmt::Debug for FleetCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetCa")
            .field("subject", &self.cert.tbs_certificate.subject.to_string())
            .finish_non_exhaustive()
    }
}

fn pem_blocks(bytes: &[u8]) -> Vec<(String, Secret<Vec<u8>>)> {
    match pem::parse_many(bytes) {
        Ok(blocks) if !blocks.is_empty() => blocks
            .into_iter()
            .map(|b| (b.tag().to_owned(), Secret::new(b.into_contents())))
            .collect(),
        _ => vec![(String::new(), Secret::new(bytes.to_vec()))],
    }
}

fn signer_from_key(bytes: &[u8]) -> Result<CaSigner, MintError> {
    for (label, der) in pem_blocks(bytes) {
        let der = der.expose();
        let found = match label.as_str() {
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(der)
                .map(|k| CaSigner::P256(k.into()))
                .or_else(|_| p384::SecretKey::from_sec1_der(der).map(|k| CaSigner::P384(k.into())))
                .ok(),
            "RSA PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs1_der(der)
                .ok()
                .map(|k| CaSigner::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k)))),
            "PRIVATE KEY" | "" => p256::SecretKey::from_pkcs8_der(der)
                .map(|k| CaSigner::P256(k.into()))
                .or_else(|_| p384::SecretKey::from_pkcs8_der(der).map(|k| CaSigner::P384(k.into())))
                .ok()
                .or_else(|| {
                    rsa::RsaPrivateKey::from_pkcs8_der(der)
                        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_der(der))
                        .ok()
                        .map(|k| CaSigner::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k))))
                })
                .or_else(|| {
                    p256::SecretKey::from_sec1_der(der)
                        .map(|k| CaSigner::P256(k.into()))
                        .ok()
                }),
            _ => None,
        };
        if let Some(s) = found {
            return Ok(s);
        }
    }
    Err(invalid(
        "the CA key is not an unencrypted RSA, P-256 or P-384 private key",
    ))
}

impl CaSigner {
    fn public_key_der(&self) -> Result<Vec<u8>, MintError> {
        let doc = match self {
            CaSigner::P256(k) => k.verifying_key().to_public_key_der(),
            CaSigner::P384(k) => k.verifying_key().to_public_key_der(),
            CaSigner::Rsa(k) => signature::Keypair::verifying_key(&**k).to_public_key_der(),
        };
        doc.map(|d| d.as_bytes().to_vec())
            .map_err(|e| invalid(e.to_string()))
    }
}

/// Reads a CA file with the bounds every input has (a regular file, at most 1 MiB).
fn read(path: &Path) -> Result<Vec<u8>, MintError> {
    espfleet_compiler::input::read(path, espfleet_compiler::input::InputKind::CERTIFICATE).map_err(
        |e| MintError::CaUnreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    )
}

impl FleetCa {
    /// Loads the CA certificate and key files (PEM or DER) and checks that they belong together.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, MintError> {
        let cert = read(cert_path)?;
        let key = Secret::new(read(key_path)?);
        Self::from_bytes(&cert, key.expose())
    }

    /// [`FleetCa::load`] from bytes.
    pub fn from_bytes(cert: &[u8], key: &[u8]) -> Result<Self, MintError> {
        let cert = pem_blocks(cert)
            .into_iter()
            .find_map(|(label, der)| {
                (label.is_empty() || label == "CERTIFICATE")
                    .then(|| Certificate::from_der(der.expose()).ok())
                    .flatten()
            })
            .ok_or_else(|| invalid("the CA certificate is not a PEM or DER certificate"))?;
        let signer = signer_from_key(key)?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| invalid(e.to_string()))?;
        if signer.public_key_der()? != spki {
            return Err(invalid("the CA key is not the key of the CA certificate"));
        }
        let mut key_id = None;
        for ext in cert.tbs_certificate.extensions.iter().flatten() {
            if ext.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER {
                key_id = SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes())
                    .ok()
                    .map(|s| s.0.as_bytes().to_vec());
            }
        }
        let key_id = match key_id {
            Some(k) => k,
            None => SubjectKeyIdentifier::try_from(
                cert.tbs_certificate.subject_public_key_info.owned_to_ref(),
            )
            .map_err(|e| invalid(e.to_string()))?
            .0
            .as_bytes()
            .to_vec(),
        };
        Ok(FleetCa {
            cert,
            key_id,
            signer,
        })
    }

    /// A new self-signed CA (for tests, benchmarks and trying espfleet out): its certificate
    /// PEM, and its key (PKCS#8 PEM).
    pub fn create_self_signed(
        subject: &str,
        key_type: KeyType,
        validity_days: u32,
    ) -> Result<(Self, String, Secret<String>), MintError> {
        let key = new_key(key_type)?.pem;
        let signer = signer_from_key(key.expose().as_bytes())?;
        let name = Name::from_str(subject).map_err(|_| MintError::SubjectInvalid {
            subject: subject.to_owned(),
        })?;
        let spki =
            SubjectPublicKeyInfoOwned::from_der(&signer.public_key_der()?).map_err(sign_failed)?;
        let now = SystemTime::now();
        let validity = validity(now, validity_days)?;
        let serial = random_serial()?;
        let pem = match &signer {
            CaSigner::P256(s) => {
                build_root::<_, p256::ecdsa::DerSignature>(s, serial, validity, name, spki)
            }
            CaSigner::P384(s) => {
                build_root::<_, p384::ecdsa::DerSignature>(s, serial, validity, name, spki)
            }
            CaSigner::Rsa(s) => {
                build_root::<_, rsa::pkcs1v15::Signature>(&**s, serial, validity, name, spki)
            }
        }?;
        let ca = FleetCa::from_bytes(pem.as_bytes(), key.expose().as_bytes())?;
        Ok((ca, pem, key))
    }

    /// The CA subject (RFC 4514).
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> Result<String, MintError> {
        self.cert.to_pem(LineEnding::LF).map_err(sign_failed)
    }

    /// A device certificate (PEM) for the public half of `key`.
    pub fn issue(
        &self,
        key: &NewKey,
        subject: &str,
        validity_days: u32,
        key_type_rsa: bool,
    ) -> Result<String, MintError> {
        let spki = key.public_key.clone();
        let name = Name::from_str(subject).map_err(|_| MintError::SubjectInvalid {
            subject: subject.to_owned(),
        })?;
        let validity = validity(SystemTime::now(), validity_days)?;
        let serial = random_serial()?;
        let issuer = self.cert.tbs_certificate.subject.clone();
        let mut usages = KeyUsages::DigitalSignature.into();
        if key_type_rsa {
            usages |= KeyUsages::KeyEncipherment;
        }
        let exts = LeafExtensions {
            usages: KeyUsage(usages),
            ski: SubjectKeyIdentifier::try_from(spki.owned_to_ref()).map_err(sign_failed)?,
            aki: AuthorityKeyIdentifier {
                key_identifier: Some(
                    der::asn1::OctetString::new(self.key_id.clone()).map_err(sign_failed)?,
                ),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        };
        match &self.signer {
            CaSigner::P256(s) => build_leaf::<_, p256::ecdsa::DerSignature>(
                s, serial, validity, name, spki, issuer, &exts,
            ),
            CaSigner::P384(s) => build_leaf::<_, p384::ecdsa::DerSignature>(
                s, serial, validity, name, spki, issuer, &exts,
            ),
            CaSigner::Rsa(s) => build_leaf::<_, rsa::pkcs1v15::Signature>(
                &**s, serial, validity, name, spki, issuer, &exts,
            ),
        }
    }
}

struct LeafExtensions {
    usages: KeyUsage,
    ski: SubjectKeyIdentifier,
    aki: AuthorityKeyIdentifier,
}

fn build_leaf<S, Sig>(
    signer: &S,
    serial: SerialNumber,
    validity: Validity,
    subject: Name,
    spki: SubjectPublicKeyInfoOwned,
    issuer: Name,
    exts: &LeafExtensions,
) -> Result<String, MintError>
where
    S: signature::Keypair + spki::DynSignatureAlgorithmIdentifier + signature::Signer<Sig>,
    S::VerifyingKey: spki::EncodePublicKey,
    Sig: spki::SignatureBitStringEncoding,
{
    let mut b = CertificateBuilder::new(
        Profile::Manual {
            issuer: Some(issuer),
        },
        serial,
        validity,
        subject,
        spki,
        signer,
    )
    .map_err(sign_failed)?;
    b.add_extension(&BasicConstraints {
        ca: false,
        path_len_constraint: None,
    })
    .map_err(sign_failed)?;
    b.add_extension(&exts.usages).map_err(sign_failed)?;
    b.add_extension(&ExtendedKeyUsage(vec![
        const_oid::db::rfc5280::ID_KP_CLIENT_AUTH,
    ]))
    .map_err(sign_failed)?;
    b.add_extension(&exts.ski).map_err(sign_failed)?;
    b.add_extension(&exts.aki).map_err(sign_failed)?;
    let cert = b.build::<Sig>().map_err(sign_failed)?;
    cert.to_pem(LineEnding::LF).map_err(sign_failed)
}

fn build_root<S, Sig>(
    signer: &S,
    serial: SerialNumber,
    validity: Validity,
    subject: Name,
    spki: SubjectPublicKeyInfoOwned,
) -> Result<String, MintError>
where
    S: signature::Keypair + spki::DynSignatureAlgorithmIdentifier + signature::Signer<Sig>,
    S::VerifyingKey: spki::EncodePublicKey,
    Sig: spki::SignatureBitStringEncoding,
{
    let b = CertificateBuilder::new(Profile::Root, serial, validity, subject, spki, signer)
        .map_err(sign_failed)?;
    let cert = b.build::<Sig>().map_err(sign_failed)?;
    cert.to_pem(LineEnding::LF).map_err(sign_failed)
}

fn validity(now: SystemTime, days: u32) -> Result<Validity, MintError> {
    // Whole seconds: X.509 times have no fractions.
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(sign_failed)?
        .as_secs();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let not_before = now - Duration::from_secs(3600);
    let not_after = now + Duration::from_secs(u64::from(days) * 86_400);
    Ok(Validity {
        not_before: Time::try_from(not_before).map_err(sign_failed)?,
        not_after: Time::try_from(not_after).map_err(sign_failed)?,
    })
}

fn random_bytes<const N: usize>() -> Result<[u8; N], MintError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| MintError::RngFailed {
        reason: e.to_string(),
    })?;
    Ok(b)
}

/// 127 random bits, positive, with no leading zero octet (RFC 5280 4.1.2.2: at most 20 octets).
fn random_serial() -> Result<SerialNumber, MintError> {
    let mut b = random_bytes::<16>()?;
    b[0] = (b[0] & 0x7f) | 0x40;
    SerialNumber::new(&b).map_err(sign_failed)
}

/// A fresh private key of `key_type`.
pub fn new_key(key_type: KeyType) -> Result<NewKey, MintError> {
    let (pem, public) = match key_type {
        KeyType::P256 => {
            // A uniformly random scalar: retry the (≈2⁻³² likely) out-of-range draws.
            let key = loop {
                let b = Secret::new(random_bytes::<32>()?.to_vec());
                if let Ok(k) = p256::SecretKey::from_slice(b.expose()) {
                    break k;
                }
            };
            // The public key once (a scalar multiplication), for both encodings.
            let public = key.public_key();
            (
                p256_pkcs8_pem(&key, &public)?,
                public.to_public_key_der().map_err(sign_failed)?,
            )
        }
        KeyType::Rsa2048 => {
            let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).map_err(sign_failed)?;
            (
                key.to_pkcs8_pem(LineEnding::LF).map_err(sign_failed)?,
                key.to_public_key()
                    .to_public_key_der()
                    .map_err(sign_failed)?,
            )
        }
    };
    Ok(NewKey {
        pem: Secret::new(pem.as_str().to_owned()),
        public_key: SubjectPublicKeyInfoOwned::from_der(public.as_bytes()).map_err(sign_failed)?,
    })
}

/// PKCS#8 PEM of a P-256 key whose public half is already known: the encoding
/// `p256::SecretKey::to_pkcs8_pem` makes (RFC 5915 `ECPrivateKey` with the public key, no
/// parameters, inside RFC 5208 `PrivateKeyInfo` with the curve as algorithm parameter), without
/// deriving the public key a second time.
fn p256_pkcs8_pem(
    key: &p256::SecretKey,
    public: &p256::PublicKey,
) -> Result<zeroize::Zeroizing<String>, MintError> {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    let scalar = zeroize::Zeroizing::new(key.to_bytes());
    let point = public.to_encoded_point(false);
    let ec = sec1::EcPrivateKey {
        private_key: scalar.as_slice(),
        parameters: None,
        public_key: Some(point.as_bytes()),
    };
    let ec_der = zeroize::Zeroizing::new(ec.to_der().map_err(sign_failed)?);
    let curve = const_oid::db::rfc5912::SECP_256_R_1;
    let info = pkcs8::PrivateKeyInfo {
        algorithm: pkcs8::AlgorithmIdentifierRef {
            oid: const_oid::db::rfc5912::ID_EC_PUBLIC_KEY,
            parameters: Some((&curve).into()),
        },
        private_key: &ec_der,
        public_key: None,
    };
    let der = zeroize::Zeroizing::new(info.to_der().map_err(sign_failed)?);
    Ok(zeroize::Zeroizing::new(pem::encode_config(
        &pem::Pem::new("PRIVATE KEY", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )))
}

/// The SubjectPublicKeyInfo of a private key (PEM or DER; PKCS#8, PKCS#1 or SEC1).
pub fn public_key_of(key: &Secret<String>) -> Result<SubjectPublicKeyInfoOwned, MintError> {
    let der = signer_from_key(key.expose().as_bytes())
        .map_err(|_| invalid("the device key does not parse"))?
        .public_key_der()?;
    SubjectPublicKeyInfoOwned::from_der(&der).map_err(sign_failed)
}

/// The minter of one manifest: its fleet CA, subject template, key type and validity.
pub struct PlanMinter {
    ca: FleetCa,
    subject: TextTemplate,
    key_type: KeyType,
    validity_days: u32,
}

impl std::fmt::Debug for PlanMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanMinter")
            .field("ca", &self.ca)
            .field("subject", &self.subject.as_str())
            .field("key_type", &self.key_type)
            .field("validity_days", &self.validity_days)
            .finish()
    }
}

impl PlanMinter {
    /// Loads the manifest's fleet CA (the key file is read now, and never kept anywhere but in
    /// this value).
    pub fn load(plan: &MintPlan) -> Result<Self, MintError> {
        Ok(Self::new(
            FleetCa::load(&plan.ca_cert, &plan.ca_key)?,
            plan.subject.clone(),
            plan.key_type,
            plan.validity_days,
        ))
    }

    /// A minter from parts.
    pub fn new(ca: FleetCa, subject: TextTemplate, key_type: KeyType, validity_days: u32) -> Self {
        PlanMinter {
            ca,
            subject,
            key_type,
            validity_days,
        }
    }

    /// The CA.
    pub fn ca(&self) -> &FleetCa {
        &self.ca
    }
}

impl Minter for PlanMinter {
    fn new_key(&self) -> Result<NewKey, MintError> {
        new_key(self.key_type)
    }

    fn issue(&self, key: &NewKey, mac: Mac, serial: &str) -> Result<String, MintError> {
        let fields = Fields {
            mac,
            serial: serial.to_owned(),
        };
        let subject = self.subject.render_with(&fields, rfc4514_escape);
        self.ca.issue(
            key,
            &subject,
            self.validity_days,
            self.key_type == KeyType::Rsa2048,
        )
    }
}

#[cfg(test)]
mod tests {
    use pkcs8::EncodePrivateKey as _;

    #[test]
    fn our_p256_pkcs8_is_the_p256_crates_encoding() {
        for _ in 0..8 {
            let key = super::new_key(super::KeyType::P256).unwrap();
            let sk = <p256::SecretKey as pkcs8::DecodePrivateKey>::from_pkcs8_pem(key.pem.expose())
                .unwrap();
            let theirs = sk.to_pkcs8_pem(pkcs8::LineEnding::LF).unwrap();
            assert_eq!(key.pem.expose().as_str(), theirs.as_str());
        }
    }
}
