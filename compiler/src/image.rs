//! What the compiler hands to the flasher: named, address-tagged segments.

use std::sync::Arc;

pub mod intel_hex;
pub mod uf2;

use crate::target::{Chip, FlashSettings};

/// One region of flash: bytes to write at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Image name as `flasher_args.json` names it (`bootloader`, `app`, `partition-table`,
    /// `at_customize`, `mfg_nvs`, ...).
    pub name: String,
    /// Flash offset in bytes.
    pub offset: u32,
    /// The bytes to write. Shared, because the cache, the merged image and the flasher all
    /// hold the same data.
    pub data: Arc<[u8]>,
}

impl Segment {
    /// End offset (exclusive).
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + self.data.len() as u64
    }
}

/// Everything a board needs: the segments plus what the board must be for them to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashImage {
    /// The chip the images were built for; the flasher refuses any other.
    pub chip: Chip,
    /// Flash mode, frequency and size the images were built for. The board's detected flash
    /// must be at least `flash.size`.
    pub flash: FlashSettings,
    /// Segments, sorted by offset, non-overlapping.
    pub segments: Vec<Segment>,
}
