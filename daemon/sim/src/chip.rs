//! Chip profiles: the register map each simulated chip starts with (`docs/formats/serial-protocol.md` §7).
//!
//! Clients identify a chip, its revision, crystal, MAC and flash through plain register reads,
//! so a profile is mostly a table of addresses and seed values.

use std::collections::HashMap;

use espfleet_compiler::target::Chip;

/// Where a chip's SPI flash controller registers live (`docs/formats/serial-protocol.md` §7.1). The JEDEC ID and SFDP reads
/// of both clients go through these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiRegs {
    /// Base address; CMD is at +0 and ADDR at +4.
    pub base: u32,
    /// Offset of USR.
    pub usr: u32,
    /// Offset of USR1 (address and dummy lengths).
    pub usr1: u32,
    /// Offset of USR2 (command length and opcode).
    pub usr2: u32,
    /// Offset of MOSI_DLEN.
    pub mosi_dlen: u32,
    /// Offset of MISO_DLEN.
    pub miso_dlen: u32,
    /// Offset of W0, the data buffer.
    pub w0: u32,
    /// True when the ADDR register holds the address MSB-aligned (ESP32), false when
    /// LSB-aligned (ESP32-C3). esptool calls this `SPI_ADDR_REG_MSB`.
    pub addr_msb: bool,
}

impl SpiRegs {
    /// CMD register; writing bit 18 runs the user command.
    pub fn cmd(&self) -> u32 {
        self.base
    }
    /// ADDR register.
    pub fn addr(&self) -> u32 {
        self.base + 4
    }
}

/// "USR" bit in the SPI CMD register: run the user-defined command.
pub const SPI_CMD_USR: u32 = 1 << 18;

/// Everything about a chip the loader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipProfile {
    /// The chip.
    pub chip: Chip,
    /// Value of the magic register at 0x40001000.
    pub magic: u32,
    /// `Some(id)` when GET_SECURITY_INFO is supported and reports this chip id.
    pub security_chip_id: Option<u32>,
    /// How the ROM loader answers a command it does not implement.
    pub rom_refusal: RomRefusal,
    /// SPI flash controller layout.
    pub spi: SpiRegs,
    /// UART0 clock divider register (computed from the baud on every read).
    pub uart_clkdiv: u32,
    /// Addresses of the MAC words (low 32 bits, then the top 16 bits).
    pub mac_regs: (u32, u32),
    /// Start-up register values apart from the MAC.
    pub seeds: &'static [(u32, u32)],
    /// Text the ROM prints when it boots from flash (the "app running" state).
    pub boot_banner: &'static str,
}

/// How a chip's ROM loader answers a command it does not implement (GET_SECURITY_INFO on the
/// ESP32, the stub-only commands, unknown opcodes). The details and the evidence are in the
/// crate's README ("Behaviour of the real ROMs").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RomRefusal {
    /// Status 01, error 05, in a reply that carries the *previous* reply's opcode and value
    /// field, not the refused command's. The ESP32 ROM does this (seen with the real ESP32 ROM
    /// answering GET_SECURITY_INFO, issue #12): a client that waits for a reply with the opcode
    /// it sent waits for its whole timeout.
    RepeatLastHeader,
    /// Status 01, error 05, with the refused command's opcode echoed. Assumed for the ESP32-C3
    /// ROM, whose refusal has not been observed; both clients accept either form.
    EchoOpcode,
}

/// Address of the chip magic register both clients read.
pub const MAGIC_REG: u32 = 0x4000_1000;

const ESP32_SEEDS: &[(u32, u32)] = &[
    // BLK0 word 3: package D0WD (bits 9-11 = 1), CPU frequency rated at 240 MHz (bit 13 set,
    // bit 12 clear), revision bit 0 (bit 15).
    (0x3FF5_A00C, (1 << 15) | (1 << 13) | (1 << 9)),
    // BLK0 word 4: CLK8M_FREQ = 100, so esptool's ROM baud maths comes out at exactly 40 MHz.
    (0x3FF5_A010, 100),
    // BLK0 word 5: revision bit 1.
    (0x3FF5_A014, 1 << 20),
    // APB_CTL_DATE: revision bit 2. With the two above: major revision 3.
    (0x3FF6_607C, 0x8000_0000),
    // RTCCALICFG1: calibration value 1024 in bits 7-31.
    (0x3FF5_F06C, 1024 << 7),
];

const ESP32C3_SEEDS: &[(u32, u32)] = &[
    // BLOCK1 word 3: minor revision low bits = 4, package QFN32 (0).
    (0x6000_8850, 4 << 18),
];

impl ChipProfile {
    /// The profile of a supported chip.
    pub fn of(chip: Chip) -> ChipProfile {
        match chip {
            Chip::Esp32 => ChipProfile {
                chip,
                magic: 0x00F0_1D83,
                security_chip_id: None,
                rom_refusal: RomRefusal::RepeatLastHeader,
                spi: SpiRegs {
                    base: 0x3FF4_2000,
                    usr: 0x1C,
                    usr1: 0x20,
                    usr2: 0x24,
                    mosi_dlen: 0x28,
                    miso_dlen: 0x2C,
                    w0: 0x80,
                    addr_msb: true,
                },
                uart_clkdiv: 0x3FF4_0014,
                mac_regs: (0x3FF5_A004, 0x3FF5_A008),
                seeds: ESP32_SEEDS,
                boot_banner: "ets Jun  8 2016 00:22:57\r\n\r\nrst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
            },
            Chip::Esp32c3 => ChipProfile {
                chip,
                magic: 0x1B31_506F,
                security_chip_id: Some(5),
                rom_refusal: RomRefusal::EchoOpcode,
                spi: SpiRegs {
                    base: 0x6000_2000,
                    usr: 0x18,
                    usr1: 0x1C,
                    usr2: 0x20,
                    mosi_dlen: 0x24,
                    miso_dlen: 0x28,
                    w0: 0x58,
                    addr_msb: false,
                },
                uart_clkdiv: 0x6000_0014,
                mac_regs: (0x6000_8844, 0x6000_8848),
                seeds: ESP32C3_SEEDS,
                boot_banner: "ESP-ROM:esp32c3-api1-20210207\r\nBuild:Feb  7 2021\r\nrst:0x3 (RTC_SW_SYS_RST),boot:0xc (SPI_FAST_FLASH_BOOT)\r\n",
            },
        }
    }

    /// The register map at power-on: seeds, MAC and magic.
    pub fn initial_registers(&self, mac: [u8; 6]) -> HashMap<u32, u32> {
        let mut regs: HashMap<u32, u32> = self.seeds.iter().copied().collect();
        regs.insert(MAGIC_REG, self.magic);
        let (mac0, mac1) = mac_words(mac);
        regs.insert(self.mac_regs.0, mac0);
        // ESP32 keeps a MAC CRC in bits 16-23 of the high word; neither client reads it and it is
        // left 0 here.
        regs.insert(self.mac_regs.1, mac1);
        regs
    }
}

/// Splits a MAC into the two eFuse words (`docs/formats/serial-protocol.md` §7.2): low word = bytes 2..6, high word bits
/// 0-15 = bytes 0..2.
pub fn mac_words(mac: [u8; 6]) -> (u32, u32) {
    let mac0 = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    let mac1 = u32::from_be_bytes([0, 0, mac[0], mac[1]]);
    (mac0, mac1)
}

/// The MAC used when none is configured: Espressif's OUI and a fixed tail, per chip.
pub fn default_mac(chip: Chip) -> [u8; 6] {
    match chip {
        Chip::Esp32 => [0x24, 0x0A, 0xC4, 0x12, 0x34, 0x56],
        Chip::Esp32c3 => [0x58, 0xCF, 0x79, 0x12, 0x34, 0x56],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_words_follow_the_spec_example() {
        // Spec 7.2: mac1 = 0x0000240A and mac0 = 0xC4123456 give 24:0a:c4:12:34:56.
        assert_eq!(
            mac_words([0x24, 0x0A, 0xC4, 0x12, 0x34, 0x56]),
            (0xC412_3456, 0x0000_240A)
        );
    }

    #[test]
    fn esp32_seeds_give_revision_3_and_40mhz_rom_clock() {
        let regs = ChipProfile::of(Chip::Esp32).initial_registers(default_mac(Chip::Esp32));
        // Major revision bits, most significant first: APB_CTL_DATE[31], word5[20], word3[15].
        let bits = ((regs[&0x3FF6_607C] >> 31) << 2)
            | (((regs[&0x3FF5_A014] >> 20) & 1) << 1)
            | ((regs[&0x3FF5_A00C] >> 15) & 1);
        assert_eq!(
            bits, 7,
            "7 means revision v3 (`docs/formats/serial-protocol.md` §7.3)"
        );
        // rom_cal_freq = cali * 15625 * clk8m / 40 must be 40 MHz (`docs/formats/serial-protocol.md` §6.5).
        let cali = u64::from(regs[&0x3FF5_F06C] >> 7);
        let clk8m = u64::from(regs[&0x3FF5_A010] & 0xFF);
        assert_eq!(cali * 15625 * clk8m / 40, 40_000_000);
        assert_eq!(regs[&MAGIC_REG], 0x00F0_1D83);
    }
}
