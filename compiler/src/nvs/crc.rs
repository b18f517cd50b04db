//! The CRC-32 variant every NVS checksum uses.
//!
//! ESP-IDF computes `esp_rom_crc32_le(0xFFFFFFFF, …)`, which the generator reproduces with
//! `zlib.crc32(data, 0xFFFFFFFF)`: the reflected IEEE polynomial with the shift register
//! starting at **0** (zlib inverts the seed) and a final XOR. It is therefore *not* the common
//! CRC-32: `"123456789"` gives `0xD202D277`, the empty input `0xFFFFFFFF`.

/// Below this length a table walk beats crc32fast's carry-less multiplication set-up (most NVS
/// checksums cover 28-byte entries and short strings).
const SHORT: usize = 64;

/// Slice-by-8 tables of the reflected IEEE polynomial 0xEDB88320.
const TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut j = 1;
        while j < 8 {
            let prev = t[j - 1][i];
            t[j][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            j += 1;
        }
        i += 1;
    }
    t
};

/// Advances the shift register `crc` (already inverted) over `data`.
fn update_short(mut crc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = TABLES[7][(lo & 0xFF) as usize]
            ^ TABLES[6][((lo >> 8) & 0xFF) as usize]
            ^ TABLES[5][((lo >> 16) & 0xFF) as usize]
            ^ TABLES[4][(lo >> 24) as usize]
            ^ TABLES[3][(hi & 0xFF) as usize]
            ^ TABLES[2][((hi >> 8) & 0xFF) as usize]
            ^ TABLES[1][((hi >> 16) & 0xFF) as usize]
            ^ TABLES[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ TABLES[0][((crc ^ u32::from(b)) & 0xFF) as usize];
    }
    crc
}

/// NVS CRC-32 of `data` (`docs/formats/nvs.md` §3).
pub fn crc32(data: &[u8]) -> u32 {
    if data.len() < SHORT {
        // zlib.crc32(data, 0xFFFFFFFF): the register starts at !0xFFFFFFFF = 0.
        return !update_short(0, data);
    }
    let mut hasher = crc32fast::Hasher::new_with_initial(0xFFFF_FFFF);
    hasher.update(data);
    hasher.finalize()
}

/// CRC of an entry: bytes 0..4 followed by bytes 8..32 (the CRC field itself is skipped).
pub fn entry_crc(entry: &[u8; 32]) -> u32 {
    !update_short(update_short(0, &entry[0..4]), &entry[8..32])
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

    #[test]
    fn table_path_agrees_with_crc32fast_at_every_length() {
        let data: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in 0..data.len() {
            let mut h = crc32fast::Hasher::new_with_initial(0xFFFF_FFFF);
            h.update(&data[..len]);
            assert_eq!(crc32(&data[..len]), h.finalize(), "length {len}");
        }
        let mut entry = [0u8; 32];
        entry.copy_from_slice(&data[..32]);
        let mut h = crc32fast::Hasher::new_with_initial(0xFFFF_FFFF);
        h.update(&entry[0..4]);
        h.update(&entry[8..32]);
        assert_eq!(super::entry_crc(&entry), h.finalize());
    }
}
