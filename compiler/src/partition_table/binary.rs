//! The 0xC00-byte binary: 32-byte entries, an optional MD5 record, `FF` fill.

use md5::{Digest as _, Md5};

use super::error::{PartitionError, PartitionWarning, RowRef};
use super::layout::check_capacity;
use super::{ENTRY_BYTES, Flags, Partition, PartitionTable, TABLE_BYTES};

const MAGIC: [u8; 2] = [0xAA, 0x50];
const MD5_MAGIC: [u8; 2] = [0xEB, 0xEB];
const NAME_BYTES: usize = 16;

/// A binary table as read, with what the tool would warn about while reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The partitions.
    pub table: PartitionTable,
    /// Unknown flag bits (dropped from the table, as the tool does).
    pub warnings: Vec<PartitionWarning>,
}

fn entry_bytes(p: &Partition) -> [u8; ENTRY_BYTES] {
    let mut e = [0u8; ENTRY_BYTES];
    e[0..2].copy_from_slice(&MAGIC);
    e[2] = p.ty;
    e[3] = p.subtype;
    e[4..8].copy_from_slice(&p.offset.to_le_bytes());
    e[8..12].copy_from_slice(&p.size.to_le_bytes());
    let name = p.name.as_bytes();
    let n = name.len().min(NAME_BYTES);
    e[12..12 + n].copy_from_slice(&name[..n]);
    e[28..32].copy_from_slice(&p.flags.bits().to_le_bytes());
    e
}

impl PartitionTable {
    /// The binary gen_esp32part.py writes: the entries in order, the MD5 record when `md5`
    /// (`--disable-md5sum` turns it off; ESP-AT's primary table has none), `FF` up to 0xC00.
    ///
    /// Fails only when there are too many entries (more than 94 with MD5, 95 without), which
    /// tables from [`layout`](super::layout)/[`parse_csv`](super::parse_csv) with the same
    /// `md5` setting never have; a decoded binary may.
    pub fn to_bytes(&self, md5: bool) -> Result<Vec<u8>, PartitionError> {
        check_capacity(self.partitions.len(), md5)?;
        let mut out = Vec::with_capacity(TABLE_BYTES);
        for p in &self.partitions {
            out.extend_from_slice(&entry_bytes(p));
        }
        if md5 {
            let digest = Md5::digest(&out);
            out.extend_from_slice(&MD5_MAGIC);
            out.extend_from_slice(&[0xFF; 14]);
            out.extend_from_slice(&digest);
        }
        out.resize(TABLE_BYTES, 0xFF);
        Ok(out)
    }

    /// Reads a binary table (with MD5 checking), dropping warnings; see
    /// [`PartitionTable::decode`].
    pub fn from_bytes(bytes: &[u8]) -> Result<PartitionTable, PartitionError> {
        Self::decode(bytes, true).map(|d| d.table)
    }

    /// Reads a binary table the way gen_esp32part.py does: 32-byte records until one of 32 ×
    /// `FF`; with `md5`, a record starting `EB EB` must hold the MD5 of the entries before it
    /// (without `md5` it is read as an entry, and fails). The input may be longer than 0xC00
    /// bytes; the end marker is what counts. No verification happens here (see
    /// [`PartitionTable::validate`]).
    pub fn decode(bytes: &[u8], md5: bool) -> Result<Decoded, PartitionError> {
        let mut hasher = Md5::new();
        let mut partitions = Vec::new();
        let mut warnings = Vec::new();
        for (index, record) in bytes.chunks(ENTRY_BYTES).enumerate() {
            let offset = index * ENTRY_BYTES;
            if record.len() != ENTRY_BYTES {
                return Err(PartitionError::BinaryLength { offset });
            }
            if record.iter().all(|b| *b == 0xFF) {
                return Ok(Decoded {
                    table: PartitionTable { partitions },
                    warnings,
                });
            }
            if md5 && record[..2] == MD5_MAGIC {
                let computed = hasher.clone().finalize();
                if record[16..] == computed[..] {
                    continue;
                }
                return Err(PartitionError::Md5Mismatch {
                    offset,
                    computed: hex::encode(computed),
                    stored: hex::encode(&record[16..]),
                });
            }
            hasher.update(record);
            let at = RowRef::row(partitions.len());
            let name_field = &record[12..28];
            let name_bytes = name_field
                .iter()
                .position(|b| *b == 0)
                .map_or(name_field, |n| &name_field[..n]);
            let name =
                std::str::from_utf8(name_bytes).map_err(|_| PartitionError::NameNotUtf8 { at })?;
            if record[..2] != MAGIC {
                return Err(PartitionError::MagicInvalid {
                    at,
                    magic: [record[0], record[1]],
                });
            }
            let word = |i: usize| {
                u32::from_le_bytes([record[i], record[i + 1], record[i + 2], record[i + 3]])
            };
            let bits = word(28);
            let flags = Flags {
                encrypted: bits & 1 != 0,
                readonly: bits & 2 != 0,
            };
            if bits & !3 != 0 {
                warnings.push(PartitionWarning::FlagsUnknown {
                    at,
                    bits: bits & !3,
                });
            }
            partitions.push(Partition {
                name: name.to_owned(),
                ty: record[2],
                subtype: record[3],
                offset: word(4),
                size: word(8),
                flags,
            });
        }
        Err(PartitionError::BinaryEndMissing)
    }
}
