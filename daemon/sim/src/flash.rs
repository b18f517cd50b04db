//! The SPI NOR flash array: erase sets bytes to FF, programming can only clear bits.

use std::time::Duration;

use md5::{Digest as _, Md5};

/// Erase granularity of the flash (and of the loaders' erase maths).
pub const SECTOR_SIZE: u32 = 0x1000;
/// Large erase block, used when a range is 64 KiB aligned.
pub const BLOCK_SIZE: u32 = 0x1_0000;

/// A NOR flash chip held in memory.
///
/// Addresses wrap modulo the size, as a real chip ignores address bits above its capacity. That
/// matters for the "fake capacity" fault, where the JEDEC ID claims more than the array holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashArray {
    data: Vec<u8>,
}

impl FlashArray {
    /// A fully erased chip of `size` bytes (a power of two).
    pub fn erased(size: u32) -> Self {
        FlashArray {
            data: vec![0xFF; size as usize],
        }
    }

    /// A chip holding `image`, padded with FF to `size`. `image` must not be longer than `size`.
    pub fn with_image(size: u32, image: &[u8]) -> Self {
        let mut f = Self::erased(size);
        f.data[..image.len()].copy_from_slice(image);
        f
    }

    /// Capacity in bytes.
    pub fn size(&self) -> u32 {
        u32::try_from(self.data.len()).expect("flash sizes fit in u32")
    }

    /// The whole array.
    pub fn contents(&self) -> &[u8] {
        &self.data
    }

    fn index(&self, addr: u32) -> usize {
        (addr % self.size()) as usize
    }

    /// Programs `bytes` at `addr` with NOR semantics: stored = old AND new. A client that skips
    /// the erase gets corrupted data, as on real flash.
    pub fn program(&mut self, addr: u32, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let at = self.index(addr.wrapping_add(u32::try_from(i).expect("block fits in u32")));
            self.data[at] &= b;
        }
    }

    /// Copies `len` bytes from `addr`.
    pub fn read(&self, addr: u32, len: u32) -> Vec<u8> {
        (0..len)
            .map(|i| self.data[self.index(addr.wrapping_add(i))])
            .collect()
    }

    /// Erases the sector containing `addr`.
    pub fn erase_sector(&mut self, addr: u32) {
        let start = self.index(addr - addr % SECTOR_SIZE);
        self.data[start..start + SECTOR_SIZE as usize].fill(0xFF);
    }

    /// True when the sector containing `addr` is already all FF.
    pub fn sector_is_blank(&self, addr: u32) -> bool {
        let start = self.index(addr - addr % SECTOR_SIZE);
        self.data[start..start + SECTOR_SIZE as usize]
            .iter()
            .all(|&b| b == 0xFF)
    }

    /// Erases every sector overlapping `[addr, addr + len)` and returns the typical time a real
    /// chip would take (64 KiB block erases where aligned, 4 KiB sector erases elsewhere).
    pub fn erase_range(&mut self, addr: u32, len: u32, timing: &FlashTiming) -> Duration {
        if len == 0 {
            return Duration::ZERO;
        }
        let mut at = addr - addr % SECTOR_SIZE;
        let end = u64::from(addr) + u64::from(len);
        let mut time = Duration::ZERO;
        while u64::from(at) < end {
            if at % BLOCK_SIZE == 0
                && u64::from(at) + u64::from(BLOCK_SIZE)
                    <= end.next_multiple_of(u64::from(SECTOR_SIZE))
            {
                for s in 0..BLOCK_SIZE / SECTOR_SIZE {
                    self.erase_sector(at + s * SECTOR_SIZE);
                }
                time += timing.block_erase;
                at += BLOCK_SIZE;
            } else {
                self.erase_sector(at);
                time += timing.sector_erase;
                at += SECTOR_SIZE;
            }
        }
        time
    }

    /// Erases the whole chip.
    pub fn erase_all(&mut self) {
        self.data.fill(0xFF);
    }

    /// MD5 of `[addr, addr + len)`, nothing rounded.
    pub fn md5(&self, addr: u32, len: u32) -> [u8; 16] {
        let mut h = Md5::new();
        let start = self.index(addr);
        if start + len as usize <= self.data.len() {
            h.update(&self.data[start..start + len as usize]);
        } else {
            h.update(self.read(addr, len));
        }
        h.finalize().into()
    }
}

/// Typical SPI NOR timings (W25Q32 class, `docs/formats/serial-protocol.md` §12), charged before or after replies
/// according to the loader. Multiply by a scale factor to speed up or switch off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlashTiming {
    /// One 4 KiB sector erase.
    pub sector_erase: Duration,
    /// One 64 KiB block erase.
    pub block_erase: Duration,
    /// Programming one KiB (four 256-byte pages).
    pub program_per_kib: Duration,
    /// Full chip erase per MiB.
    pub chip_erase_per_mib: Duration,
    /// Reading (for MD5 and reads) per MiB.
    pub read_per_mib: Duration,
}

impl FlashTiming {
    /// The typical figures of `docs/formats/serial-protocol.md` §12.
    pub const TYPICAL: FlashTiming = FlashTiming {
        sector_erase: Duration::from_millis(45),
        block_erase: Duration::from_millis(150),
        program_per_kib: Duration::from_micros(2500),
        chip_erase_per_mib: Duration::from_millis(2500),
        read_per_mib: Duration::from_millis(100),
    };

    /// Time to program `bytes` bytes.
    pub fn program(&self, bytes: usize) -> Duration {
        self.program_per_kib
            .mul_f64(u32::try_from(bytes).map_or(f64::MAX, f64::from) / 1024.0)
    }

    /// Time to read `bytes` bytes.
    pub fn read(&self, bytes: u32) -> Duration {
        self.read_per_mib
            .mul_f64(f64::from(bytes) / f64::from(1u32 << 20))
    }

    /// Time to erase a whole chip of `bytes` bytes.
    pub fn chip_erase(&self, bytes: u32) -> Duration {
        self.chip_erase_per_mib
            .mul_f64(f64::from(bytes) / f64::from(1u32 << 20))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programming_only_clears_bits_until_erased() {
        let mut f = FlashArray::erased(1 << 20);
        f.program(0x100, &[0xF0, 0x0F]);
        f.program(0x100, &[0x3C, 0xFF]);
        assert_eq!(f.read(0x100, 2), [0x30, 0x0F]);
        let t = f.erase_range(0x100, 1, &FlashTiming::TYPICAL);
        assert_eq!(t, FlashTiming::TYPICAL.sector_erase);
        assert_eq!(f.read(0x100, 2), [0xFF, 0xFF]);
    }

    #[test]
    fn erase_range_covers_overlapping_sectors_and_uses_blocks_when_aligned() {
        let mut f = FlashArray::with_image(1 << 20, &vec![0u8; 0x3_0000]);
        // 0x0FFF..0x2_1001 touches sectors 0x0000 to 0x21000: 64 KiB blocks at 0 and 0x10000
        // (every sector of both overlaps the range), then sectors 0x20000 and 0x21000.
        let t = f.erase_range(0x0FFF, 0x2_0002, &FlashTiming::TYPICAL);
        assert!(f.read(0, 0x2_2000).iter().all(|&b| b == 0xFF));
        assert_eq!(f.read(0x2_2000, 1), [0]);
        let ty = FlashTiming::TYPICAL;
        assert_eq!(t, ty.block_erase * 2 + ty.sector_erase * 2);
    }

    #[test]
    fn addresses_wrap_like_a_real_chip() {
        let mut f = FlashArray::erased(1 << 20);
        f.program((1 << 20) + 4, &[0]);
        assert_eq!(f.read(4, 1), [0]);
    }

    #[test]
    fn md5_of_region() {
        // MD5("") and MD5 of 16 FF bytes computed with Python's hashlib.
        let f = FlashArray::erased(1 << 20);
        assert_eq!(
            f.md5(0, 0),
            *b"\xd4\x1d\x8c\xd9\x8f\x00\xb2\x04\xe9\x80\x09\x98\xec\xf8\x42\x7e"
        );
        assert_eq!(
            f.md5(0x10, 16),
            *b"\x8d\x79\xcb\xc9\xa4\xec\xdd\xe1\x12\xfc\x91\xba\x62\x5b\x13\xc2"
        );
    }
}
