//! NVS partition images (ESP-IDF non-volatile storage), format versions 1 and 2.
//!
//! Byte-identical to `esp-idf-nvs-partition-gen` 0.3.0 (format: `docs/formats/nvs.md`),
//! plus the legacy trailing-page form older generators and ESP-AT v3.1–v4.0 builds wrote.
//!
//! Three ways in:
//!
//! * typed, no CSV: [`encode`] a slice of [`NvsEntry`], or drive an [`NvsBuilder`] row by row;
//! * CSV, the generator's dialect: [`csv::generate`];
//! * back out: [`decode::decode`] an image, [`decode::DecodedImage::to_csv`] for `dump`.
//!
//! Encryption ([`encrypt`]) works on finished images: XTS-AES per written slot.
//!
//! Deliberate divergences from the Python generator (it writes corrupt images for these, we
//! refuse them with an error): non-ASCII keys and namespace names; non-ASCII text in `binary`
//! data rows and in upper-case `HEX2BIN`/`BASE64`/`BINARY` data rows; non-ASCII decimal digits
//! in integers (Python accepts them, we reject them).

pub mod crc;
pub mod csv;
pub mod decode;
pub mod encode;
pub mod encrypt;
pub mod entry;
pub mod error;
pub mod page;
mod python;

pub use decode::{DecodedImage, decode};
pub use encode::{NvsBuilder, encode};
pub use error::{Location, NvsError, NvsErrorKind};

/// NVS format version, written in every page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum Version {
    /// Version 1 (`FF`): blobs are single-page items (type 0x41), at most 1984 bytes.
    V1,
    /// Version 2 (`FE`, the default): blobs are split into blob_data chunks plus a blob_idx.
    #[default]
    V2,
}

impl Version {
    /// The header byte 8 value.
    pub fn header_byte(self) -> u8 {
        match self {
            Self::V1 => 0xFF,
            Self::V2 => 0xFE,
        }
    }

    /// Reads header byte 8.
    pub fn from_header_byte(b: u8) -> Option<Self> {
        match b {
            0xFF => Some(Self::V1),
            0xFE => Some(Self::V2),
            _ => None,
        }
    }

    /// The `--version` number (1 or 2).
    pub fn number(self) -> u8 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
}

/// How the pages after the last data page look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrailingPages {
    /// Generator ≥ 0.1.7: the last data page stays ACTIVE, later pages are all `FF`.
    #[default]
    Erased,
    /// Generator ≤ 0.1.6, ESP-IDF ≤ 5.1 in-tree script, ESP-AT v3.1–v4.0 builds: every
    /// non-reserved page gets a header and is FULL; no page is ACTIVE.
    Legacy,
}

/// What the image looks like apart from its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Format version (default 2).
    pub version: Version,
    /// Partition size in bytes: a multiple of 4096, at least 0x3000 (0x1000 and 0x2000 make
    /// read-only images that contain only the used pages).
    pub size: u64,
    /// Trailing-page form.
    pub trailing: TrailingPages,
}

impl Options {
    /// Version 2, today's trailing form, the given size.
    pub fn new(size: u64) -> Self {
        Self {
            version: Version::V2,
            size,
            trailing: TrailingPages::Erased,
        }
    }
}

/// A typed NVS value, as the device's `nvs_get_*` getters read it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    /// `nvs_get_u8`
    U8(u8),
    /// `nvs_get_i8`
    I8(i8),
    /// `nvs_get_u16`
    U16(u16),
    /// `nvs_get_i16`
    I16(i16),
    /// `nvs_get_u32`
    U32(u32),
    /// `nvs_get_i32`
    I32(i32),
    /// `nvs_get_u64`
    U64(u64),
    /// `nvs_get_i64`
    I64(i64),
    /// A string; the encoder appends the NUL terminator (`nvs_get_str`).
    Str(String),
    /// A string item whose payload is stored exactly as given (no NUL added): what the
    /// generator writes for the upper-case `STRING` encoding, and what the decoder returns for
    /// string payloads that are not NUL-terminated UTF-8.
    RawStr(Vec<u8>),
    /// A blob (`nvs_get_blob`): one type-0x41 item in version 1, chunks + index in version 2.
    Blob(Vec<u8>),
}

/// One key/value pair with its namespace, for [`encode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvsEntry {
    /// Namespace name (≤ 15 ASCII characters).
    pub namespace: String,
    /// Key (≤ 15 ASCII characters).
    pub key: String,
    /// The value.
    pub value: Value,
}

impl NvsEntry {
    /// Shorthand constructor.
    pub fn new(namespace: impl Into<String>, key: impl Into<String>, value: Value) -> Self {
        Self {
            namespace: namespace.into(),
            key: key.into(),
            value,
        }
    }
}
