//! One loader session on one open port, driven command by command over espflash's
//! `Connection` (framing, reset sequences, SYNC, replies and timeouts are espflash's).
//!
//! espflash's `Flasher` is not used, because on a real ESP32 it costs seconds and on both ROMs it
//! ends badly (issue #12; the ROMs' behaviour is in `daemon/sim/README.md`):
//!
//! * `Flasher::connect` sends GET_SECURITY_INFO twice before anything else. The ESP32 ROM does
//!   not implement it and refuses it in the previous reply's header, so espflash, waiting for a
//!   reply with its own opcode, waits out 3 s each time. Here the chip is identified by the
//!   magic register at 0x40001000, which every ESP32-family ROM answers: one round trip.
//! * Its ROM write announces each part rounded up to 4 KiB in FLASH_BEGIN, sends only the 1 KiB
//!   blocks it needs and always ends with FLASH_END(reboot); the ROM refuses that FLASH_END when
//!   the last part is short (01 06) and leaves the loader either way, so `--after no-reset`
//!   cannot be honoured. Here FLASH_BEGIN announces exactly the blocks that are sent, and the
//!   ROM gets no FLASH_END at all, as esptool does ("Staying in bootloader"): the ROM programs
//!   each block before it answers, so nothing is pending. The reset afterwards is `--after`'s.
//! * The daemon identifies a board, decides what to flash and flashes it on this one session:
//!   no second connect.

use std::borrow::Cow;
use std::time::Duration;

use espflash::command::{Command, CommandType};
use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::{FlashSize as EspFlashSize, SpiAttachParams, SpiSetParams};
use espflash::image_format::Segment as EspSegment;
use espflash::target::{Chip as EspChip, DefaultProgressCallback};
use espfleet_compiler::target::Chip;

use super::error::{BoardState, FlashError};
use super::port::{self, Port};
use super::stub_image::StubImage;
use super::{After, Before, MacAddress};

/// The magic register every ESP32-family ROM answers READ_REG on; its value names the chip.
const CHIP_MAGIC_REG: u32 = 0x4000_1000;
/// The ROM loader's speed after reset, and the speed every connect starts at.
pub(crate) const ROM_BAUD: u32 = 115_200;
/// The ROM loader's write block (espflash's `FLASH_WRITE_SIZE`, esptool's `FLASH_WRITE_SIZE`).
const ROM_BLOCK: usize = 0x400;
/// SPI flash RDID (JEDEC ID), read through the chip's SPI user-command registers.
const SPI_RDID: u32 = 0x9F;
/// "User command" bit of the SPI CMD register.
const SPI_CMD_USR: u32 = 1 << 18;
/// Timeout of an ordinary command (espflash's and esptool's default).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// What the ROM told us about the board.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The chip, in espflash's terms (any ESP32-family chip).
    pub(crate) esp_chip: EspChip,
    /// The chip, when espfleet supports it.
    pub(crate) chip: Option<Chip>,
    /// Factory MAC.
    pub(crate) mac: Option<MacAddress>,
    /// Flash size from the flash's JEDEC ID.
    pub(crate) flash_size: u32,
}

/// An open session with a board's loader.
pub(crate) struct Loader {
    conn: Connection,
    esp_chip: EspChip,
    spi: SpiAttachParams,
    flash_size: u32,
    in_stub: bool,
    baud: u32,
    after: After,
    has_lines: bool,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("chip", &self.esp_chip)
            .field("in_stub", &self.in_stub)
            .field("baud", &self.baud)
            .finish_non_exhaustive()
    }
}

/// How `Before::Auto` and `After::Auto` resolve for a port: resets need DTR/RTS.
fn reset_modes(
    port: &Port,
    has_lines: bool,
    before: Before,
    after: After,
) -> (ResetBeforeOperation, ResetAfterOperation) {
    let usb_jtag = port.usb().is_some_and(super::UsbIds::is_usb_serial_jtag);
    let before = match before {
        Before::Auto if !has_lines => ResetBeforeOperation::NoReset,
        Before::Auto if usb_jtag => ResetBeforeOperation::UsbReset,
        Before::Auto | Before::DefaultReset => ResetBeforeOperation::DefaultReset,
        Before::UsbReset => ResetBeforeOperation::UsbReset,
        Before::NoReset => ResetBeforeOperation::NoReset,
    };
    let after = match after {
        After::Auto if has_lines => ResetAfterOperation::HardReset,
        After::Auto | After::NoReset => ResetAfterOperation::NoReset,
        After::HardReset => ResetAfterOperation::HardReset,
        After::NoResetNoStub => ResetAfterOperation::NoResetNoStub,
        After::WatchdogReset => ResetAfterOperation::WatchdogReset,
    };
    (before, after)
}

impl Loader {
    /// Opens `port`, resets the chip into its loader as `before` says, SYNCs at 115200 and
    /// identifies the chip (magic register). If `expected` is given and the chip differs, stops
    /// there with [`FlashError::WrongChip`], before probing anything through the wrong chip's
    /// registers; otherwise reads the MAC and the flash size. Writes nothing.
    pub(crate) fn open(
        port: &Port,
        before: Before,
        after: After,
        expected: Option<Chip>,
    ) -> Result<(Loader, Identity), FlashError> {
        let mut serial = port.open()?;
        let has_lines = port::can_toggle_lines(&mut serial);
        let (before_op, after_op) = reset_modes(port, has_lines, before, after);
        let mut conn = Connection::new(serial, port.espflash_info(), after_op, before_op, ROM_BAUD);
        conn.begin().map_err(|e| {
            if super::vanished(port, &e) {
                FlashError::DeviceVanished {
                    port: port.path().to_owned(),
                    during: "connecting",
                    state: BoardState::Untouched,
                    source: Box::new(e),
                }
            } else {
                FlashError::NoResponse {
                    port: port.path().to_owned(),
                    before: format!("{before_op:?}"),
                    source: Box::new(e),
                }
            }
        })?;
        let identifying = super::untouched(port, "identifying the board");
        conn.set_timeout(COMMAND_TIMEOUT).map_err(&identifying)?;
        let magic = conn.read_reg(CHIP_MAGIC_REG).map_err(&identifying)?;
        let Ok(esp_chip) = EspChip::from_magic(magic) else {
            return Err(FlashError::UnknownChip {
                port: port.path().to_owned(),
                magic,
            });
        };
        let chip = super::our_chip(esp_chip);
        if let Some(want) = expected
            && chip != Some(want)
        {
            return Err(FlashError::WrongChip {
                port: port.path().to_owned(),
                expected: want,
                found: esp_chip.to_string(),
            });
        }
        let mac = esp_chip
            .mac_address(&mut conn)
            .map_err(&identifying)?
            .parse::<MacAddress>()
            .ok();
        let mut loader = Loader {
            conn,
            esp_chip,
            spi: SpiAttachParams::default(),
            flash_size: 0,
            in_stub: false,
            baud: ROM_BAUD,
            after,
            has_lines,
        };
        loader
            .detect_flash()
            .map_err(super::untouched(port, "detecting the flash"))?;
        tracing::debug!(
            "{}: {esp_chip} with {} MB flash",
            port.path().display(),
            loader.flash_size >> 20
        );
        let identity = Identity {
            esp_chip,
            chip,
            mac,
            flash_size: loader.flash_size,
        };
        Ok((loader, identity))
    }

    /// The `--after` asked for (for messages).
    pub(crate) fn after(&self) -> After {
        self.after
    }

    /// Whether the port can drive the reset lines.
    pub(crate) fn has_lines(&self) -> bool {
        self.has_lines
    }

    /// The chip in espflash's terms.
    pub(crate) fn esp_chip(&self) -> EspChip {
        self.esp_chip
    }

    /// The open connection (for the stub writer, which sends its own commands).
    pub(crate) fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Attaches the SPI flash and reads its JEDEC ID, trying the ESP32-PICO-D4 pin set when the
    /// default one reads nothing (espflash's order), then tells the loader the size.
    fn detect_flash(&mut self) -> Result<(), espflash::Error> {
        for spi in [SpiAttachParams::default(), SpiAttachParams::esp32_pico_d4()] {
            // Some chips refuse the attach while the flash answers anyway (espflash ignores it too).
            let _ = self.attach(spi);
            let id = self.flash_id()?;
            let code = id.to_le_bytes()[2]; // capacity code: 2^code bytes
            if code == 0xFF {
                continue; // nothing answered on these pins
            }
            let size = EspFlashSize::from_detected(code).unwrap_or_else(|_| {
                tracing::warn!(
                    "unknown flash size code {code:#04x} (JEDEC ID {id:#08x}); assuming 4 MB"
                );
                EspFlashSize::_4Mb
            });
            self.spi = spi;
            self.flash_size = size.size();
            return self.set_flash_params();
        }
        Err(espflash::Error::FlashConnect)
    }

    fn attach(&mut self, spi_params: SpiAttachParams) -> Result<(), espflash::Error> {
        let command = if self.in_stub {
            Command::SpiAttachStub { spi_params }
        } else {
            Command::SpiAttach { spi_params }
        };
        self.conn
            .with_timeout(CommandType::SpiAttach.timeout(), |c| {
                c.command(command).map(drop)
            })
    }

    fn set_flash_params(&mut self) -> Result<(), espflash::Error> {
        let spi_params = SpiSetParams::default(self.flash_size);
        self.conn
            .with_timeout(CommandType::SpiSetParams.timeout(), |c| {
                c.command(Command::SpiSetParams { spi_params }).map(drop)
            })
    }

    /// The flash's 24-bit JEDEC ID, through the SPI peripheral's user-command registers (the
    /// sequence of `docs/formats/serial-protocol.md` §6.2).
    fn flash_id(&mut self) -> Result<u32, espflash::Error> {
        let regs = self.esp_chip.spi_registers();
        let c = &mut self.conn;
        let old_usr = c.read_reg(regs.usr())?;
        let old_usr2 = c.read_reg(regs.usr2())?;
        c.write_reg(regs.usr(), (1 << 31) | (1 << 28), None)?; // command phase, MISO phase
        c.write_reg(regs.usr2(), (7 << 28) | SPI_RDID, None)?;
        match regs.miso_length() {
            Some(miso) => c.write_reg(miso, 24 - 1, None)?,
            None => c.write_reg(regs.usr1(), (24 - 1) << 8, None)?,
        }
        c.write_reg(regs.w0(), 0, None)?;
        c.write_reg(regs.cmd(), SPI_CMD_USR, None)?;
        let mut done = false;
        for _ in 0..10 {
            if c.read_reg(regs.cmd())? & SPI_CMD_USR == 0 {
                done = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if !done {
            return Err(espflash::Error::FlashConnect);
        }
        let id = c.read_reg(regs.w0())?;
        c.write_reg(regs.usr(), old_usr, None)?;
        c.write_reg(regs.usr2(), old_usr2, None)?;
        Ok(id)
    }

    /// MD5 of `[addr, addr + len)` as the loader computes it.
    pub(crate) fn md5(&mut self, addr: u32, len: u32) -> Result<[u8; 16], espflash::Error> {
        self.conn
            .with_timeout(CommandType::FlashMd5.timeout_for_size(len), |c| {
                let value: u128 = c
                    .command(Command::FlashMd5 {
                        offset: addr,
                        size: len,
                    })?
                    .try_into()?;
                Ok(value.to_be_bytes())
            })
    }

    /// Switches loader and port to `baud` (no-op when already there). The ROM is told a prior
    /// speed of 0, the stub the current one (`docs/formats/serial-protocol.md` §6.5).
    pub(crate) fn set_baud(&mut self, baud: u32) -> Result<(), espflash::Error> {
        if baud == self.baud {
            return Ok(());
        }
        let prior_baud = if self.in_stub { self.baud } else { 0 };
        self.conn
            .with_timeout(CommandType::ChangeBaudrate.timeout(), |c| {
                c.command(Command::ChangeBaudrate {
                    new_baud: baud,
                    prior_baud,
                })
                .map(drop)
            })?;
        self.conn.set_baud(baud)?;
        // Both clients give the UART 50 ms to settle, then drop what arrived meanwhile.
        std::thread::sleep(Duration::from_millis(50));
        self.conn.flush()?;
        self.baud = baud;
        Ok(())
    }

    /// Prepares the ROM for writing: SPI attach and, on USB Serial/JTAG, the RTC watchdog off
    /// (espflash's own begin step).
    pub(crate) fn begin_rom_writes(&mut self) -> Result<(), espflash::Error> {
        let mut target = self.esp_chip.flash_target(self.spi, false, false, false);
        target.begin(&mut self.conn)
    }

    /// Writes one part through the ROM: FLASH_BEGIN announcing exactly the 1 KiB blocks that
    /// follow (the last one padded with 0xFF), then the blocks. No FLASH_END (see the module
    /// docs). `data` starts on a sector boundary, so the padding stays inside the sector the ROM
    /// erased for it.
    pub(crate) fn write_rom_part(
        &mut self,
        offset: u32,
        data: &[u8],
        on_block: &mut dyn FnMut(usize),
    ) -> Result<(), espflash::Error> {
        let blocks = data.len().div_ceil(ROM_BLOCK);
        let size = u32::try_from(blocks * ROM_BLOCK).unwrap_or(u32::MAX);
        let supports_encryption = self.esp_chip != EspChip::Esp32;
        self.conn
            .with_timeout(CommandType::FlashBegin.timeout_for_size(size), |c| {
                c.command(Command::FlashBegin {
                    size,
                    blocks: u32::try_from(blocks).unwrap_or(u32::MAX),
                    block_size: u32::try_from(ROM_BLOCK).unwrap_or(u32::MAX),
                    offset,
                    supports_encryption,
                })
                .map(drop)
            })?;
        for (seq, block) in data.chunks(ROM_BLOCK).enumerate() {
            let len = u32::try_from(block.len()).unwrap_or(u32::MAX);
            self.conn
                .with_timeout(CommandType::FlashData.timeout_for_size(len), |c| {
                    c.command(Command::FlashData {
                        data: block,
                        pad_to: ROM_BLOCK,
                        pad_byte: 0xFF,
                        sequence: u32::try_from(seq).unwrap_or(u32::MAX),
                    })
                    .map(drop)
                })?;
            on_block(seq + 1);
        }
        Ok(())
    }

    /// Uploads espflash's flasher stub into RAM and starts it (MEM_BEGIN/MEM_DATA for its two
    /// segments, MEM_END with its entry, then the stub's "OHAI"), at the current baud. Then
    /// attaches the flash through the stub, with espflash's USB Serial/JTAG watchdog step.
    pub(crate) fn load_stub(&mut self) -> Result<(), espflash::Error> {
        let chip = super::our_chip(self.esp_chip).ok_or(espflash::Error::FlashConnect)?;
        let stub = StubImage::of(chip);
        let mut ram = self
            .esp_chip
            .ram_target(Some(stub.entry), self.esp_chip.max_ram_block_size());
        ram.begin(&mut self.conn)?;
        for (addr, data) in [(stub.text_start, &stub.text), (stub.data_start, &stub.data)] {
            ram.write_segment(
                &mut self.conn,
                EspSegment {
                    addr,
                    data: Cow::Borrowed(data),
                },
                &mut DefaultProgressCallback,
            )?;
        }
        ram.finish(&mut self.conn, true)?;
        match self.conn.read_flash_response()? {
            Some(frame) if matches!(&frame.value, espflash::command::CommandResponseValue::Vector(v) if v.as_slice() == b"OHAI") =>
                {}
            _ => {
                return Err(espflash::Error::InvalidResponse(
                    "the flasher stub did not say OHAI after starting".into(),
                ));
            }
        }
        self.in_stub = true;
        let mut target = self.esp_chip.flash_target(self.spi, true, false, false);
        target.begin(&mut self.conn)?;
        self.set_flash_params()
    }

    /// Ends the session as `--after` asks. After stub writes the stub first leaves flash mode
    /// (FLASH_DEFL_END "run user code", which only ends the write there). Then: `no-reset`
    /// leaves the ROM loader as it is (nothing is sent) or sends the stub back to it;
    /// `no-reset-no-stub` leaves the stub running; `hard-reset` pulses RTS (the new firmware
    /// runs); `watchdog-reset` resets an ESP32-C3 on USB Serial/JTAG through its RTC watchdog.
    pub(crate) fn finish(&mut self, wrote_with_stub: bool) -> Result<(), espflash::Error> {
        if wrote_with_stub {
            self.conn
                .with_timeout(CommandType::FlashDeflEnd.timeout(), |c| {
                    c.command(Command::FlashDeflEnd { reboot: false }).map(drop)
                })?;
        }
        self.conn.reset_after(self.in_stub, self.esp_chip)
    }
}
