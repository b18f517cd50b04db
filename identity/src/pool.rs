//! Certificate pools: a folder of ready-made certificate/key pairs (as AWS IoT bulk registration
//! or a vendor delivers them), one pair per device.
//!
//! [`scan`] reads the folder (not recursively): every regular file up to [`MAX_FILE_SIZE`] bytes
//! holding PEM blocks (`CERTIFICATE`, `PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`) or a
//! DER certificate or PKCS#8 key. Certificates and keys are paired by public key, whatever the
//! files are called (AWS's `<id>-certificate.pem.crt` + `<id>-private.pem.key`, one combined
//! PEM per device, ...); `PUBLIC KEY` files are ignored. What cannot be paired is reported, not
//! imported. The pairs are then imported into the store
//! ([`crate::store::IdentityStore::import_pool`]), which hands each to one board.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use der::{Decode as _, Encode as _};
use espfleet_compiler::secret::Secret;
use serde::Serialize;
use x509_cert::Certificate;

use crate::store::{PoolEntry, fingerprint};

/// Largest file a pool may hold (a certificate chain and its key are a few kilobytes).
pub const MAX_FILE_SIZE: u64 = 64 * 1024;
/// Most files a pool folder may hold.
pub const MAX_FILES: usize = 200_000;

/// Why a pool folder cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum PoolError {
    /// The folder cannot be listed.
    #[error("cannot read the pool folder {dir}: {reason}")]
    #[diagnostic(
        code(espfleet::identity::pool_unreadable),
        help("check that the folder exists and that the service user may read it")
    )]
    Unreadable {
        /// The folder.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// More files than a pool may hold.
    #[error("the pool folder {dir} holds more than {MAX_FILES} files")]
    #[diagnostic(
        code(espfleet::identity::pool_too_large),
        help("split the pool into several folders (and manifests)")
    )]
    TooManyFiles {
        /// The folder.
        dir: PathBuf,
    },
}

/// Something in a pool folder that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolProblem {
    /// The file.
    pub file: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// The pairs found in a pool folder, and what was skipped.
#[derive(Debug, Default)]
pub struct PoolScan {
    /// One entry per certificate/key pair, in file-name order.
    pub entries: Vec<PoolEntry>,
    /// Files (or blocks) that were not imported.
    pub problems: Vec<PoolProblem>,
}

enum Item {
    Cert { der: Vec<u8>, spki: Vec<u8> },
    Key { pem: Secret<String>, spki: Vec<u8> },
}

fn items_of(bytes: &[u8]) -> Result<Vec<Item>, String> {
    let blocks = pem::parse_many(bytes).unwrap_or_default();
    let mut out = Vec::new();
    if blocks.is_empty() {
        // DER: a certificate or a PKCS#8 key.
        if let Ok(c) = Certificate::from_der(bytes) {
            let spki = c
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .map_err(|e| e.to_string())?;
            out.push(Item::Cert {
                der: bytes.to_vec(),
                spki,
            });
        } else if pkcs8::PrivateKeyInfo::from_der(bytes).is_ok() {
            let pem = Secret::new(pem::encode_config(
                &pem::Pem::new("PRIVATE KEY", bytes.to_vec()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            ));
            out.push(key_item(pem)?);
        } else {
            return Err("neither PEM nor a DER certificate or PKCS#8 key".to_owned());
        }
        return Ok(out);
    }
    for b in blocks {
        match b.tag() {
            "CERTIFICATE" => {
                let c = Certificate::from_der(b.contents())
                    .map_err(|e| format!("a CERTIFICATE block does not parse: {e}"))?;
                let spki = c
                    .tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .map_err(|e| e.to_string())?;
                out.push(Item::Cert {
                    der: b.contents().to_vec(),
                    spki,
                });
            }
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                let pem = Secret::new(pem::encode_config(
                    &b,
                    pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
                ));
                out.push(key_item(pem)?);
            }
            "PUBLIC KEY" | "RSA PUBLIC KEY" | "EC PARAMETERS" => {}
            "ENCRYPTED PRIVATE KEY" => {
                return Err(
                    "encrypted private keys are not supported (ESP-AT cannot use them)".to_owned(),
                );
            }
            other => return Err(format!("unexpected PEM block `{other}`")),
        }
    }
    Ok(out)
}

fn key_item(pem: Secret<String>) -> Result<Item, String> {
    let spki = crate::mint::public_key_of(&pem)
        .map_err(|_| {
            "a private key does not parse (RSA, P-256 and P-384 are supported)".to_owned()
        })?
        .to_der()
        .map_err(|e| e.to_string())?;
    Ok(Item::Key { pem, spki })
}

/// Public key → (file, certificate DER), in file order.
type CertsByKey = BTreeMap<Vec<u8>, Vec<(PathBuf, Vec<u8>)>>;
/// Public key → (file, private key PEM), in file order.
type KeysByKey = BTreeMap<Vec<u8>, Vec<(PathBuf, Secret<String>)>>;

/// Reads `dir` and pairs its certificates and keys.
pub fn scan(dir: &Path) -> Result<PoolScan, PoolError> {
    let unreadable = |e: std::io::Error| PoolError::Unreadable {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        files.push(entry.path());
        if files.len() > MAX_FILES {
            return Err(PoolError::TooManyFiles {
                dir: dir.to_path_buf(),
            });
        }
    }
    files.sort();
    let mut problems = Vec::new();
    let (certs, keys) = read_items(&files, &mut problems);
    let entries = pair(&certs, &keys, &mut problems);
    problems.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(PoolScan { entries, problems })
}

fn problem(problems: &mut Vec<PoolProblem>, file: &Path, reason: String) {
    problems.push(PoolProblem {
        file: file.to_path_buf(),
        reason,
    });
}

/// Reads every regular, visible, small enough file and sorts its blocks by public key.
fn read_items(files: &[PathBuf], problems: &mut Vec<PoolProblem>) -> (CertsByKey, KeysByKey) {
    let mut certs = CertsByKey::new();
    let mut keys = KeysByKey::new();
    for file in files {
        if file
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        // Follows symlinks: a link to a regular file is read, anything else is skipped.
        let meta = match std::fs::metadata(file) {
            Ok(m) => m,
            Err(e) => {
                problem(problems, file, format!("cannot be read: {e}"));
                continue;
            }
        };
        if !meta.is_file() {
            if !meta.is_dir() {
                problem(problems, file, "not a regular file".to_owned());
            }
            continue;
        }
        if meta.len() > MAX_FILE_SIZE {
            problem(
                problems,
                file,
                format!(
                    "{} bytes; pool files hold at most {MAX_FILE_SIZE}",
                    meta.len()
                ),
            );
            continue;
        }
        // Opened without blocking and checked again once open (a file swapped for a FIFO).
        let bytes = match espfleet_compiler::input::read(
            file,
            espfleet_compiler::input::InputKind::CERTIFICATE,
        ) {
            Ok(b) => Secret::new(b),
            Err(e) => {
                problem(problems, file, format!("cannot be read: {e}"));
                continue;
            }
        };
        match items_of(bytes.expose()) {
            Ok(items) => {
                for item in items {
                    match item {
                        Item::Cert { der, spki } => {
                            certs.entry(spki).or_default().push((file.clone(), der));
                        }
                        Item::Key { pem, spki } => {
                            keys.entry(spki).or_default().push((file.clone(), pem));
                        }
                    }
                }
            }
            Err(reason) => problem(problems, file, reason),
        }
    }
    (certs, keys)
}

/// One entry per certificate that has its key, in certificate file order.
fn pair(certs: &CertsByKey, keys: &KeysByKey, problems: &mut Vec<PoolProblem>) -> Vec<PoolEntry> {
    let now = std::time::SystemTime::now();
    let mut pairs: Vec<(PathBuf, PoolEntry)> = Vec::new();
    for (spki, cert_list) in certs {
        let Some(key_list) = keys.get(spki) else {
            for (f, _) in cert_list {
                problem(
                    problems,
                    f,
                    "a certificate without its private key in the pool".to_owned(),
                );
            }
            continue;
        };
        let (cert_file, der) = &cert_list[0];
        for (f, _) in cert_list.iter().skip(1) {
            problem(
                problems,
                f,
                format!(
                    "a second certificate for the key of {}; one pair per device",
                    cert_file.display()
                ),
            );
        }
        for (f, _) in key_list.iter().skip(1) {
            problem(
                problems,
                f,
                format!(
                    "a second copy of the key of {}; one pair per device",
                    cert_file.display()
                ),
            );
        }
        if let Ok(c) = Certificate::from_der(der) {
            if c.tbs_certificate.validity.not_after.to_system_time() < now {
                problem(
                    problems,
                    cert_file,
                    "the certificate has expired".to_owned(),
                );
                continue;
            }
        }
        let cert_pem = pem::encode_config(
            &pem::Pem::new("CERTIFICATE", der.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        let Ok(fp) = fingerprint(&cert_pem) else {
            continue;
        };
        let source = cert_file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        pairs.push((
            cert_file.clone(),
            PoolEntry {
                certificate_pem: cert_pem,
                key_pem: key_list[0].1.clone(),
                fingerprint: fp,
                source,
            },
        ));
    }
    for (spki, key_list) in keys {
        if !certs.contains_key(spki) {
            for (f, _) in key_list {
                problem(
                    problems,
                    f,
                    "a private key without its certificate in the pool".to_owned(),
                );
            }
        }
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.into_iter().map(|(_, e)| e).collect()
}
