//! Certificate and key checks of the resolver (issue: ESP-AT images, certificates and keys).
//!
//! PEM or DER, the right kind for the role, keys matching their certificates, certificates
//! signed by the CA named as their issuer, inside their validity window (a warning otherwise),
//! and, in era A, each PKI bin fitting its partition. Messages name files and subjects, never
//! key material.

use std::collections::BTreeMap;

use super::{Resolver, parse_num, top_place};
use crate::esp_at::pki::check;
use crate::manifest::document::{PkiKind, PkiRole};
use crate::manifest::error::{ErrorKind, ManifestError};
use crate::manifest::plan::{PkiPlan, TablePlan};
use crate::release::Era;

impl Resolver<'_> {
    pub(super) fn check_pki(&mut self, pki: &[PkiPlan], era: Era, atc: &TablePlan) {
        let mut parsed: BTreeMap<PkiRole, Vec<Option<check::Material>>> = BTreeMap::new();
        for p in pki {
            let place = p.place.clone().unwrap_or_else(|| top_place(self.top));
            let mut materials = Vec::new();
            for file in &p.files {
                let Some(bytes) = self.files.get(file).cloned() else {
                    materials.push(None);
                    continue;
                };
                match check::parse(&bytes) {
                    Ok(mut m) if !m.is_empty() => {
                        let first = m.remove(0);
                        let is_key = first.key().is_some();
                        let want_key = p.role.kind() == PkiKind::Key;
                        if is_key == want_key {
                            materials.push(Some(first));
                        } else {
                            self.err(
                                ManifestError::new(
                                    ErrorKind::CertificateInvalid,
                                    format!(
                                        "{} is a {}, but {} takes {}",
                                        file.display(),
                                        if is_key { "private key" } else { "certificate" },
                                        p.role.node_name(),
                                        if want_key {
                                            "private keys"
                                        } else {
                                            "certificates"
                                        }
                                    ),
                                )
                                .at(&place, "wrong kind of file")
                                .help(
                                    "check the file order and the role names (…-cert, …-key, …-ca)",
                                ),
                            );
                            materials.push(None);
                        }
                    }
                    result => {
                        let why = result.err().map_or_else(
                            || "it holds no certificate or key".to_owned(),
                            |e| e.to_string(),
                        );
                        self.err(
                            ManifestError::new(
                                ErrorKind::CertificateInvalid,
                                format!("{} is not a PEM or DER certificate or key: {why}", file.display()),
                            )
                            .at(&place, "unreadable certificate or key")
                            .help("give a PEM file (-----BEGIN CERTIFICATE----- / PRIVATE KEY) or its DER form; encrypted keys are not supported"),
                        );
                        materials.push(None);
                    }
                }
                if era == Era::A && bytes.len() > usize::from(u16::MAX) {
                    self.err(
                        ManifestError::new(
                            ErrorKind::CertificateInvalid,
                            format!("{} is {} bytes; era A PKI items hold at most 65535", file.display(), bytes.len()),
                        )
                        .at(&place, "too large")
                        .help("use a smaller certificate chain, or an ESP-AT release of v3.1.0.0 or later"),
                    );
                }
            }
            if era == Era::A {
                // Container: 8-byte header, then per item 4 bytes + data padded to 4 (`docs/formats/esp-at-images.md` §5.1).
                let size = 8 + p
                    .files
                    .iter()
                    .filter_map(|f| self.files.get(f))
                    .map(|b| 4 + b.len().div_ceil(4) * 4)
                    .sum::<usize>();
                if let Some(limit) = atc.row(&p.name).and_then(|r| parse_num(&r.size)) {
                    if size as u64 > limit {
                        self.err(
                            ManifestError::new(
                                ErrorKind::PartitionInvalid,
                                format!(
                                    "{} needs {size} bytes but its partition `{}` holds {limit}",
                                    p.role.node_name(),
                                    p.name
                                ),
                            )
                            .at(&place, "overflows its partition")
                            .help(format!(
                                "grow `{}` in at-customize, or give fewer or smaller files",
                                p.name
                            )),
                        );
                    }
                }
            }
            parsed.insert(p.role, materials);
        }
        let now = std::time::SystemTime::now();
        for p in pki {
            let place = p.place.clone().unwrap_or_else(|| top_place(self.top));
            let Some(materials) = parsed.get(&p.role) else {
                continue;
            };
            if let Some(cert_role) = p.role.certificate_for_key() {
                if let (Some(certs), Some(cert_plan)) = (
                    parsed.get(&cert_role),
                    pki.iter().find(|q| q.role == cert_role),
                ) {
                    for (i, (key, cert)) in materials.iter().zip(certs).enumerate() {
                        let (Some(key), Some(cert)) = (
                            key.as_ref().and_then(check::Material::key),
                            cert.as_ref().and_then(check::Material::certificate),
                        ) else {
                            continue;
                        };
                        if !check::key_matches(key, cert) {
                            self.err(
                                ManifestError::new(
                                    ErrorKind::CertificateInvalid,
                                    format!(
                                        "{} is not the key of {} (subject `{}`)",
                                        p.files[i].display(),
                                        cert_plan.files[i].display(),
                                        cert.subject
                                    ),
                                )
                                .at(&place, "key does not match its certificate")
                                .help("give the private key of that certificate, in the same position"),
                            );
                        }
                    }
                }
            }
            for (i, m) in materials.iter().enumerate() {
                let Some(cert) = m.as_ref().and_then(check::Material::certificate) else {
                    continue;
                };
                match check::validity(cert, now) {
                    check::Validity::Expired { since } => self.err(
                        ManifestError::new(
                            ErrorKind::CertificateInvalid,
                            format!(
                                "{} expired {} days ago",
                                p.files[i].display(),
                                since.as_secs() / 86_400
                            ),
                        )
                        .at(&place, "expired certificate")
                        .help("the board will reject it once its clock is set; renew it")
                        .warning(),
                    ),
                    check::Validity::NotYetValid { starts_in } => self.err(
                        ManifestError::new(
                            ErrorKind::CertificateInvalid,
                            format!(
                                "{} becomes valid only in {} days",
                                p.files[i].display(),
                                starts_in.as_secs() / 86_400
                            ),
                        )
                        .at(&place, "not yet valid")
                        .help("check the certificate's notBefore date")
                        .warning(),
                    ),
                    check::Validity::Valid { .. } => {}
                }
                if let Some(issuer) = &p.issuer {
                    self.check_issuer(cert, issuer, &p.files[i], &place);
                }
            }
        }
    }

    fn check_issuer(
        &mut self,
        cert: &check::CertInfo,
        issuer: &std::path::Path,
        file: &std::path::Path,
        place: &crate::manifest::Place,
    ) {
        let ca = self
            .files
            .get(issuer)
            .and_then(|b| check::parse(b).ok())
            .and_then(|m| m.into_iter().find_map(|m| m.certificate().cloned()));
        let Some(ca) = ca else {
            self.err(
                ManifestError::new(
                    ErrorKind::CertificateInvalid,
                    format!("issuer {} is not a certificate", issuer.display()),
                )
                .at(place, "issuer unreadable")
                .help(
                    "issuer= names the CA certificate (PEM or DER) that signed these certificates",
                ),
            );
            return;
        };
        let why = match check::signed_by(cert, &ca) {
            check::SignatureCheck::Verified => return,
            check::SignatureCheck::IssuerMismatch {
                issuer: i,
                ca_subject,
            } => format!("its issuer is `{i}`, the CA is `{ca_subject}`"),
            check::SignatureCheck::KeyIdMismatch => {
                "its authority key id differs from the CA's key id".to_owned()
            }
            check::SignatureCheck::BadSignature => {
                "the signature does not verify with the CA's key".to_owned()
            }
            check::SignatureCheck::NotVerified { algorithm } => {
                format!("its signature algorithm {algorithm} cannot be verified here")
            }
        };
        self.err(
            ManifestError::new(
                ErrorKind::CertificateInvalid,
                format!(
                    "{} is not signed by {}: {why}",
                    file.display(),
                    issuer.display()
                ),
            )
            .at(place, "not signed by the issuer")
            .help(
                "name the CA that issued the certificate, or re-issue the certificate from this CA",
            ),
        );
    }
}
