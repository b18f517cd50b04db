//! ESP application and bootloader images (the format `esptool elf2image` writes), as far as
//! building a merged factory image needs them.
//!
//! Layout (little-endian): an 8-byte header (`E9`, segment count, flash mode, size/frequency
//! byte, entry point), a 16-byte extended header (write-protect pin, SPI drive strengths, chip
//! id, chip revisions, reserved, and byte 23 = 1 when a SHA-256 digest is appended), then the
//! segments (`load address, length, data`), zero padding so that the checksum byte ends a
//! 16-byte block, the checksum (XOR of all segment data, seeded with `0xEF`), and optionally the
//! SHA-256 of everything before it.
//!
//! Why we care: `esptool merge_bin` rewrites bytes 2–3 of the image at the bootloader offset and
//! then recomputes the appended digest ([`set_flash_params`]); an image that esptool does not
//! consider valid is left alone ([`is_valid_for_merge`]).

use sha2::{Digest as _, Sha256};

use crate::target::{Chip, FlashFreq, FlashMode, FlashSize};

/// First byte of every image.
pub const MAGIC: u8 = 0xE9;
/// Seed of the segment checksum.
pub const CHECKSUM_SEED: u8 = 0xEF;
/// Length of the common plus extended header.
pub const HEADER_LEN: usize = 24;
/// Length of the appended digest.
pub const DIGEST_LEN: usize = 32;
/// Most segments an image may have (esptool rejects more).
pub const MAX_SEGMENTS: usize = 16;

/// Errors reading or writing an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum FirmwareError {
    /// Too short for the headers.
    #[error("firmware image is {0} bytes, shorter than its 24-byte header")]
    #[diagnostic(
        code(espfleet::esp_at::firmware::too_short),
        help("is this an ESP image? bootloader.bin and esp-at.bin start with 0xE9")
    )]
    TooShort(usize),
    /// First byte is not `0xE9`.
    #[error("firmware image starts with {0:#04x}, not the image magic 0xE9")]
    #[diagnostic(
        code(espfleet::esp_at::firmware::magic),
        help(
            "pass an image made by esptool elf2image / ESP-IDF (bootloader.bin, esp-at.bin), not an ELF or raw data"
        )
    )]
    Magic(u8),
    /// More than 16 segments.
    #[error("firmware image declares {0} segments (at most 16)")]
    #[diagnostic(
        code(espfleet::esp_at::firmware::segment_count),
        help("the image is corrupt, or a linker script produced too many segments")
    )]
    SegmentCount(usize),
    /// A segment runs past the end of the data.
    #[error(
        "segment {index} at {load_addr:#x} needs {len} bytes at file offset {offset:#x}, but the image ends at {end:#x}"
    )]
    #[diagnostic(
        code(espfleet::esp_at::firmware::truncated),
        help("the image file is truncated; copy it again from the build folder")
    )]
    Truncated {
        /// Segment index.
        index: usize,
        /// Its load address.
        load_addr: u32,
        /// Its length.
        len: u32,
        /// File offset of its data.
        offset: usize,
        /// Image length.
        end: usize,
    },
    /// No checksum byte after the segments.
    #[error("firmware image ends before its checksum byte")]
    #[diagnostic(
        code(espfleet::esp_at::firmware::no_checksum),
        help("the image file is truncated")
    )]
    NoChecksum,
    /// Byte 23 says a digest follows, but fewer than 32 bytes do.
    #[error("firmware image declares an appended SHA-256 but ends {0} byte(s) after its checksum")]
    #[diagnostic(
        code(espfleet::esp_at::firmware::digest_truncated),
        help("the image file is truncated")
    )]
    DigestTruncated(usize),
    /// The stored checksum is not the XOR of the segment data (the ROM refuses to boot it).
    #[error("firmware image checksum is {stored:#04x}, but its segments give {computed:#04x}")]
    #[diagnostic(
        code(espfleet::esp_at::firmware::checksum),
        help(
            "the image is corrupt or was edited after esptool wrote it; copy it again from the build folder"
        )
    )]
    Checksum {
        /// The byte in the image.
        stored: u8,
        /// What the segments give.
        computed: u8,
    },
    /// The appended SHA-256 does not match the image.
    #[error("firmware image SHA-256 does not match its contents")]
    #[diagnostic(
        code(espfleet::esp_at::firmware::digest),
        help(
            "the image is corrupt or was edited after esptool wrote it; copy it again from the build folder"
        )
    )]
    Digest,
    /// Built for another chip.
    #[error("firmware image is for chip id {image} ({}), not {chip}", crate::inspect::chip_of_id(*image).map_or("an unknown chip", Chip::name))]
    #[diagnostic(
        code(espfleet::esp_at::firmware::chip),
        help(
            "use the bootloader and app built for the manifest's chip (its build folder's flasher_args.json names the chip)"
        )
    )]
    WrongChip {
        /// The id in the image.
        image: u16,
        /// The chip the manifest builds for.
        chip: Chip,
    },
    /// Extended header byte 23 is neither 0 nor 1.
    #[error("firmware image byte 23 (hash appended) is {0:#04x}, expected 0 or 1")]
    #[diagnostic(
        code(espfleet::esp_at::firmware::hash_flag),
        help("this is not an ESP32-family image (ESP8266 images have no extended header)")
    )]
    HashFlag(u8),
}

/// The 16-byte extended header (bytes 8..24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendedHeader {
    /// Write-protect pin (`0xEE` = disabled).
    pub wp_pin: u8,
    /// SPI pin drive strengths, two 4-bit values per byte.
    pub spi_drive: [u8; 3],
    /// Chip id (ESP32 0, ESP32-C3 5).
    pub chip_id: u16,
    /// Deprecated minimum chip revision.
    pub min_chip_rev: u8,
    /// Minimum chip revision, major × 100 + minor.
    pub min_chip_rev_full: u16,
    /// Maximum chip revision, major × 100 + minor.
    pub max_chip_rev_full: u16,
    /// Reserved bytes 19..23.
    pub reserved: [u8; 4],
    /// Byte 23: a SHA-256 digest follows the checksum.
    pub hash_appended: bool,
}

/// A decoded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareImage {
    /// Byte 2: flash mode code (QIO 0, QOUT 1, DIO 2, DOUT 3).
    pub flash_mode: u8,
    /// Byte 3: size code << 4 | frequency code.
    pub flash_size_freq: u8,
    /// Entry point.
    pub entry: u32,
    /// Extended header.
    pub extended: ExtendedHeader,
    /// Segments as `(load address, data)`, in file order.
    pub segments: Vec<(u32, Vec<u8>)>,
    /// The stored checksum byte (normally [`FirmwareImage::computed_checksum`]).
    pub checksum: u8,
    /// The stored digest when `hash_appended` (normally [`FirmwareImage::computed_digest`]).
    pub digest: Option<[u8; DIGEST_LEN]>,
    /// Bytes after the image (a merged file or padding); kept so decoding loses nothing.
    pub trailing: Vec<u8>,
}

/// Where the parts of an image are, without copying segment data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLayout {
    /// Number of segments.
    pub segments: usize,
    /// Offset just past the checksum byte: the bytes the digest covers.
    pub data_length: usize,
    /// Whether byte 23 says a digest follows.
    pub hash_appended: bool,
}

/// Parses the structure of an image the way esptool's image loader does. Fails exactly where
/// esptool would call the image invalid (its checksum and digest are not verified by it either).
pub fn layout(bytes: &[u8]) -> Result<ImageLayout, FirmwareError> {
    if bytes.first().is_some_and(|&b| b != MAGIC) {
        return Err(FirmwareError::Magic(bytes[0]));
    }
    if bytes.len() < HEADER_LEN {
        return Err(FirmwareError::TooShort(bytes.len()));
    }
    let count = usize::from(bytes[1]);
    let mut at = HEADER_LEN;
    for index in 0..count {
        let hdr = bytes.get(at..at + 8).ok_or(FirmwareError::Truncated {
            index,
            load_addr: 0,
            len: 0,
            offset: at,
            end: bytes.len(),
        })?;
        let load_addr = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let len = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        let end = (at + 8).checked_add(usize::try_from(len).unwrap_or(usize::MAX));
        match end {
            Some(end) if end <= bytes.len() => at = end,
            _ => {
                return Err(FirmwareError::Truncated {
                    index,
                    load_addr,
                    len,
                    offset: at + 8,
                    end: bytes.len(),
                });
            }
        }
    }
    if count > MAX_SEGMENTS {
        return Err(FirmwareError::SegmentCount(count));
    }
    let checksum_at = at + (15 - at % 16);
    if checksum_at >= bytes.len() {
        return Err(FirmwareError::NoChecksum);
    }
    let flag = bytes[23];
    if flag > 1 {
        return Err(FirmwareError::HashFlag(flag));
    }
    Ok(ImageLayout {
        segments: count,
        data_length: checksum_at + 1,
        hash_appended: flag == 1,
    })
}

/// Whether `esptool merge_bin` treats `bytes` as a valid image it may patch.
pub fn is_valid_for_merge(bytes: &[u8]) -> bool {
    layout(bytes).is_ok()
}

impl FirmwareImage {
    /// Decodes a complete image (anything after it is kept in [`FirmwareImage::trailing`]).
    /// Stricter than [`layout`]: a declared digest must be present in full.
    pub fn decode(bytes: &[u8]) -> Result<Self, FirmwareError> {
        let l = layout(bytes)?;
        let mut segments = Vec::with_capacity(l.segments);
        let mut at = HEADER_LEN;
        for _ in 0..l.segments {
            let addr = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
            let len = usize::try_from(u32::from_le_bytes([
                bytes[at + 4],
                bytes[at + 5],
                bytes[at + 6],
                bytes[at + 7],
            ]))
            .unwrap_or(usize::MAX);
            segments.push((addr, bytes[at + 8..at + 8 + len].to_vec()));
            at += 8 + len;
        }
        let mut end = l.data_length;
        let digest = if l.hash_appended {
            let d = bytes
                .get(end..end + DIGEST_LEN)
                .and_then(|d| <[u8; DIGEST_LEN]>::try_from(d).ok())
                .ok_or(FirmwareError::DigestTruncated(bytes.len() - end))?;
            end += DIGEST_LEN;
            Some(d)
        } else {
            None
        };
        let b = bytes;
        Ok(FirmwareImage {
            flash_mode: b[2],
            flash_size_freq: b[3],
            entry: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            extended: ExtendedHeader {
                wp_pin: b[8],
                spi_drive: [b[9], b[10], b[11]],
                chip_id: u16::from_le_bytes([b[12], b[13]]),
                min_chip_rev: b[14],
                min_chip_rev_full: u16::from_le_bytes([b[15], b[16]]),
                max_chip_rev_full: u16::from_le_bytes([b[17], b[18]]),
                reserved: [b[19], b[20], b[21], b[22]],
                hash_appended: l.hash_appended,
            },
            segments,
            checksum: b[l.data_length - 1],
            digest,
            trailing: b[end..].to_vec(),
        })
    }

    /// XOR of all segment data, seeded with `0xEF` (what the ROM checks).
    pub fn computed_checksum(&self) -> u8 {
        self.segments
            .iter()
            .flat_map(|(_, d)| d)
            .fold(CHECKSUM_SEED, |c, b| c ^ b)
    }

    fn body(&self) -> Vec<u8> {
        let mut out = vec![
            MAGIC,
            u8::try_from(self.segments.len()).unwrap_or(u8::MAX),
            self.flash_mode,
            self.flash_size_freq,
        ];
        out.extend_from_slice(&self.entry.to_le_bytes());
        let e = &self.extended;
        out.push(e.wp_pin);
        out.extend_from_slice(&e.spi_drive);
        out.extend_from_slice(&e.chip_id.to_le_bytes());
        out.push(e.min_chip_rev);
        out.extend_from_slice(&e.min_chip_rev_full.to_le_bytes());
        out.extend_from_slice(&e.max_chip_rev_full.to_le_bytes());
        out.extend_from_slice(&e.reserved);
        out.push(u8::from(e.hash_appended));
        for (addr, data) in &self.segments {
            out.extend_from_slice(&addr.to_le_bytes());
            out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(data);
        }
        out.resize(out.len() + 15 - out.len() % 16, 0);
        out.push(self.checksum);
        out
    }

    /// The SHA-256 esptool appends: over every byte up to and including the checksum.
    pub fn computed_digest(&self) -> [u8; DIGEST_LEN] {
        Sha256::digest(self.body()).into()
    }

    /// Encodes the image as esptool writes it: zero padding before the checksum, the stored
    /// checksum and digest (use [`FirmwareImage::seal`] first to recompute them).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.body();
        if self.extended.hash_appended {
            out.extend_from_slice(&self.digest.unwrap_or_else(|| self.computed_digest()));
        }
        out.extend_from_slice(&self.trailing);
        out
    }

    /// A readable summary (header, extended header, segments, checksum and digest status), in
    /// the spirit of `esptool image-info`, for reviews and `dump` commands.
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let e = &self.extended;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ESP image: {} segment(s), flash mode {:#x}, size/freq {:#04x}, entry {:#010x}",
            self.segments.len(),
            self.flash_mode,
            self.flash_size_freq,
            self.entry
        );
        let _ = writeln!(
            out,
            "extended: wp_pin {:#04x}, chip id {}, chip rev {}..{}, hash appended {}",
            e.wp_pin, e.chip_id, e.min_chip_rev_full, e.max_chip_rev_full, e.hash_appended
        );
        for (i, (addr, data)) in self.segments.iter().enumerate() {
            let _ = writeln!(
                out,
                "  segment {i}: load {addr:#010x} length {:#07x}",
                data.len()
            );
        }
        let ok = |b: bool| if b { "valid" } else { "INVALID" };
        let _ = writeln!(
            out,
            "checksum {:#04x} ({})",
            self.checksum,
            ok(self.checksum == self.computed_checksum())
        );
        if let Some(d) = self.digest {
            let _ = writeln!(
                out,
                "sha256 {} ({})",
                hex::encode(d),
                ok(d == self.computed_digest())
            );
        }
        if !self.trailing.is_empty() {
            let _ = writeln!(out, "{} byte(s) after the image", self.trailing.len());
        }
        out
    }

    /// Recomputes the checksum and (when appended) the digest, as `elf2image` does.
    pub fn seal(&mut self) {
        self.checksum = self.computed_checksum();
        self.digest = self.extended.hash_appended.then(|| self.computed_digest());
    }
}

/// Checks a bootloader or app image the way the chip will: it must decode, carry `chip`'s id,
/// and its checksum and (when appended) SHA-256 must match its contents. Returns the decoded
/// image.
pub fn verify(bytes: &[u8], chip: Chip) -> Result<FirmwareImage, FirmwareError> {
    let img = FirmwareImage::decode(bytes)?;
    if img.extended.chip_id != chip.image_chip_id() {
        return Err(FirmwareError::WrongChip {
            image: img.extended.chip_id,
            chip,
        });
    }
    let computed = img.computed_checksum();
    if img.checksum != computed {
        return Err(FirmwareError::Checksum {
            stored: img.checksum,
            computed,
        });
    }
    if img.digest.is_some_and(|d| d != img.computed_digest()) {
        return Err(FirmwareError::Digest);
    }
    Ok(img)
}

/// esptool's flash-size nibble (`size_code << 4`) for the header.
pub fn size_bits(size: FlashSize) -> u8 {
    size.header_code() << 4
}

/// New flash parameters for an image header; `None` keeps the image's own value
/// (esptool's `keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlashParams {
    /// Flash mode.
    pub mode: Option<FlashMode>,
    /// Flash frequency.
    pub freq: Option<FlashFreq>,
    /// Flash size.
    pub size: Option<FlashSize>,
}

impl FlashParams {
    /// Whether every setting is `keep`.
    pub fn all_keep(self) -> bool {
        self.mode.is_none() && self.freq.is_none() && self.size.is_none()
    }
}

/// What `esptool merge_bin` does to the image at the bootloader offset
/// (`_update_image_flash_params`): unless all settings are `keep`, and only if the data is a
/// valid image, set bytes 2–3 and, when byte 23 is 1, recompute the 32-byte digest after the
/// image over the bytes before it. Anything else is returned unchanged.
pub fn set_flash_params(chip: Chip, image: &[u8], params: FlashParams) -> Vec<u8> {
    if image.len() < 8 || params.all_keep() || image[0] != MAGIC {
        return image.to_vec();
    }
    let Ok(l) = layout(image) else {
        return image.to_vec();
    };
    let mode = params.mode.map_or(image[2], FlashMode::header_code);
    let freq = params
        .freq
        .map_or(image[3] & 0x0F, |f| chip.flash_freq_code(f));
    let size = params.size.map_or(image[3] & 0xF0, size_bits);
    let mut out = image.to_vec();
    out[2] = mode;
    out[3] = size.wrapping_add(freq);
    if l.hash_appended {
        let digest = Sha256::digest(&out[..l.data_length]);
        let after = image
            .get(l.data_length + DIGEST_LEN..)
            .unwrap_or(&[])
            .to_vec();
        out.truncate(l.data_length);
        out.extend_from_slice(&digest);
        out.extend_from_slice(&after);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(hash: bool) -> FirmwareImage {
        let mut img = FirmwareImage {
            flash_mode: 2,
            flash_size_freq: 0x20,
            entry: 0x4008_0000,
            extended: ExtendedHeader {
                wp_pin: 0xEE,
                spi_drive: [0; 3],
                chip_id: 0,
                min_chip_rev: 0,
                min_chip_rev_full: 0,
                max_chip_rev_full: 399,
                reserved: [0; 4],
                hash_appended: hash,
            },
            segments: vec![(0x3FFB_0000, vec![1, 2, 3]), (0x4008_0000, vec![9; 17])],
            checksum: 0,
            digest: None,
            trailing: Vec::new(),
        };
        img.seal();
        img
    }

    #[test]
    fn encode_decode_round_trip() {
        for hash in [false, true] {
            let img = sample(hash);
            let bytes = img.encode();
            assert_eq!(bytes.len() % 16, 0);
            assert_eq!(FirmwareImage::decode(&bytes).unwrap(), img);
            assert!(is_valid_for_merge(&bytes));
        }
    }

    #[test]
    fn invalid_images_are_rejected_like_esptool() {
        let bytes = sample(false).encode();
        assert_eq!(
            layout(&bytes[..34]).unwrap_err(),
            FirmwareError::Truncated {
                index: 0,
                load_addr: 0x3FFB_0000,
                len: 3,
                offset: 32,
                end: 34
            }
        );
        let mut bad = bytes.clone();
        bad[23] = 7;
        assert_eq!(layout(&bad), Err(FirmwareError::HashFlag(7)));
        assert_eq!(layout(&[0x00; 40]), Err(FirmwareError::Magic(0)));
        assert_eq!(
            set_flash_params(
                Chip::Esp32,
                &bad,
                FlashParams {
                    mode: Some(FlashMode::Qio),
                    ..FlashParams::default()
                }
            ),
            bad
        );
    }

    #[test]
    fn flash_params_patch_recomputes_the_digest() {
        let img = sample(true);
        let bytes = img.encode();
        let patched = set_flash_params(
            Chip::Esp32,
            &bytes,
            FlashParams {
                mode: Some(FlashMode::Dout),
                freq: Some(FlashFreq::F80m),
                size: Some(FlashSize::parse("16MB").unwrap()),
            },
        );
        let d = FirmwareImage::decode(&patched).unwrap();
        assert_eq!((d.flash_mode, d.flash_size_freq), (3, 0x4F));
        assert_eq!(d.digest, Some(d.computed_digest()));
        assert_ne!(d.digest, img.digest);
    }
}
