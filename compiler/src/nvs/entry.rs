//! Entries: the 32-byte item headers (`docs/formats/nvs.md` §2).

use super::crc::entry_crc;

/// Chunk index of every item that is not a blob_data chunk.
pub const CHUNK_ANY: u8 = 0xFF;

/// Item type codes (byte 1 of an entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemType {
    /// 0x01
    U8,
    /// 0x11
    I8,
    /// 0x02
    U16,
    /// 0x12
    I16,
    /// 0x04
    U32,
    /// 0x14
    I32,
    /// 0x08
    U64,
    /// 0x18
    I64,
    /// 0x21: NUL-terminated string.
    Str,
    /// 0x41: single-page blob (format version 1).
    Blob,
    /// 0x42: one chunk of a multipage blob (format version 2).
    BlobData,
    /// 0x48: the index of a multipage blob.
    BlobIdx,
}

impl ItemType {
    /// The on-flash type byte.
    pub fn code(self) -> u8 {
        match self {
            Self::U8 => 0x01,
            Self::I8 => 0x11,
            Self::U16 => 0x02,
            Self::I16 => 0x12,
            Self::U32 => 0x04,
            Self::I32 => 0x14,
            Self::U64 => 0x08,
            Self::I64 => 0x18,
            Self::Str => 0x21,
            Self::Blob => 0x41,
            Self::BlobData => 0x42,
            Self::BlobIdx => 0x48,
        }
    }

    /// Reads a type byte; `None` for codes the device does not define.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x01 => Self::U8,
            0x11 => Self::I8,
            0x02 => Self::U16,
            0x12 => Self::I16,
            0x04 => Self::U32,
            0x14 => Self::I32,
            0x08 => Self::U64,
            0x18 => Self::I64,
            0x21 => Self::Str,
            0x41 => Self::Blob,
            0x42 => Self::BlobData,
            0x48 => Self::BlobIdx,
            _ => return None,
        })
    }

    /// Width in bytes of a primitive, `None` for variable-length and index items.
    pub fn primitive_width(self) -> Option<usize> {
        match self {
            Self::U8 | Self::I8 => Some(1),
            Self::U16 | Self::I16 => Some(2),
            Self::U32 | Self::I32 => Some(4),
            Self::U64 | Self::I64 => Some(8),
            _ => None,
        }
    }

    /// The CSV encoding name of a primitive type.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::U64 => "u64",
            Self::I64 => "i64",
            Self::Str => "string",
            Self::Blob | Self::BlobData | Self::BlobIdx => "binary",
        }
    }
}

/// Builds an entry header with the fields every item has; the data field starts as `FF`s.
pub fn header(ns: u8, ty: ItemType, span: u8, chunk: u8, key: &[u8]) -> [u8; 32] {
    let mut e = [0xFF; 32];
    e[0] = ns;
    e[1] = ty.code();
    e[2] = span;
    e[3] = chunk;
    e[8..24].fill(0);
    e[8..8 + key.len()].copy_from_slice(key);
    e
}

/// Fills in the entry CRC (bytes 4..8) once every other field is final.
pub fn seal(e: &mut [u8; 32]) {
    let crc = entry_crc(e);
    e[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// The key of an entry: bytes 8..24 up to the first NUL.
pub fn key_bytes(e: &[u8]) -> &[u8] {
    let key = &e[8..24];
    let end = key.iter().position(|&b| b == 0).unwrap_or(16);
    &key[..end]
}
