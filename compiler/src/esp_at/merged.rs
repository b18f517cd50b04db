//! The merged factory image (`factory/factory_<MODULE>.bin`), `docs/formats/esp-at-images.md` §10.4.
//!
//! Two generators, chosen by release ([`super::release::ReleaseFormats::merge_tool`]):
//!
//! * [`merge_bin`]: `esptool merge_bin` (ESP-AT v4.1.0.0+, and what espfleet uses by default).
//!   Parts sorted by address, overlaps (at 4 KiB sector granularity) rejected, gaps filled with
//!   `0xFF`, the image at the chip's bootloader offset patched with the flash settings (and its
//!   appended SHA-256 recomputed), optionally padded to the flash size (`--fill-flash-size` /
//!   `--pad-to-size`) — ESP-AT writes both the padded and the `_unfilled` form.
//! * [`combine_script`]: `tools/esp_at_factory_bin_combine.py` (v2.2.0.0–v4.0.0.0). A
//!   flash-size buffer of `0xFF`, parts copied in argument order (later ones win), bytes 2–3 of
//!   `bootloader.bin` patched with the script's own frequency table, digest **not** recomputed.

use std::sync::Arc;

use super::firmware::{self, FlashParams};
use crate::image::uf2::{self, Uf2Options};
use crate::image::{Segment, intel_hex};
use crate::target::{Chip, FlashFreq, FlashMode, FlashSettings};

/// Flash sector size: esptool's overlap check works in whole sectors.
pub const SECTOR: u64 = 0x1000;

/// The largest raw merged image espfleet writes: 128 MiB, the largest flash esptool knows
/// (`--pad-to-size 128MB`). A part further out would make esptool write gigabytes of `0xFF`.
pub const MAX_RAW_OUTPUT: u64 = 128 << 20;

/// Errors building a merged image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum MergeError {
    /// Two parts share a flash sector.
    #[error(
        "`{second}` at {second_offset:#x} overlaps `{first}` (they share a 4 KiB flash sector)"
    )]
    #[diagnostic(
        code(espfleet::esp_at::merged::overlap),
        help("move one of the partitions; esptool rejects images whose sectors overlap")
    )]
    Overlap {
        /// The lower part.
        first: String,
        /// The part that starts inside it.
        second: String,
        /// Offset of `second`.
        second_offset: u32,
    },
    /// Nothing to merge.
    #[error("no parts to merge")]
    #[diagnostic(
        code(espfleet::esp_at::merged::empty),
        help("a factory image needs at least the bootloader, partition table and app")
    )]
    Empty,
    /// A part starts before the output's target offset.
    #[error("`{name}` at {offset:#x} lies before the output's start {target:#x}")]
    #[diagnostic(
        code(espfleet::esp_at::merged::before_target),
        help("use a target offset at or below the lowest part")
    )]
    BeforeTarget {
        /// Part.
        name: String,
        /// Its offset.
        offset: u32,
        /// Target offset.
        target: u32,
    },
    /// A raw output would be larger than any flash.
    #[error("`{name}` at {offset:#x} would make the merged image {size} bytes long")]
    #[diagnostic(
        code(espfleet::esp_at::merged::too_large),
        help(
            "a raw image holds everything from the target offset on, at most 128 MiB; \
             check the address, raise --target-offset, or use --format hex or uf2"
        )
    )]
    TooLarge {
        /// Part.
        name: String,
        /// Its offset.
        offset: u64,
        /// The output size it would need.
        size: u64,
    },
    /// A part (or a record of an Intel HEX input) lies beyond the 32-bit flash address space.
    #[error("`{name}` reaches past the 4 GiB address space ({end:#x})")]
    #[diagnostic(
        code(espfleet::esp_at::merged::address_overflow),
        help("flash addresses are 32-bit; check the address given for this file")
    )]
    AddressOverflow {
        /// Part.
        name: String,
        /// Its end address.
        end: u64,
    },
    /// An Intel HEX input writes one address twice.
    #[error("`{name}` writes address {address:#x} twice (line {line})")]
    #[diagnostic(
        code(espfleet::esp_at::merged::hex_overlap),
        help("an Intel HEX input must not give two values for one byte; regenerate the file")
    )]
    HexOverlap {
        /// The input file.
        name: String,
        /// The address.
        address: u64,
        /// Line of the second record.
        line: usize,
    },
    /// A UF2 chunk size that is zero, not a multiple of 4, or larger than a block's payload.
    #[error("UF2 chunk size {chunk} is not usable (a multiple of 4 from 4 to {max})")]
    #[diagnostic(
        code(espfleet::esp_at::merged::uf2_chunk_size),
        help("leave --chunk-size out to use the largest, or pick e.g. 256")
    )]
    Uf2ChunkSize {
        /// The requested size.
        chunk: u32,
        /// The largest allowed with these options.
        max: u32,
    },
    /// The combine script's fixed flash-size buffer cannot hold a part.
    #[error("`{name}` at {offset:#x} ({len} bytes) does not fit in {flash_size} bytes of flash")]
    #[diagnostic(
        code(espfleet::esp_at::merged::outside_flash),
        help("choose a bigger flash size or move the partition")
    )]
    OutsideFlash {
        /// Part.
        name: String,
        /// Offset.
        offset: u32,
        /// Length.
        len: usize,
        /// Flash size in bytes.
        flash_size: u32,
    },
}

/// Options of [`merge_bin`], as the esptool command line gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeOptions {
    /// `--chip`: selects the bootloader offset and the frequency codes.
    pub chip: Chip,
    /// `--flash-mode/--flash-freq/--flash-size` (`None` = `keep`).
    pub flash: FlashParams,
    /// `--pad-to-size` / `--fill-flash-size`: pad with `0xFF` to this many bytes.
    pub pad_to: Option<u32>,
    /// `--target-offset`: flash address of the output's first byte (0 for a factory image).
    pub target_offset: u32,
}

impl MergeOptions {
    /// The options ESP-AT's build uses: flash settings from `flash_project_args`, target 0,
    /// padded to the flash size when `filled`.
    pub fn esp_at(chip: Chip, flash: FlashSettings, filled: bool) -> Self {
        MergeOptions {
            chip,
            flash: FlashParams {
                mode: Some(flash.mode),
                freq: Some(flash.freq),
                size: Some(flash.size),
            },
            pad_to: filled.then_some(flash.size.bytes()),
            target_offset: 0,
        }
    }
}

fn check_overlaps(sorted: &[&Segment]) -> Result<(), MergeError> {
    // esptool: sector_start < end of the previous part's last sector (inclusive) is an overlap.
    let mut end: i64 = 0;
    let mut prev: Option<&Segment> = None;
    for seg in sorted {
        let start = i64::from(seg.offset);
        let len = i64::try_from(seg.data.len()).unwrap_or(i64::MAX);
        let sector = i64::try_from(SECTOR).unwrap_or(0x1000);
        let sector_start = start & !(sector - 1);
        let sector_end = ((start + len + sector - 1) & !(sector - 1)) - 1;
        if sector_start < end {
            return Err(MergeError::Overlap {
                first: prev.map_or_else(String::new, |p| p.name.clone()),
                second: seg.name.clone(),
                second_offset: seg.offset,
            });
        }
        end = sector_end;
        prev = Some(seg);
    }
    Ok(())
}

/// The container `esptool merge-bin --format` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeFormat {
    /// One flat image starting at the target offset, gaps filled with `0xFF` (the default).
    #[default]
    Raw,
    /// Intel HEX with absolute addresses and no padding ([`intel_hex`]).
    IntelHex,
    /// UF2 blocks for the chip's family id ([`uf2`]).
    Uf2(Uf2Options),
}

/// Merges parts exactly as `esptool merge_bin --format raw` (esptool 5.6.0; v4.x behaves the
/// same): the result starts at `target_offset`.
pub fn merge_bin(parts: &[Segment], opts: &MergeOptions) -> Result<Vec<u8>, MergeError> {
    merge(parts, opts, MergeFormat::Raw)
}

/// Merges parts into `format` exactly as esptool 5.6.0's `merge-bin` does: parts sorted by
/// address, overlaps (at sector granularity) and parts below the target offset rejected, the
/// image at the chip's bootloader offset given the flash settings. Raw output starts at the
/// target offset, fills gaps with `0xFF` and is padded to `pad_to`; Intel HEX and UF2 keep
/// absolute addresses and ignore `pad_to` (and the offset), as esptool does.
pub fn merge(
    parts: &[Segment],
    opts: &MergeOptions,
    format: MergeFormat,
) -> Result<Vec<u8>, MergeError> {
    let mut sorted: Vec<&Segment> = parts.iter().collect();
    sorted.sort_by_key(|s| s.offset);
    check_overlaps(&sorted)?;
    let first = sorted.first().ok_or(MergeError::Empty)?;
    if first.offset < opts.target_offset {
        return Err(MergeError::BeforeTarget {
            name: first.name.clone(),
            offset: first.offset,
            target: opts.target_offset,
        });
    }
    for seg in &sorted {
        if seg.end() > 1 << 32 {
            return Err(MergeError::AddressOverflow {
                name: seg.name.clone(),
                end: seg.end(),
            });
        }
    }
    let patched: Vec<(u32, std::borrow::Cow<'_, [u8]>)> = sorted
        .iter()
        .map(|seg| {
            let data = if seg.offset == opts.chip.bootloader_offset() {
                std::borrow::Cow::Owned(firmware::set_flash_params(
                    opts.chip, &seg.data, opts.flash,
                ))
            } else {
                std::borrow::Cow::Borrowed(&seg.data[..])
            };
            (seg.offset, data)
        })
        .collect();
    match format {
        MergeFormat::Raw => raw(&sorted, &patched, opts),
        MergeFormat::IntelHex => {
            let regions: Vec<(u32, &[u8])> = patched.iter().map(|(a, d)| (*a, &d[..])).collect();
            Ok(intel_hex::encode(&regions).into_bytes())
        }
        MergeFormat::Uf2(options) => {
            let chunk = options.chunk().ok_or(MergeError::Uf2ChunkSize {
                chunk: options.chunk_size.unwrap_or(0),
                max: options.max_chunk(),
            })?;
            let files: Vec<(u32, &[u8])> = patched.iter().map(|(a, d)| (*a, &d[..])).collect();
            Ok(uf2::encode(
                opts.chip.uf2_family_id(),
                &files,
                options,
                chunk,
            ))
        }
    }
}

fn raw(
    sorted: &[&Segment],
    patched: &[(u32, std::borrow::Cow<'_, [u8]>)],
    opts: &MergeOptions,
) -> Result<Vec<u8>, MergeError> {
    let base = u64::from(opts.target_offset);
    for (seg, (_, data)) in sorted.iter().zip(patched) {
        let size = u64::from(seg.offset) + data.len() as u64 - base;
        if size > MAX_RAW_OUTPUT {
            return Err(MergeError::TooLarge {
                name: seg.name.clone(),
                offset: u64::from(seg.offset),
                size,
            });
        }
    }
    let mut out: Vec<u8> = Vec::new();
    for (offset, data) in patched {
        let at = usize::try_from(u64::from(*offset) - base).unwrap_or(usize::MAX);
        if out.len() < at {
            out.resize(at, 0xFF);
        }
        out.extend_from_slice(data);
    }
    if let Some(pad) = opts.pad_to {
        let pad = usize::try_from(u64::from(pad).saturating_sub(base)).unwrap_or(usize::MAX);
        if out.len() < pad {
            out.resize(pad, 0xFF);
        }
    }
    Ok(out)
}

/// The parts one `ADDRESS FILE` argument of `esptool merge-bin` stands for. A file that starts
/// with `:` and reads as Intel HEX becomes one part per contiguous run at the file's own
/// addresses (the address argument is then ignored, as esptool ignores it); anything else,
/// including a file that starts with `:` but is not valid Intel HEX, is one raw part at
/// `address`.
pub fn input_parts(address: u32, name: &str, bytes: Vec<u8>) -> Result<Vec<Segment>, MergeError> {
    if bytes.first() == Some(&b':') {
        match intel_hex::decode(&bytes) {
            Ok(runs) => {
                return runs
                    .into_iter()
                    .map(|(start, data)| {
                        let end = start + data.len() as u64;
                        let offset = u32::try_from(start)
                            .ok()
                            .filter(|_| end <= 1 << 32)
                            .ok_or_else(|| MergeError::AddressOverflow {
                                name: name.to_owned(),
                                end,
                            })?;
                        Ok(Segment {
                            name: name.to_owned(),
                            offset,
                            data: Arc::from(data),
                        })
                    })
                    .collect();
            }
            Err(intel_hex::DecodeError::Overlap { address, line }) => {
                return Err(MergeError::HexOverlap {
                    name: name.to_owned(),
                    address,
                    line,
                });
            }
            Err(intel_hex::DecodeError::NotHex { .. }) => {}
        }
    }
    Ok(vec![Segment {
        name: name.to_owned(),
        offset: address,
        data: Arc::from(bytes),
    }])
}

/// The frequency code of `esp_at_factory_bin_combine.py`: 40M 0, 26M 1, 20M 2, 80M 0xF (and
/// 60M 0xF from v3.0.0.0, which espfleet's chips do not use).
pub fn combine_freq_code(freq: FlashFreq) -> u8 {
    match freq {
        FlashFreq::F40m => 0x0,
        FlashFreq::F26m => 0x1,
        FlashFreq::F20m => 0x2,
        FlashFreq::F80m => 0xF,
    }
}

/// Reproduces `esp_at_factory_bin_combine.py` (ESP-AT v2.2.0.0–v4.0.0.0): a buffer of exactly
/// the flash size filled with `0xFF`, parts copied at their offsets in the given order (later
/// parts overwrite earlier ones), then bytes 2–3 of the part named `bootloader` set from
/// `flash` — without recomputing its appended digest, as the script does.
pub fn combine_script(parts: &[Segment], flash: FlashSettings) -> Result<Vec<u8>, MergeError> {
    let size = flash.size.bytes();
    let mut out = vec![0xFF; size as usize];
    for seg in parts {
        let start = seg.offset as usize;
        let end = start
            .checked_add(seg.data.len())
            .filter(|&e| e <= out.len())
            .ok_or_else(|| MergeError::OutsideFlash {
                name: seg.name.clone(),
                offset: seg.offset,
                len: seg.data.len(),
                flash_size: size,
            })?;
        out[start..end].copy_from_slice(&seg.data);
    }
    if let Some(boot) = parts.iter().rev().find(|s| s.name == "bootloader") {
        let at = boot.offset as usize;
        if out.len() >= at + 4 {
            out[at + 2] = mode_code(flash.mode);
            out[at + 3] = (flash.size.header_code() << 4) | combine_freq_code(flash.freq);
        }
    }
    Ok(out)
}

/// Cuts parts back out of a merged image (the decoder of [`merge_bin`]): `(name, offset,
/// length)` for each part, `target_offset` the flash address of the image's first byte.
/// Parts that reach past the image's end are errors (an unfilled image ends with its last
/// part; erased flash after it is not in the file).
pub fn extract(
    image: &[u8],
    target_offset: u32,
    layout: &[(&str, u32, usize)],
) -> Result<Vec<Segment>, MergeError> {
    layout
        .iter()
        .map(|&(name, offset, len)| {
            let outside = || MergeError::OutsideFlash {
                name: name.to_owned(),
                offset,
                len,
                flash_size: u32::try_from(image.len()).unwrap_or(u32::MAX),
            };
            let start = offset.checked_sub(target_offset).ok_or_else(outside)? as usize;
            let data = image
                .get(start..start.checked_add(len).ok_or_else(outside)?)
                .ok_or_else(outside)?;
            Ok(Segment {
                name: name.to_owned(),
                offset,
                data: data.into(),
            })
        })
        .collect()
}

fn mode_code(mode: FlashMode) -> u8 {
    mode.header_code()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn seg(name: &str, offset: u32, data: &[u8]) -> Segment {
        Segment {
            name: name.to_owned(),
            offset,
            data: Arc::from(data),
        }
    }

    #[test]
    fn gaps_are_ff_and_overlaps_rejected() {
        let opts = MergeOptions {
            chip: Chip::Esp32,
            flash: FlashParams::default(),
            pad_to: None,
            target_offset: 0,
        };
        let out = merge_bin(&[seg("b", 0x2000, b"BB"), seg("a", 0x10, b"A")], &opts).unwrap();
        assert_eq!(out.len(), 0x2002);
        assert_eq!(out[0x10], b'A');
        assert!(out[..0x10].iter().all(|&b| b == 0xFF));
        let err =
            merge_bin(&[seg("a", 0x0, &[0; 0x800]), seg("b", 0x900, b"x")], &opts).unwrap_err();
        assert!(matches!(err, MergeError::Overlap { ref second, .. } if second == "b"));
        let padded = merge_bin(
            &[seg("a", 0x0, b"x")],
            &MergeOptions {
                pad_to: Some(0x1000),
                ..opts
            },
        )
        .unwrap();
        assert_eq!(padded.len(), 0x1000);
    }

    #[test]
    fn combine_script_overlays_in_order_and_patches_the_bootloader() {
        let flash = FlashSettings {
            mode: FlashMode::Dio,
            freq: FlashFreq::F40m,
            size: crate::target::FlashSize::parse("1MB").unwrap(),
        };
        let out = combine_script(
            &[
                seg("bootloader", 0x1000, &[0xE9, 1, 0, 0xFF, 7]),
                seg("x", 0x1004, b"Z"),
            ],
            flash,
        )
        .unwrap();
        assert_eq!(out.len(), 1 << 20);
        assert_eq!(&out[0x1000..0x1006], &[0xE9, 1, 2, 0x00, b'Z', 0xFF]);
    }
}
