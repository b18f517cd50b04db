//! The RAM flasher stub espflash 4.7 uploads, for the chips espfleet supports.
//!
//! The images are copies of espflash's own (see `stubs/README.md` for where they come from and
//! why espfleet carries them): espflash keeps them private to `Flasher::connect`, which espfleet
//! does not use because it waits on commands the ESP32 ROM lacks.

use base64::Engine as _;
use espfleet_compiler::target::Chip;

const ESP32: &str = include_str!("stubs/esp32.toml");
const ESP32C3: &str = include_str!("stubs/esp32c3.toml");

/// A stub image: two RAM segments and the entry point to jump to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StubImage {
    /// Address the stub starts at (MEM_END's entry).
    pub(crate) entry: u32,
    /// Load address of the text segment.
    pub(crate) text_start: u32,
    /// The text segment.
    pub(crate) text: Vec<u8>,
    /// Load address of the data segment.
    pub(crate) data_start: u32,
    /// The data segment.
    pub(crate) data: Vec<u8>,
}

impl StubImage {
    /// The stub for `chip`.
    pub(crate) fn of(chip: Chip) -> StubImage {
        let text = match chip {
            Chip::Esp32 => ESP32,
            Chip::Esp32c3 => ESP32C3,
        };
        parse(text).expect("the bundled stub images parse (checked by a test)")
    }
}

/// Parses espflash's stub file: `key = value` lines, numbers with `_` separators, base64
/// strings in double quotes.
fn parse(text: &str) -> Option<StubImage> {
    let field = |key: &str| {
        text.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim())
        })
    };
    let number = |key: &str| field(key)?.replace('_', "").parse::<u32>().ok();
    let bytes = |key: &str| {
        let quoted = field(key)?.strip_prefix('"')?.strip_suffix('"')?;
        base64::engine::general_purpose::STANDARD
            .decode(quoted)
            .ok()
    };
    Some(StubImage {
        entry: number("entry")?,
        text_start: number("text_start")?,
        text: bytes("text")?,
        data_start: number("data_start")?,
        data: bytes("data")?,
    })
}

#[cfg(test)]
mod tests {
    use sha2::{Digest as _, Sha256};

    use super::*;

    /// The copies are the files `stubs/README.md` names (its SHA-256 table), and they parse.
    #[test]
    fn bundled_stubs_are_the_documented_files_and_parse() {
        let readme = include_str!("stubs/README.md");
        for (chip, name, text) in [
            (Chip::Esp32, "esp32.toml", ESP32),
            (Chip::Esp32c3, "esp32c3.toml", ESP32C3),
        ] {
            let digest = hex::encode(Sha256::digest(text.as_bytes()));
            assert!(
                readme.contains(&format!("| `{name}` | `{digest}` |")),
                "{name} is not the file the README documents (sha256 {digest})"
            );
            let stub = StubImage::of(chip);
            assert!(stub.text.len() > 1000 && !stub.data.is_empty(), "{name}");
            // The entries espflash and esptool jump to (`docs/formats/serial-protocol.md` §6.9, the
            // stub upload): ESP32 0x400A902C, ESP32-C3 0x40380E9A.
            let want = match chip {
                Chip::Esp32 => 0x400A_902C,
                Chip::Esp32c3 => 0x4038_0E9A,
            };
            assert_eq!(stub.entry, want, "{name}");
        }
    }

    #[test]
    fn malformed_stub_files_are_rejected() {
        assert!(parse("entry = 12\ntext_start = 1\n").is_none());
        assert!(
            parse("entry = x\ntext = \"\"\ntext_start = 1\ndata = \"\"\ndata_start = 2").is_none()
        );
        let ok =
            parse("entry = 1_000\ntext = \"AAEC\"\ntext_start = 2\ndata = \"\"\ndata_start = 3")
                .unwrap();
        assert_eq!((ok.entry, ok.text.as_slice()), (1000, &[0u8, 1, 2][..]));
    }
}
