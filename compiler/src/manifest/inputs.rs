//! The files a manifest names (bases, certificates, CSV tables, firmware parts), read through
//! [`crate::input`] and refused with a manifest diagnostic that points at the place naming
//! them. A refused file's contents are never quoted.

use std::path::Path;

use super::error::{ErrorKind, ManifestError};
use super::source::Place;
use crate::input::{InputError, InputKind};

/// The diagnostic for a file that was not read.
pub fn refused(e: &InputError, place: Option<&Place>) -> ManifestError {
    let path = e.path().display();
    let (kind, help) = match e {
        InputError::Missing { .. } => (
            ErrorKind::FileMissing,
            match place {
                Some(p) => format!(
                    "paths are relative to the manifest that names them ({}); check the spelling, or create the file",
                    p.file.dir().display()
                ),
                None => "check the path".to_owned(),
            },
        ),
        InputError::NotAFile { .. } => (ErrorKind::FileNotRegular, e.help_text()),
        InputError::TooLarge { .. } => (ErrorKind::FileTooLarge, e.help_text()),
        InputError::PrivateKey { .. } => (ErrorKind::FileHoldsKey, e.help_text()),
        InputError::Io { .. } => (ErrorKind::FileUnreadable, e.help_text()),
    };
    let message = match e {
        InputError::Missing { .. } => format!("{path} does not exist"),
        other => other.to_string(),
    };
    let err = ManifestError::new(kind, message).help(help);
    match place {
        Some(p) => err.at(p, "named here"),
        None => err,
    }
}

/// Whether `bytes` are a DER private key (PKCS#8, PKCS#1 or SEC1). Such bytes are nearly always
/// invalid UTF-8 and refused as such, but nearly is not never.
fn holds_der_key(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x30)
        && crate::esp_at::pki::check::parse(bytes).is_ok_and(|items| {
            items
                .iter()
                .any(|m| matches!(m, crate::esp_at::pki::check::Material::PrivateKey(_)))
        })
}

/// Checks manifest text that did not come through [`crate::input::read`] (an editor buffer,
/// the fuzzer, a file read before for another purpose) against the same bounds.
pub fn check_manifest_text(
    path: &Path,
    bytes: &[u8],
    place: Option<&Place>,
) -> Result<(), ManifestError> {
    let kind = InputKind::MANIFEST;
    let e = if bytes.len() as u64 > kind.max() {
        InputError::TooLarge {
            path: path.to_owned(),
            what: kind.what(),
            size: bytes.len() as u64,
            max: kind.max(),
        }
    } else if crate::input::holds_private_key(bytes) || holds_der_key(bytes) {
        InputError::PrivateKey {
            path: path.to_owned(),
            what: kind.what(),
        }
    } else {
        return Ok(());
    };
    Err(refused(&e, place))
}
