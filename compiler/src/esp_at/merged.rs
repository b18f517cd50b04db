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

use super::firmware::{self, FlashParams};
use crate::image::Segment;
use crate::target::{Chip, FlashFreq, FlashMode, FlashSettings};

/// Flash sector size: esptool's overlap check works in whole sectors.
pub const SECTOR: u64 = 0x1000;

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

/// Merges parts exactly as `esptool merge_bin --format raw` (esptool 5.6.0; v4.x behaves the
/// same): the result starts at `target_offset`.
pub fn merge_bin(parts: &[Segment], opts: &MergeOptions) -> Result<Vec<u8>, MergeError> {
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
    let base = opts.target_offset as usize;
    let mut out: Vec<u8> = Vec::new();
    for seg in sorted {
        let at = seg.offset as usize - base;
        if out.len() < at {
            out.resize(at, 0xFF);
        }
        if seg.offset == opts.chip.bootloader_offset() {
            out.extend_from_slice(&firmware::set_flash_params(
                opts.chip, &seg.data, opts.flash,
            ));
        } else {
            out.extend_from_slice(&seg.data);
        }
    }
    if let Some(pad) = opts.pad_to {
        let pad = (pad as usize).saturating_sub(base);
        if out.len() < pad {
            out.resize(pad, 0xFF);
        }
    }
    Ok(out)
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
