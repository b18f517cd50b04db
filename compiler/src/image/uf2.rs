//! UF2 (USB Flashing Format, <https://github.com/microsoft/uf2>), byte for byte as esptool 5.6's
//! `UF2Writer` writes it for `merge-bin --format uf2` (`docs/formats/esp-at-images.md` §10.4).
//!
//! Every block is 512 bytes: eight little-endian words (magic 0x0A324655, magic 0x9E5D5157,
//! flags, target address, payload length, block number, block count, family id), the payload,
//! with MD5 on a 24-byte record (address, length, MD5 of the payload), zero padding, and the
//! final magic 0x0AB16F30. Block numbers and counts restart for every input file; the flags are
//! "family id present" (0x2000) and, with MD5, "MD5 present" (0x4000).

use md5::{Digest as _, Md5};

const BLOCK: usize = 512;
const DATA_AREA: u32 = 476;
const MD5_PART: u32 = 24;
const MAGIC_START0: u32 = 0x0A32_4655;
const MAGIC_START1: u32 = 0x9E5D_5157;
const MAGIC_END: u32 = 0x0AB1_6F30;
const FLAG_FAMILY_ID: u32 = 0x0000_2000;
const FLAG_MD5: u32 = 0x0000_4000;

/// How the payload of each block is cut and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uf2Options {
    /// Payload bytes per block (`--chunk-size`); `None` takes the most that fits (452 with MD5,
    /// 476 without).
    pub chunk_size: Option<u32>,
    /// Append the MD5 record to each block (on unless `--md5-disable`).
    pub md5: bool,
}

impl Default for Uf2Options {
    fn default() -> Self {
        Uf2Options {
            chunk_size: None,
            md5: true,
        }
    }
}

impl Uf2Options {
    /// The largest payload a block can hold with these options.
    pub fn max_chunk(self) -> u32 {
        if self.md5 {
            DATA_AREA - MD5_PART
        } else {
            DATA_AREA
        }
    }

    /// The payload size used, or `None` when `chunk_size` is 0, not a multiple of 4 or larger
    /// than [`Uf2Options::max_chunk`] (esptool refuses the first two and crashes on the last).
    pub fn chunk(self) -> Option<u32> {
        let chunk = self.chunk_size.unwrap_or_else(|| self.max_chunk());
        (chunk > 0 && chunk % 4 == 0 && chunk <= self.max_chunk()).then_some(chunk)
    }
}

/// Writes `files` (each `(address, bytes)`, in the given order) for the chip family `family_id`.
/// `chunk` must come from [`Uf2Options::chunk`].
pub fn encode(family_id: u32, files: &[(u32, &[u8])], options: Uf2Options, chunk: u32) -> Vec<u8> {
    let chunk_len = chunk as usize;
    let mut out = Vec::new();
    let flags = FLAG_FAMILY_ID | if options.md5 { FLAG_MD5 } else { 0 };
    for &(addr, data) in files {
        let blocks = u32::try_from(data.len().div_ceil(chunk_len)).unwrap_or(u32::MAX);
        let mut at = addr;
        for (number, piece) in (0u32..).zip(data.chunks(chunk_len)) {
            let len = u32::try_from(piece.len()).unwrap_or(u32::MAX);
            let start = out.len();
            for word in [
                MAGIC_START0,
                MAGIC_START1,
                flags,
                at,
                len,
                number,
                blocks,
                family_id,
            ] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(piece);
            if options.md5 {
                out.extend_from_slice(&at.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&Md5::digest(piece));
            }
            out.resize(start + BLOCK - 4, 0);
            out.extend_from_slice(&MAGIC_END.to_le_bytes());
            at = at.wrapping_add(len);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_block_layout() {
        let out = encode(0x1C5F_21B0, &[(0x1000, b"abc")], Uf2Options::default(), 452);
        assert_eq!(out.len(), 512);
        let word = |i: usize| u32::from_le_bytes(out[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(
            (0..8).map(word).collect::<Vec<_>>(),
            [
                MAGIC_START0,
                MAGIC_START1,
                0x6000,
                0x1000,
                3,
                0,
                1,
                0x1C5F_21B0
            ]
        );
        assert_eq!(&out[32..35], b"abc");
        assert_eq!(&out[35..39], &0x1000u32.to_le_bytes());
        assert_eq!(&out[39..43], &3u32.to_le_bytes());
        assert_eq!(&out[43..59], &Md5::digest(b"abc")[..]);
        assert!(out[59..508].iter().all(|&b| b == 0));
        assert_eq!(&out[508..], &MAGIC_END.to_le_bytes());
    }

    #[test]
    fn chunk_limits() {
        let md5 = Uf2Options::default();
        assert_eq!(md5.chunk(), Some(452));
        let no_md5 = Uf2Options { md5: false, ..md5 };
        assert_eq!(no_md5.chunk(), Some(476));
        for bad in [0, 6, 456] {
            assert_eq!(
                Uf2Options {
                    chunk_size: Some(bad),
                    ..md5
                }
                .chunk(),
                None,
                "{bad}"
            );
        }
        let blocks = encode(
            0,
            &[(0, &[7; 600])],
            Uf2Options {
                chunk_size: Some(256),
                ..md5
            },
            256,
        );
        assert_eq!(blocks.len(), 3 * 512);
        assert_eq!(
            &blocks[512 + 12..512 + 16],
            &256u32.to_le_bytes(),
            "second block's address"
        );
        assert_eq!(
            &blocks[1024 + 16..1024 + 20],
            &88u32.to_le_bytes(),
            "last block's length"
        );
    }
}
