//! NVS encryption: XTS-AES-256 per written 32-byte slot (`docs/formats/nvs.md` §9), keys files, key
//! generation from the OS random number generator, and the HMAC-based key derivation.

use aes::Aes256;
use aes::cipher::KeyInit;
use hmac::{Hmac, Mac};
use xts_mode::Xts128;

use super::crc::crc32;
use super::error::{NvsError, NvsErrorKind};
use super::page::{self, PAGE_SIZE, SLOT_SIZE, SLOTS_PER_PAGE, SlotState};

/// Length of a keys file written by `generate-key`: the 64 key bytes, their CRC, `FF` padding.
pub const KEYS_FILE_LEN: usize = 4096;

/// The 64-byte NVS encryption key: XTS data key followed by XTS tweak key.
#[derive(Clone, PartialEq, Eq)]
pub struct NvsKey([u8; 64]);

impl std::fmt::Debug for NvsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NvsKey(..)")
    }
}

impl NvsKey {
    /// The key from the first 64 bytes of a keys file (as the generator reads `--inputkey`).
    pub fn from_keys_file(bytes: &[u8]) -> Result<Self, NvsError> {
        let Some(key) = bytes.get(..64) else {
            return Err(NvsErrorKind::KeyFileTooShort { len: bytes.len() }.into());
        };
        let key: [u8; 64] = key.try_into().expect("64 bytes");
        if key[..32] == key[32..] {
            return Err(NvsErrorKind::XtsDuplicateKeys.into());
        }
        Ok(Self(key))
    }

    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, NvsError> {
        loop {
            let mut key = [0u8; 64];
            getrandom::fill(&mut key).map_err(|e| NvsErrorKind::RngFailed {
                message: e.to_string(),
            })?;
            if key[..32] != key[32..] {
                return Ok(Self(key));
            }
        }
    }

    /// Derives the key from an HMAC key (`--key_protect_hmac`): data key =
    /// HMAC-SHA256(hmac_key, `5A5ABEAE`×8), tweak key = HMAC-SHA256(hmac_key, `A5A5DECE`×8).
    pub fn from_hmac_key(hmac_key: &[u8]) -> Self {
        let derive = |seed: [u8; 4]| -> [u8; 32] {
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(hmac_key)
                .expect("HMAC takes any key length");
            for _ in 0..8 {
                mac.update(&seed);
            }
            mac.finalize().into_bytes().into()
        };
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(&derive([0x5A, 0x5A, 0xBE, 0xAE]));
        key[32..].copy_from_slice(&derive([0xA5, 0xA5, 0xDE, 0xCE]));
        Self(key)
    }

    /// The raw 64 bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// The keys file `generate-key` writes: key, CRC32 (NVS variant) of the key, `FF` to 4096.
    pub fn to_keys_file(&self) -> Vec<u8> {
        let mut out = vec![0xFF; KEYS_FILE_LEN];
        out[..64].copy_from_slice(&self.0);
        out[64..68].copy_from_slice(&crc32(&self.0).to_le_bytes());
        out
    }

    fn cipher(&self) -> Result<Xts128<Aes256>, NvsError> {
        if self.0[..32] == self.0[32..] {
            return Err(NvsErrorKind::XtsDuplicateKeys.into());
        }
        let k1 = Aes256::new_from_slice(&self.0[..32]).expect("32-byte key");
        let k2 = Aes256::new_from_slice(&self.0[32..]).expect("32-byte key");
        Ok(Xts128::new(k1, k2))
    }
}

/// A fresh random 32-byte HMAC key (`--kp_hmac_keygen`).
pub fn generate_hmac_key() -> Result<[u8; 32], NvsError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| NvsErrorKind::RngFailed {
        message: e.to_string(),
    })?;
    Ok(key)
}

fn tweak(offset: usize) -> [u8; 16] {
    (offset as u128).to_le_bytes()
}

/// Encrypts an image made by the encoder in place: every slot whose bitmap state is
/// "written" becomes one XTS data unit whose tweak is its byte offset in the image. Headers,
/// bitmaps and unused slots stay as they are — exactly what the generator's `encrypt` writes.
pub fn encrypt_image(image: &mut [u8], key: &NvsKey) -> Result<(), NvsError> {
    let xts = key.cipher()?;
    for (p, page) in image.chunks_mut(PAGE_SIZE).enumerate() {
        if page.len() < PAGE_SIZE {
            break;
        }
        for slot in 0..SLOTS_PER_PAGE {
            if page::slot_state(page, slot) == SlotState::Written {
                let off = page::slot_offset(slot);
                xts.encrypt_sector(&mut page[off..off + SLOT_SIZE], tweak(p * PAGE_SIZE + off));
            }
        }
    }
    Ok(())
}

/// Decrypts an encrypted image the way the generator's `decrypt` does: in each page, every
/// 32-byte unit after the header and bitmap that is not all `FF` is decrypted, the n-th such
/// unit with the tweak of slot n (correct for generator output, whose used slots are
/// contiguous). Everything else is copied.
pub fn decrypt_image(image: &[u8], key: &NvsKey) -> Result<Vec<u8>, NvsError> {
    if image.len() % SLOT_SIZE != 0 {
        return Err(NvsErrorKind::ImageLength { len: image.len() }.into());
    }
    let xts = key.cipher()?;
    let mut out = image.to_vec();
    for (p, page) in out.chunks_mut(PAGE_SIZE).enumerate() {
        let mut decrypted = 0usize;
        for (unit, data) in page.chunks_mut(SLOT_SIZE).enumerate().skip(2) {
            if data.iter().all(|&b| b == 0xFF) {
                continue;
            }
            let off = p * PAGE_SIZE + page::slot_offset(decrypted);
            let _ = unit;
            xts.decrypt_sector(data, tweak(off));
            decrypted += 1;
        }
    }
    Ok(out)
}

/// Decrypts only the slots the (plaintext) bitmaps mark as written, each with its own offset
/// as tweak: the exact inverse of [`encrypt_image`], used by `dump --key`.
pub fn decrypt_written_slots(image: &[u8], key: &NvsKey) -> Result<Vec<u8>, NvsError> {
    let xts = key.cipher()?;
    let mut out = image.to_vec();
    for (p, page) in out.chunks_mut(PAGE_SIZE).enumerate() {
        if page.len() < PAGE_SIZE {
            break;
        }
        for slot in 0..SLOTS_PER_PAGE {
            if page::slot_state(page, slot) == SlotState::Written {
                let off = page::slot_offset(slot);
                xts.decrypt_sector(&mut page[off..off + SLOT_SIZE], tweak(p * PAGE_SIZE + off));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nvs-format.md section 10, Example N1 encrypted with key bytes 10 11 … 4F.
    #[test]
    fn spec_example_n1() {
        let key_bytes: Vec<u8> = (0x10..0x50).collect();
        let key = NvsKey::from_keys_file(&key_bytes).unwrap();
        let mut keys_file = key.to_keys_file();
        assert_eq!(&keys_file[64..68], &[0x92, 0x73, 0x80, 0x40]);
        keys_file.truncate(64);

        let mut b = crate::nvs::NvsBuilder::new(crate::nvs::Options::new(0x3000)).unwrap();
        b.namespace("storage").unwrap();
        b.entry("u8key", &crate::nvs::Value::U8(5)).unwrap();
        let plain = b.finish();
        let mut image = plain.clone();
        encrypt_image(&mut image, &key).unwrap();
        assert_eq!(
            hex::encode(&image[0x40..0x80]),
            "5c63cdcec249dd152153d6f9a18b60a98ab6a98654b0400335293d89a9ddb276\
             cefcfe6cf5fed9a3cd54d02842f69a063da5457fc42d9731f4491d6d66d3e141"
        );
        assert_eq!(&image[..0x40], &plain[..0x40]);
        assert_eq!(decrypt_image(&image, &key).unwrap(), plain);
        assert_eq!(decrypt_written_slots(&image, &key).unwrap(), plain);
    }
}
