//! Chips and flash settings: the vocabulary shared by the compiler, the flasher and the daemon.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A chip family espfleet can build for and flash.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Chip {
    /// ESP32 (Xtensa LX6).
    Esp32,
    /// ESP32-C3 (RISC-V).
    Esp32c3,
}

impl Chip {
    /// Every supported chip, in a stable order.
    pub const ALL: [Chip; 2] = [Chip::Esp32, Chip::Esp32c3];

    /// The name used in manifests, on the command line and by esptool (`esp32`, `esp32c3`).
    pub fn name(self) -> &'static str {
        match self {
            Chip::Esp32 => "esp32",
            Chip::Esp32c3 => "esp32c3",
        }
    }

    /// ESP-AT's platform string (`PLATFORM_ESP32`), as written into factory parameters.
    pub fn platform(self) -> &'static str {
        match self {
            Chip::Esp32 => "PLATFORM_ESP32",
            Chip::Esp32c3 => "PLATFORM_ESP32C3",
        }
    }

    /// Flash offset of the second-stage bootloader (ESP-IDF `CONFIG_BOOTLOADER_OFFSET_IN_FLASH`).
    pub fn bootloader_offset(self) -> u32 {
        match self {
            Chip::Esp32 => 0x1000,
            Chip::Esp32c3 => 0x0,
        }
    }

    /// The UF2 family id esptool writes for this chip (`UF2_FAMILY_ID` of its target class).
    pub fn uf2_family_id(self) -> u32 {
        match self {
            Chip::Esp32 => 0x1C5F_21B0,
            Chip::Esp32c3 => 0xD42B_A06C,
        }
    }

    /// The chip id in an ESP image's extended header (esptool's `IMAGE_CHIP_ID`; ESP-IDF's
    /// `esp_chip_id_t`: ESP32 0, ESP32-C3 5). The ROM and the bootloader refuse an image whose
    /// id is not their chip's.
    pub fn image_chip_id(self) -> u16 {
        match self {
            Chip::Esp32 => 0,
            Chip::Esp32c3 => 5,
        }
    }

    /// The chip-specific frequency code esptool writes into an image header (`docs/formats/esp-at-images.md` §10.3).
    pub fn flash_freq_code(self, freq: FlashFreq) -> u8 {
        // ESP32 and ESP32-C3 share esptool's table.
        match freq {
            FlashFreq::F80m => 0xF,
            FlashFreq::F40m => 0x0,
            FlashFreq::F26m => 0x1,
            FlashFreq::F20m => 0x2,
        }
    }
}

impl fmt::Display for Chip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for a chip name that is not one of [`Chip::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown chip `{0}` (expected esp32 or esp32c3)")]
pub struct UnknownChip(pub String);

impl FromStr for Chip {
    type Err = UnknownChip;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "esp32" => Ok(Chip::Esp32),
            "esp32c3" => Ok(Chip::Esp32c3),
            _ => Err(UnknownChip(s.to_owned())),
        }
    }
}

/// SPI flash mode as passed to esptool (`dio`, ...). QIO modules are flashed as `dio` (`docs/formats/esp-at-images.md` §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FlashMode {
    /// Quad I/O.
    Qio,
    /// Quad output.
    Qout,
    /// Dual I/O.
    Dio,
    /// Dual output.
    Dout,
}

impl FlashMode {
    /// Lower-case name as esptool and `flasher_args.json` spell it.
    pub fn name(self) -> &'static str {
        match self {
            FlashMode::Qio => "qio",
            FlashMode::Qout => "qout",
            FlashMode::Dio => "dio",
            FlashMode::Dout => "dout",
        }
    }
    /// Image header byte 2 (`docs/formats/esp-at-images.md` §10.3).
    pub fn header_code(self) -> u8 {
        match self {
            FlashMode::Qio => 0,
            FlashMode::Qout => 1,
            FlashMode::Dio => 2,
            FlashMode::Dout => 3,
        }
    }
    /// Parses `qio`/`qout`/`dio`/`dout`, any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "qio" => Some(FlashMode::Qio),
            "qout" => Some(FlashMode::Qout),
            "dio" => Some(FlashMode::Dio),
            "dout" => Some(FlashMode::Dout),
            _ => None,
        }
    }
}

/// SPI flash frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum FlashFreq {
    /// 80 MHz.
    #[serde(rename = "80m")]
    F80m,
    /// 40 MHz.
    #[serde(rename = "40m")]
    F40m,
    /// 26 MHz.
    #[serde(rename = "26m")]
    F26m,
    /// 20 MHz.
    #[serde(rename = "20m")]
    F20m,
}

impl FlashFreq {
    /// Lower-case name as esptool spells it (`40m`).
    pub fn name(self) -> &'static str {
        match self {
            FlashFreq::F80m => "80m",
            FlashFreq::F40m => "40m",
            FlashFreq::F26m => "26m",
            FlashFreq::F20m => "20m",
        }
    }
    /// Parses `80m`, `40M`, `40MHz`, any case.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        let s = s.strip_suffix("hz").unwrap_or(&s);
        match s {
            "80m" => Some(FlashFreq::F80m),
            "40m" => Some(FlashFreq::F40m),
            "26m" => Some(FlashFreq::F26m),
            "20m" => Some(FlashFreq::F20m),
            _ => None,
        }
    }
}

/// SPI flash size in bytes; always a power of two from 1 MB to 128 MB.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct FlashSize(u32);

impl FlashSize {
    /// The sizes esptool knows, in bytes.
    pub const KNOWN: [u32; 8] = [
        1 << 20,
        2 << 20,
        4 << 20,
        8 << 20,
        16 << 20,
        32 << 20,
        64 << 20,
        128 << 20,
    ];

    /// A size in bytes, if it is one esptool knows.
    pub fn from_bytes(bytes: u32) -> Option<Self> {
        Self::KNOWN.contains(&bytes).then_some(FlashSize(bytes))
    }
    /// Size in bytes.
    pub fn bytes(self) -> u32 {
        self.0
    }
    /// esptool's name (`4MB`).
    pub fn name(self) -> String {
        format!("{}MB", self.0 >> 20)
    }
    /// Image header size code (`docs/formats/esp-at-images.md` §10.3): 1MB 0, 2MB 1, 4MB 2, ...
    pub fn header_code(self) -> u8 {
        // KNOWN is ordered, index = code; the position always exists by construction.
        u8::try_from(Self::KNOWN.iter().position(|&b| b == self.0).unwrap_or(0)).unwrap_or(0)
    }
    /// Parses `4MB`, `4M`, `4mb`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_uppercase();
        let digits = s.strip_suffix("MB").or_else(|| s.strip_suffix('M'))?;
        let mb: u32 = digits.parse().ok()?;
        Self::from_bytes(mb.checked_mul(1 << 20)?)
    }
}

impl TryFrom<String> for FlashSize {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        FlashSize::parse(&s).ok_or_else(|| {
            format!("unknown flash size `{s}` (expected 1MB, 2MB, 4MB, 8MB, 16MB, ...)")
        })
    }
}

impl From<FlashSize> for String {
    fn from(s: FlashSize) -> String {
        s.name()
    }
}

impl fmt::Display for FlashSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Flash settings of a build: what esptool's `--flash_mode/--flash_freq/--flash_size` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlashSettings {
    /// SPI mode.
    pub mode: FlashMode,
    /// SPI frequency.
    pub freq: FlashFreq,
    /// Flash size.
    pub size: FlashSize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for chip in Chip::ALL {
            assert_eq!(chip.name().parse::<Chip>().unwrap(), chip);
        }
        assert_eq!("ESP32-C3".parse::<Chip>().unwrap(), Chip::Esp32c3);
        assert_eq!(FlashSize::parse("4MB").unwrap().bytes(), 4 << 20);
        assert_eq!(FlashSize::parse("16m").unwrap().header_code(), 4);
        assert_eq!(FlashSize::parse("3MB"), None);
        assert_eq!(FlashFreq::parse("40M"), Some(FlashFreq::F40m));
    }
}
