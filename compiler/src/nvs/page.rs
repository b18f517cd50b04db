//! Page layout: the 32-byte header, the entry-state bitmap and the 126 entry slots.
//!
//! See `nvs-format.md` section 1. Pages are 4096 bytes; a page that holds data starts with a
//! header whose state word shows how far the device got with it.

use super::Version;
use super::crc::crc32;

/// Size of one flash page, and of every NVS page.
pub const PAGE_SIZE: usize = 4096;
/// Size of one entry slot.
pub const SLOT_SIZE: usize = 32;
/// Entry slots per page: (4096 − 32 header − 32 bitmap) / 32.
pub const SLOTS_PER_PAGE: usize = 126;
/// Offset of slot 0 within a page.
pub const FIRST_SLOT_OFFSET: usize = 64;
/// Offset of the entry-state bitmap within a page.
pub const BITMAP_OFFSET: usize = 32;

/// The page state word (`docs/formats/nvs.md` §1.3). Each step clears more bits, so flash can move a
/// page forward without an erase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageState {
    /// `0xFFFFFFFF`: erased, no header.
    Uninitialized,
    /// `0xFFFFFFFE`: the page the device is currently writing.
    Active,
    /// `0xFFFFFFFC`: no more writes go here.
    Full,
    /// `0xFFFFFFF8`: being garbage-collected.
    Freeing,
    /// `0xFFFFFFF0`: the device found it damaged.
    Corrupt,
    /// Any other value (0 = INVALID on the device).
    Invalid(u32),
}

impl PageState {
    /// The on-flash word for this state.
    pub fn word(self) -> u32 {
        match self {
            Self::Uninitialized => 0xFFFF_FFFF,
            Self::Active => 0xFFFF_FFFE,
            Self::Full => 0xFFFF_FFFC,
            Self::Freeing => 0xFFFF_FFF8,
            Self::Corrupt => 0xFFFF_FFF0,
            Self::Invalid(w) => w,
        }
    }

    /// Reads a state word.
    pub fn from_word(word: u32) -> Self {
        match word {
            0xFFFF_FFFF => Self::Uninitialized,
            0xFFFF_FFFE => Self::Active,
            0xFFFF_FFFC => Self::Full,
            0xFFFF_FFF8 => Self::Freeing,
            0xFFFF_FFF0 => Self::Corrupt,
            w => Self::Invalid(w),
        }
    }
}

/// Writes a fresh ACTIVE header (sequence number = `seq`) and an all-`FF` bitmap into `page`,
/// which must be 4096 bytes of `FF`.
pub fn write_header(page: &mut [u8], seq: u32, version: Version) {
    page[0..4].copy_from_slice(&PageState::Active.word().to_le_bytes());
    page[4..8].copy_from_slice(&seq.to_le_bytes());
    page[8] = version.header_byte();
    let crc = crc32(&page[4..28]);
    page[28..32].copy_from_slice(&crc.to_le_bytes());
}

/// Sets the state word of the page at the start of `page`.
pub fn set_state(page: &mut [u8], state: PageState) {
    page[0..4].copy_from_slice(&state.word().to_le_bytes());
}

/// Reads the state word of `page`.
pub fn state(page: &[u8]) -> PageState {
    PageState::from_word(u32::from_le_bytes([page[0], page[1], page[2], page[3]]))
}

/// Marks slot `slot` as written (`10`) in the bitmap of `page`.
pub fn mark_written(page: &mut [u8], slot: usize) {
    let bit = slot * 2;
    page[BITMAP_OFFSET + bit / 8] &= !(1u8 << (bit % 8));
}

/// The state of one entry slot, from its two bitmap bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// `11`: never written.
    Empty,
    /// `10`: holds (part of) an item.
    Written,
    /// `00`: the item was erased.
    Erased,
    /// `01`: not a state the device writes.
    Illegal,
}

/// Reads the state of slot `slot` from the bitmap of `page`.
pub fn slot_state(page: &[u8], slot: usize) -> SlotState {
    let bit = slot * 2;
    match (page[BITMAP_OFFSET + bit / 8] >> (bit % 8)) & 0b11 {
        0b11 => SlotState::Empty,
        0b10 => SlotState::Written,
        0b00 => SlotState::Erased,
        _ => SlotState::Illegal,
    }
}

/// Byte offset of slot `slot` within a page.
pub const fn slot_offset(slot: usize) -> usize {
    FIRST_SLOT_OFFSET + slot * SLOT_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    // Header CRCs listed in nvs-format.md section 1.2.
    #[test]
    fn header_crcs_match_the_spec() {
        for (seq, version, crc) in [
            (0, Version::V2, 0xB9BA_2D84u32),
            (1, Version::V2, 0x389F_48A3),
            (2, Version::V2, 0x6081_E18B),
            (0, Version::V1, 0xDCDD_16C2),
            (1, Version::V1, 0x5DF8_73E5),
        ] {
            let mut page = vec![0xFF; PAGE_SIZE];
            write_header(&mut page, seq, version);
            assert_eq!(
                u32::from_le_bytes(page[28..32].try_into().unwrap()),
                crc,
                "seq {seq}"
            );
        }
    }

    // Bitmap examples from nvs-format.md section 1.4.
    #[test]
    fn bitmap_examples() {
        let mut page = vec![0xFF; PAGE_SIZE];
        for slot in 0..7 {
            mark_written(&mut page, slot);
        }
        assert_eq!(&page[32..35], &[0xAA, 0xEA, 0xFF]);
        for slot in 7..126 {
            mark_written(&mut page, slot);
        }
        assert!(page[32..63].iter().all(|&b| b == 0xAA));
        assert_eq!(page[63], 0xFA);
        assert_eq!(slot_state(&page, 125), SlotState::Written);
    }
}
