//! The CRC-32 variant every NVS checksum uses.
//!
//! ESP-IDF computes `esp_rom_crc32_le(0xFFFFFFFF, …)`, which the generator reproduces with
//! `zlib.crc32(data, 0xFFFFFFFF)`: the reflected IEEE polynomial with the shift register
//! starting at **0** (zlib inverts the seed) and a final XOR. It is therefore *not* the common
//! CRC-32: `"123456789"` gives `0xD202D277`, the empty input `0xFFFFFFFF`.

/// NVS CRC-32 of `data` (spec section 3).
pub fn crc32(data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(0xFFFF_FFFF);
    hasher.update(data);
    hasher.finalize()
}

/// CRC of an entry: bytes 0..4 followed by bytes 8..32 (the CRC field itself is skipped).
pub fn entry_crc(entry: &[u8; 32]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(0xFFFF_FFFF);
    hasher.update(&entry[0..4]);
    hasher.update(&entry[8..32]);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::crc32;

    // Vectors from nvs-format.md section 3 (checked there against zlib and esp_rom_crc32_le).
    #[test]
    fn spec_vectors() {
        assert_eq!(crc32(b""), 0xFFFF_FFFF);
        assert_eq!(crc32(b"123456789"), 0xD202_D277);
        assert_eq!(crc32(b"hi\0"), 0x0D04_B589);
        assert_eq!(crc32(&[1, 2, 3, 4, 5]), 0x7ED6_9116);
    }
}
