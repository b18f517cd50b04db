//! Era A PKI partitions (`server_cert`, `client_key`, `mqtt_ca`, ...): the `F1 F1` container
//! ESP-AT's `tools/AtPKI.py` writes (`docs/formats/esp-at-images.md` §5), and certificate/key checks ([`check`]).
//!
//! Container (little-endian): magic `F1 F1`, item count (u16), byte length of all items (u32),
//! then items `type (1) | id (1) | length L (u16) | L file bytes | 0xFF pad to 4`. The file
//! bytes are stored exactly as read (PEM text or DER). There is no checksum and no padding to
//! the partition size.

pub mod check;

use std::path::{Path, PathBuf};

use super::release::{Release, ReleaseFormats as _};

/// Magic at offset 0; ESP-AT's OTA-by-partition check looks for it.
pub const MAGIC: [u8; 2] = [0xF1, 0xF1];

/// What an item holds, as the container's type byte says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    /// `0x01`, a CA certificate.
    Ca,
    /// `0x02`, a certificate.
    Cert,
    /// `0x03`, a private key.
    Key,
}

impl ItemKind {
    /// The type byte.
    pub fn byte(self) -> u8 {
        match self {
            ItemKind::Ca => 1,
            ItemKind::Cert => 2,
            ItemKind::Key => 3,
        }
    }

    /// The kind for a type byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(ItemKind::Ca),
            2 => Some(ItemKind::Cert),
            3 => Some(ItemKind::Key),
            _ => None,
        }
    }

    /// The kind a PKI partition holds, from its name suffix (`*_ca`, `*_cert`, `*_key`).
    pub fn for_partition(partition: &str) -> Option<Self> {
        if partition.ends_with("_ca") {
            Some(ItemKind::Ca)
        } else if partition.ends_with("_cert") {
            Some(ItemKind::Cert)
        } else if partition.ends_with("_key") {
            Some(ItemKind::Key)
        } else {
            None
        }
    }
}

/// Which type bytes a release's generator writes (`docs/formats/esp-at-images.md` §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TypeBytes {
    /// v2.2.0.0–v2.4.0.0: every file is passed to AtPKI as `cert` (0x02), keys and CAs too.
    AllCert,
    /// v2.0/v2.1 (shell wrappers) and v2.4.1.0–v3.0.0.0: CA 0x01, certificate 0x02, key 0x03.
    ByKind,
}

impl TypeBytes {
    /// The kind written for a file of `kind`.
    pub fn written(self, kind: ItemKind) -> ItemKind {
        match self {
            TypeBytes::AllCert => ItemKind::Cert,
            TypeBytes::ByKind => kind,
        }
    }
}

/// One item of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiItem {
    /// Type byte.
    pub kind: ItemKind,
    /// ID within its kind (0, 1, ...).
    pub id: u8,
    /// The file bytes, verbatim.
    pub content: Vec<u8>,
}

/// Errors of the PKI container format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum PkiError {
    /// A file is longer than the 16-bit length field allows.
    #[error("PKI item {index} is {len} bytes; the container allows at most 65535")]
    #[diagnostic(
        code(espfleet::esp_at::pki::item_too_long),
        help("use a smaller certificate or key (DER instead of PEM halves the size)")
    )]
    ItemTooLong {
        /// Item position.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// More than 255 items of one kind (IDs are one byte).
    #[error("more than 256 PKI items of one kind")]
    #[diagnostic(
        code(espfleet::esp_at::pki::too_many_items),
        help("a partition holds at most 256 items of each kind")
    )]
    TooManyItems,
    /// No files for a PKI partition (ESP-AT writes no valid bin then).
    #[error("PKI partition `{0}` has no certificate or key files")]
    #[diagnostic(
        code(espfleet::esp_at::pki::empty),
        help("give at least one file, or disable the feature that needs this partition")
    )]
    Empty(String),
    /// Decoding: no `F1 F1` magic.
    #[error("PKI container magic is {0:02X?}, expected [F1, F1]")]
    #[diagnostic(
        code(espfleet::esp_at::pki::magic),
        help("this is not an ESP-AT PKI partition (or it is erased)")
    )]
    Magic([u8; 2]),
    /// Decoding: the data ends before the declared items.
    #[error("PKI container is truncated: {need} bytes declared, {have} present")]
    #[diagnostic(
        code(espfleet::esp_at::pki::truncated),
        help("read the whole partition")
    )]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Decoding: the header's length or count disagrees with the items.
    #[error("PKI container header says {count} items in {len} bytes, the items say otherwise")]
    #[diagnostic(
        code(espfleet::esp_at::pki::inconsistent),
        help("the container is corrupt; rebuild it")
    )]
    Inconsistent {
        /// Declared count.
        count: u16,
        /// Declared byte length.
        len: u32,
    },
    /// Decoding: an unknown type byte.
    #[error("PKI item {index} has type byte {byte:#04x} (expected 1, 2 or 3)")]
    #[diagnostic(
        code(espfleet::esp_at::pki::item_type),
        help("the container is corrupt; rebuild it")
    )]
    ItemType {
        /// Item position.
        index: usize,
        /// The byte.
        byte: u8,
    },
    /// A partition name that is not `*_ca`, `*_cert` or `*_key`.
    #[error("`{0}` is not a PKI partition name (expected *_ca, *_cert or *_key)")]
    #[diagnostic(
        code(espfleet::esp_at::pki::partition_name),
        help("PKI partitions are named like server_cert, client_key, mqtt_ca")
    )]
    PartitionName(String),
    /// Reading a raw-data directory failed.
    #[error("reading {path}: {message}")]
    #[diagnostic(
        code(espfleet::esp_at::pki::io),
        help("check that the directory exists and is readable")
    )]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
}

fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Encodes items in the given order (use [`arrange`] for AtPKI's grouping and IDs).
pub fn encode(items: &[PkiItem]) -> Result<Vec<u8>, PkiError> {
    let count = u16::try_from(items.len()).map_err(|_| PkiError::TooManyItems)?;
    let mut body = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let len = u16::try_from(item.content.len()).map_err(|_| PkiError::ItemTooLong {
            index,
            len: item.content.len(),
        })?;
        body.push(item.kind.byte());
        body.push(item.id);
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(&item.content);
        body.resize(body.len() + pad_len(item.content.len()), 0xFF);
    }
    let total = u32::try_from(body.len()).map_err(|_| PkiError::TooManyItems)?;
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a container. Bytes after the declared length are ignored, so a whole partition
/// (with its erased tail) can be passed.
pub fn decode(bytes: &[u8]) -> Result<Vec<PkiItem>, PkiError> {
    if bytes.len() < 8 {
        return Err(PkiError::Truncated {
            need: 8,
            have: bytes.len(),
        });
    }
    if bytes[0..2] != MAGIC {
        return Err(PkiError::Magic([bytes[0], bytes[1]]));
    }
    let count = u16::from_le_bytes([bytes[2], bytes[3]]);
    let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let end = 8usize.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
    if bytes.len() < end {
        return Err(PkiError::Truncated {
            need: end,
            have: bytes.len(),
        });
    }
    let body = &bytes[8..end];
    let mut items = Vec::new();
    let mut at = 0;
    while at < body.len() {
        if body.len() - at < 4 {
            return Err(PkiError::Inconsistent { count, len });
        }
        let index = items.len();
        let kind = ItemKind::from_byte(body[at]).ok_or(PkiError::ItemType {
            index,
            byte: body[at],
        })?;
        let id = body[at + 1];
        let l = usize::from(u16::from_le_bytes([body[at + 2], body[at + 3]]));
        let next = at + 4 + l + pad_len(l);
        if next > body.len() {
            return Err(PkiError::Inconsistent { count, len });
        }
        items.push(PkiItem {
            kind,
            id,
            content: body[at + 4..at + 4 + l].to_vec(),
        });
        at = next;
    }
    if items.len() != usize::from(count) {
        return Err(PkiError::Inconsistent { count, len });
    }
    Ok(items)
}

/// A readable listing of a container's items for reviews and `dump` commands: kind, ID,
/// length and the PEM label when the item is PEM text. Never prints item contents, so it is
/// safe for private keys.
pub fn describe(items: &[PkiItem]) -> String {
    use std::fmt::Write as _;
    let mut out = format!("PKI container: {} item(s)\n", items.len());
    for (i, item) in items.iter().enumerate() {
        let form = std::str::from_utf8(&item.content)
            .ok()
            .and_then(|t| t.find("-----BEGIN ").map(|at| &t[at + 11..]))
            .and_then(|t| {
                t.split_once("-----")
                    .map(|(label, _)| format!("PEM {label}"))
            })
            .unwrap_or_else(|| "binary (DER?)".to_owned());
        let kind = match item.kind {
            ItemKind::Ca => "ca",
            ItemKind::Cert => "cert",
            ItemKind::Key => "key",
        };
        let _ = writeln!(
            out,
            "  [{i}] type {:#04x} ({kind}) id {} length {} pad {} {form}",
            item.kind.byte(),
            item.id,
            item.content.len(),
            pad_len(item.content.len())
        );
    }
    out
}

/// Orders (kind, content) pairs the way AtPKI does (`docs/formats/esp-at-images.md` §5.2): grouped by kind in order of each
/// kind's first appearance; inside a group in argument order with IDs 0, 1, 2, ...
pub fn arrange(
    inputs: impl IntoIterator<Item = (ItemKind, Vec<u8>)>,
) -> Result<Vec<PkiItem>, PkiError> {
    let mut groups: Vec<(ItemKind, Vec<Vec<u8>>)> = Vec::new();
    for (kind, content) in inputs {
        match groups.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, g)) => g.push(content),
            None => groups.push((kind, vec![content])),
        }
    }
    let mut items = Vec::new();
    for (kind, contents) in groups {
        for (id, content) in contents.into_iter().enumerate() {
            let id = u8::try_from(id).map_err(|_| PkiError::TooManyItems)?;
            items.push(PkiItem { kind, id, content });
        }
    }
    Ok(items)
}

/// Builds the bin of one PKI partition as ESP-AT's `generation_tools/<partition>.py` of
/// `release` does: every file gets the partition's kind (or `cert`, for v2.2.0.0–v2.4.0.0) and
/// IDs 0, 1, ... in the given order.
pub fn build_partition(
    partition: &str,
    release: Release,
    files: &[&[u8]],
) -> Result<Vec<u8>, PkiError> {
    let kind = ItemKind::for_partition(partition)
        .ok_or_else(|| PkiError::PartitionName(partition.to_owned()))?;
    if files.is_empty() {
        return Err(PkiError::Empty(partition.to_owned()));
    }
    let written = release.pki_type_bytes().written(kind);
    encode(&arrange(files.iter().map(|f| (written, f.to_vec())))?)
}

/// The file name suffixes ESP-AT collects for a PKI partition, in collection order.
pub fn collected_suffixes(kind: ItemKind) -> &'static [&'static str] {
    match kind {
        ItemKind::Key => &[".pem", ".der", ".key"],
        ItemKind::Ca | ItemKind::Cert => &[".pem", ".der", ".cer", ".crt"],
    }
}

/// Selects and orders the files of an era A raw-data directory (`docs/formats/esp-at-images.md` §5.3): suffix groups in
/// [`collected_suffixes`] order; `client_*` partitions sorted by name instead.
///
/// ESP-AT orders files inside a suffix group by directory listing, which is file-system
/// dependent; we sort them by name, which matches ESP-AT whenever a group has one file (all of
/// ESP-AT's default data).
pub fn select_files(partition: &str, names: &[String]) -> Result<Vec<String>, PkiError> {
    let kind = ItemKind::for_partition(partition)
        .ok_or_else(|| PkiError::PartitionName(partition.to_owned()))?;
    let mut sorted = names.to_vec();
    sorted.sort();
    let mut out = Vec::new();
    for suffix in collected_suffixes(kind) {
        out.extend(sorted.iter().filter(|n| n.ends_with(suffix)).cloned());
    }
    if partition.starts_with("client_") {
        out.sort();
    }
    Ok(out)
}

/// Reads `raw_data/<partition>/` like ESP-AT's era A generator and builds the partition bin.
pub fn build_partition_from_dir(
    partition: &str,
    dir: &Path,
    release: Release,
) -> Result<Vec<u8>, PkiError> {
    let io = |path: &Path, e: std::io::Error| PkiError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let names: Vec<String> = fs_err::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let mut contents = Vec::new();
    for name in select_files(partition, &names)? {
        let path = dir.join(&name);
        contents.push(
            crate::input::read(&path, crate::input::InputKind::CERTIFICATE)
                .map_err(|e| io(&path, e.into_io_error()))?,
        );
    }
    let refs: Vec<&[u8]> = contents.iter().map(Vec::as_slice).collect();
    build_partition(partition, release, &refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrange_groups_by_first_appearance() {
        let k = |kind, s: &str| (kind, s.as_bytes().to_vec());
        let items = arrange([
            k(ItemKind::Cert, "c1"),
            k(ItemKind::Key, "k1"),
            k(ItemKind::Ca, "a1"),
            k(ItemKind::Ca, "a2"),
            k(ItemKind::Cert, "c2"),
        ])
        .unwrap();
        let got: Vec<_> = items
            .iter()
            .map(|i| (i.kind, i.id, String::from_utf8(i.content.clone()).unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                (ItemKind::Cert, 0, "c1".into()),
                (ItemKind::Cert, 1, "c2".into()),
                (ItemKind::Key, 0, "k1".into()),
                (ItemKind::Ca, 0, "a1".into()),
                (ItemKind::Ca, 1, "a2".into()),
            ]
        );
    }

    #[test]
    fn encodes_the_documented_layout() {
        let bin = encode(&[PkiItem {
            kind: ItemKind::Key,
            id: 0,
            content: b"abcde".to_vec(),
        }])
        .unwrap();
        assert_eq!(
            bin,
            b"\xF1\xF1\x01\x00\x0C\x00\x00\x00\x03\x00\x05\x00abcde\xFF\xFF\xFF"
        );
        assert_eq!(decode(&bin).unwrap()[0].content, b"abcde");
        assert_eq!(
            decode(&bin[..10]),
            Err(PkiError::Truncated { need: 20, have: 10 })
        );
        assert!(matches!(decode(&[0xFF; 16]), Err(PkiError::Magic(_))));
    }

    #[test]
    fn selects_files_by_suffix_group() {
        let names = ["b.crt", "a.pem", "README", "c.der"].map(String::from);
        assert_eq!(
            select_files("server_ca", &names).unwrap(),
            vec!["a.pem", "c.der", "b.crt"]
        );
        assert_eq!(
            select_files("client_ca", &names).unwrap(),
            vec!["a.pem", "b.crt", "c.der"]
        );
        assert!(select_files("factory_param", &names).is_err());
    }
}
