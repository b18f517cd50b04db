//! The loader state machine: ROM serial loader, flasher stub and "application running".
//!
//! `Device::on_frame` takes one unescaped SLIP frame from the host and returns what the chip
//! does about it as a list of [`Action`]s (frames to send, time to spend, a baud switch). It never
//! touches the pty or sleeps, so every rule of the protocol can be tested without a terminal.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::stream::InflateState;
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

use crate::LoaderState;
use crate::chip::{ChipProfile, MAGIC_REG, RomRefusal, SPI_CMD_USR};
use crate::flash::{FlashArray, FlashTiming, SECTOR_SIZE};
use crate::protocol::{Command, Failure, Loader, SYNC_PAYLOAD, checksum, op, response};

/// The baud rate every ESP ROM starts at.
pub const ROM_BAUD: u32 = 115_200;
/// The value field of a ROM SYNC reply (the docs' example; any non-zero value works).
const ROM_SYNC_VALUE: u32 = 0x2012_0707;
/// The unsolicited frame the stub sends when it starts.
pub const OHAI: &[u8] = b"OHAI";
/// Largest block a ROM READ_FLASH_SLOW returns.
const SLOW_READ_BLOCK: u32 = 64;

/// Something the device does in reply to a frame, executed in order by the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send one SLIP frame with this (unescaped) content.
    Frame(Vec<u8>),
    /// Send bytes outside any frame (boot log text; only in the "app running" state).
    Text(Vec<u8>),
    /// Flash work that must finish before anything further is sent (scaled by the timing scale).
    Work(Duration),
    /// Flash work that runs after the last frame while the host sends the next command: the
    /// stub's double buffering. It delays the next reply only if it is still running then.
    BackgroundWork(Duration),
    /// Wall-clock time that is not flash work (WRITE_REG delays, the gap before OHAI).
    Pause(Duration),
    /// Switch the device UART to this speed (after everything before it was sent).
    SetBaud(u32),
    /// The flash contents changed; `settled` is true at the end of an operation (END, erase),
    /// when a file-backed flash should be written out.
    FlashChanged {
        /// The operation is complete.
        settled: bool,
    },
}

/// What the identification registers and GET_SECURITY_INFO claim (the "report another chip"
/// fault changes this and nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Magic register value.
    pub magic: u32,
    /// Chip id from GET_SECURITY_INFO, if the ROM supports it.
    pub security_chip_id: Option<u32>,
    /// How the ROM refuses a command it does not implement.
    pub rom_refusal: RomRefusal,
}

impl Identity {
    /// What a chip of this profile truthfully reports.
    pub fn of(profile: &ChipProfile) -> Identity {
        Identity {
            magic: profile.magic,
            security_chip_id: profile.security_chip_id,
            rom_refusal: profile.rom_refusal,
        }
    }
}

/// Per-device settings fixed at spawn time.
#[derive(Debug, Clone)]
pub struct DeviceOptions {
    /// Chip profile (register map, SPI layout).
    pub profile: ChipProfile,
    /// What the chip claims to be.
    pub identity: Identity,
    /// eFuse MAC.
    pub mac: [u8; 6],
    /// JEDEC capacity code the flash reports (log2 of its claimed size).
    pub jedec_capacity_code: u8,
    /// Whether FLASH_END(reboot) in the stub goes back to the ROM loader (esptool's model) or
    /// stays in the stub (esp-flasher-stub v1.1).
    pub stub_reboot_to_rom: bool,
    /// Flash timings before scaling.
    pub timing: FlashTiming,
}

#[derive(Debug)]
struct WriteSession {
    compressed: bool,
    offset: u32,
    /// ROM: erase size; stub: exact byte count (uncompressed size for DEFL).
    size: u32,
    block_size: u32,
    next_seq: u32,
    /// Bytes of (decompressed) data written so far.
    written: u32,
    /// Bytes of FLASH_DATA blocks received (padding included): what the ROM counts against
    /// the size announced in FLASH_BEGIN when FLASH_END arrives.
    received: u32,
    /// Stub only: sectors below this address have been erased (just in time).
    erased_to: u32,
    inflate: Option<Inflater>,
}

/// The streaming zlib decoder of one compressed write.
struct Inflater(Box<InflateState>);

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflater")
    }
}

#[derive(Debug)]
struct MemSession {
    next_seq: u32,
}

#[derive(Debug)]
struct ReadStream {
    offset: u32,
    total: u32,
    packet: u32,
    max_in_flight: u32,
    sent: u32,
    acked: u32,
}

/// One simulated chip: registers, loader state and the flash it is wired to.
#[derive(Debug)]
pub struct Device {
    opts: DeviceOptions,
    state: LoaderState,
    regs: HashMap<u32, u32>,
    baud: u32,
    flash: Arc<Mutex<FlashArray>>,
    /// Flash size as SPI_SET_PARAMS last told us (the ROM's idea of the chip).
    params_size: u32,
    attached: bool,
    write: Option<WriteSession>,
    mem: Option<MemSession>,
    read: Option<ReadStream>,
    /// Opcode and value field of the last reply sent: the ESP32 ROM repeats them when it
    /// refuses a command ([`RomRefusal::RepeatLastHeader`]).
    last_header: (u8, u32),
}

impl Device {
    /// A chip fresh out of reset into the ROM loader.
    pub fn new(opts: DeviceOptions, flash: Arc<Mutex<FlashArray>>) -> Self {
        let regs = opts.profile.initial_registers(opts.mac);
        let params_size = 1u32 << opts.jedec_capacity_code;
        Device {
            opts,
            state: LoaderState::Rom,
            regs,
            baud: ROM_BAUD,
            flash,
            params_size,
            attached: false,
            write: None,
            mem: None,
            read: None,
            last_header: (0, 0),
        }
    }

    /// Current loader state.
    pub fn state(&self) -> LoaderState {
        self.state
    }

    /// Current device UART speed.
    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// Switches the device UART (after a CHANGE_BAUDRATE reply, or by autobaud).
    pub fn set_baud(&mut self, baud: u32) {
        self.baud = baud;
    }

    /// A reset with the boot strapping pin held: back into the ROM loader at 115200.
    pub fn reset_to_rom(&mut self) {
        self.regs = self.opts.profile.initial_registers(self.opts.mac);
        self.state = LoaderState::Rom;
        self.baud = ROM_BAUD;
        self.params_size = 1u32 << self.opts.jedec_capacity_code;
        self.attached = false;
        self.write = None;
        self.mem = None;
        self.read = None;
        self.last_header = (0, 0);
    }

    /// A normal reset: the ROM boots from flash and the application runs. Returns the boot log
    /// the ROM prints.
    pub fn boot_app(&mut self) -> Vec<Action> {
        self.reset_to_rom();
        self.state = LoaderState::App;
        self.baud = ROM_BAUD;
        let mut text = self.opts.profile.boot_banner.to_owned();
        let boot_at = self.opts.profile.chip.bootloader_offset();
        let head = self.lock_flash().read(boot_at, 4);
        if head[0] == 0xE9 {
            text.push_str("(espfleet-sim: second-stage bootloader found; application running)\r\n");
        } else {
            let _ = write!(
                text,
                "invalid header: 0x{:08x}\r\n",
                u32::from_le_bytes([head[0], head[1], head[2], head[3]])
            );
        }
        vec![Action::Text(text.into_bytes())]
    }

    /// True when `frame` is a well-formed SYNC command (used for autobaud).
    pub fn is_sync(frame: &[u8]) -> bool {
        Command::parse(frame).is_ok_and(|c| c.op == op::SYNC && c.data == SYNC_PAYLOAD)
    }

    fn lock_flash(&self) -> std::sync::MutexGuard<'_, FlashArray> {
        self.flash.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn loader(&self) -> Loader {
        if self.state == LoaderState::Stub {
            Loader::Stub
        } else {
            Loader::Rom
        }
    }

    /// Handles one frame from the host.
    pub fn on_frame(&mut self, frame: &[u8]) -> Vec<Action> {
        if self.read.is_some() {
            return self.on_read_ack(frame);
        }
        if self.state == LoaderState::App {
            return Vec::new(); // the application does not speak the loader protocol
        }
        let Ok(cmd) = Command::parse(frame) else {
            return Vec::new(); // not a command: the loaders stay silent
        };
        let loader = self.loader();
        if cmd.op == op::SYNC {
            return self.sync(&cmd);
        }
        let (value, payload, result, mut after) = match self.dispatch(&cmd) {
            Ok(Handled {
                value,
                payload,
                after,
                failure,
            }) => (value, payload, failure.map_or(Ok(()), Err), after),
            Err(f) => (0, Vec::new(), Err(f), Vec::new()),
        };
        if cmd.op == op::RUN_USER_CODE && result.is_ok() {
            return after; // no reply: the stub jumps straight to the application
        }
        let mut actions = Vec::new();
        // Work that happens before the reply comes first in `after`, marked as such.
        let mut pre: Vec<Action> = Vec::new();
        after.retain(|a| {
            if let Action::Work(_) = a {
                pre.push(a.clone());
                false
            } else {
                true
            }
        });
        actions.extend(pre);
        let refused = result == Err(Failure::UNSUPPORTED) && loader == Loader::Rom;
        let (op, value) = match self.opts.identity.rom_refusal {
            // The ESP32 ROM answers a command it lacks in the previous reply's header.
            RomRefusal::RepeatLastHeader if refused => self.last_header,
            _ => (cmd.op, value),
        };
        self.last_header = (op, value);
        actions.push(Action::Frame(response(op, value, &payload, result, loader)));
        actions.extend(after);
        actions
    }

    fn sync(&mut self, cmd: &Command) -> Vec<Action> {
        if cmd.data != SYNC_PAYLOAD {
            return Vec::new();
        }
        let (value, loader) = match self.state {
            LoaderState::Stub => (0, Loader::Stub),
            _ => (ROM_SYNC_VALUE, Loader::Rom),
        };
        let reply = response(op::SYNC, value, &[], Ok(()), loader);
        self.last_header = (op::SYNC, value);
        vec![Action::Frame(reply); 8]
    }

    #[allow(clippy::too_many_lines)] // one arm per opcode: reads best as one table
    fn dispatch(&mut self, cmd: &Command) -> Result<Handled, Failure> {
        let stub = self.state == LoaderState::Stub;
        match cmd.op {
            op::READ_REG => {
                let addr = word(cmd, 0)?;
                Ok(Handled::value(self.read_reg(addr)))
            }
            op::WRITE_REG => self.write_reg(cmd),
            op::SPI_ATTACH => {
                let want = if stub { 4 } else { 8 };
                if cmd.data.len() != want {
                    return Err(Failure::BAD_LENGTH);
                }
                self.attached = true;
                Ok(Handled::ok())
            }
            op::SPI_SET_PARAMS => {
                if cmd.data.len() != 24 {
                    return Err(Failure::BAD_LENGTH);
                }
                self.params_size = word(cmd, 1)?;
                Ok(Handled::ok())
            }
            op::CHANGE_BAUDRATE => {
                let new = word(cmd, 0)?;
                word(cmd, 1)?;
                if new == 0 {
                    return Err(Failure::BAD_LENGTH);
                }
                Ok(Handled::after(vec![Action::SetBaud(new)]))
            }
            op::GET_SECURITY_INFO => match self.opts.identity.security_chip_id {
                Some(chip_id) => {
                    let mut p = vec![0u8; 12]; // flags, flash_crypt_cnt, key purposes
                    p.extend_from_slice(&chip_id.to_le_bytes());
                    p.extend_from_slice(&0u32.to_le_bytes()); // eco / api version
                    Ok(Handled::payload(p))
                }
                None => Err(Failure::UNSUPPORTED),
            },
            op::FLASH_BEGIN | op::FLASH_DEFL_BEGIN => self.flash_begin(cmd),
            op::FLASH_DATA | op::FLASH_DEFL_DATA => self.flash_data(cmd),
            op::FLASH_END | op::FLASH_DEFL_END => self.flash_end(cmd),
            op::MEM_BEGIN => {
                if cmd.data.len() != 16 {
                    return Err(Failure::BAD_LENGTH);
                }
                self.mem = Some(MemSession { next_seq: 0 });
                Ok(Handled::ok())
            }
            op::MEM_DATA => {
                let (seq, _) = Self::check_data_block(cmd)?;
                let session = self.mem.as_mut().ok_or(Failure::NOT_IN_FLASH_MODE)?;
                if seq != session.next_seq {
                    return Err(Failure::BAD_SEQUENCE);
                }
                session.next_seq += 1;
                Ok(Handled::ok())
            }
            op::MEM_END => {
                let no_entry = word(cmd, 0)?;
                word(cmd, 1)?;
                self.mem = None;
                if no_entry != 0 {
                    return Ok(Handled::ok());
                }
                // Reply at once, then the stub starts and says hello (`docs/formats/serial-protocol.md` §6.9).
                self.state = LoaderState::Stub;
                self.attached = false;
                Ok(Handled::after(vec![
                    Action::Pause(Duration::from_millis(2)),
                    Action::Frame(OHAI.to_vec()),
                ]))
            }
            op::SPI_FLASH_MD5 => {
                let addr = word(cmd, 0)?;
                let size = word(cmd, 1)?;
                self.check_range(addr, size)?;
                let digest = self.lock_flash().md5(addr, size);
                let payload = if stub {
                    digest.to_vec()
                } else {
                    digest
                        .iter()
                        .fold(String::new(), |mut s, b| {
                            let _ = write!(s, "{b:02x}");
                            s
                        })
                        .into_bytes()
                };
                Ok(Handled {
                    after: vec![Action::Work(self.opts.timing.read(size))],
                    ..Handled::payload(payload)
                })
            }
            op::READ_FLASH_SLOW if !stub => {
                let addr = word(cmd, 0)?;
                let len = word(cmd, 1)?;
                if len > SLOW_READ_BLOCK {
                    return Err(Failure::READ_LENGTH);
                }
                self.check_range(addr, SLOW_READ_BLOCK)?;
                Ok(Handled::payload(
                    self.lock_flash().read(addr, SLOW_READ_BLOCK),
                ))
            }
            op::ERASE_FLASH if stub => {
                let mut flash = self.lock_flash();
                flash.erase_all();
                let t = self.opts.timing.chip_erase(flash.size());
                Ok(Handled::after(vec![
                    Action::Work(t),
                    Action::FlashChanged { settled: true },
                ]))
            }
            op::ERASE_REGION if stub => {
                let addr = word(cmd, 0)?;
                let size = word(cmd, 1)?;
                if addr % SECTOR_SIZE != 0 || size % SECTOR_SIZE != 0 {
                    return Err(Failure::BAD_LENGTH);
                }
                self.check_range(addr, size)?;
                let t = self.lock_flash().erase_range(addr, size, &self.opts.timing);
                Ok(Handled::after(vec![
                    Action::Work(t),
                    Action::FlashChanged { settled: true },
                ]))
            }
            op::READ_FLASH if stub => {
                let (offset, total, packet, max_in_flight) =
                    (word(cmd, 0)?, word(cmd, 1)?, word(cmd, 2)?, word(cmd, 3)?);
                if packet == 0 || max_in_flight == 0 {
                    return Err(Failure::BAD_LENGTH);
                }
                self.check_range(offset, total)?;
                self.read = Some(ReadStream {
                    offset,
                    total,
                    packet,
                    max_in_flight,
                    sent: 0,
                    acked: 0,
                });
                let after = self.pump_read();
                Ok(Handled::after(after))
            }
            op::RUN_USER_CODE if stub => Ok(Handled::after(self.boot_app())),
            _ => Err(Failure::UNSUPPORTED),
        }
    }

    fn read_reg(&self, addr: u32) -> u32 {
        if addr == self.opts.profile.uart_clkdiv {
            // Integer divider of the 40 MHz APB clock, bits 0-19 (`docs/formats/serial-protocol.md` §6.2).
            return (40_000_000 / self.baud.max(1)) & 0xF_FFFF;
        }
        if addr == MAGIC_REG {
            return self.opts.identity.magic;
        }
        self.regs.get(&addr).copied().unwrap_or(0)
    }

    fn write_reg(&mut self, cmd: &Command) -> Result<Handled, Failure> {
        if cmd.data.is_empty() || cmd.data.len() % 16 != 0 {
            return Err(Failure::BAD_LENGTH);
        }
        let mut after = Vec::new();
        for entry in cmd.data.chunks_exact(16) {
            let w = |i: usize| crate::protocol::le32(entry, i * 4);
            let (addr, value, mask, delay_us) = (w(0), w(1), w(2), w(3));
            let old = self.regs.get(&addr).copied().unwrap_or(0);
            let new = (old & !mask) | (value & mask);
            self.regs.insert(addr, new);
            if addr == self.opts.profile.spi.cmd() && new & SPI_CMD_USR != 0 {
                self.run_spi_user_command();
            }
            if delay_us > 0 {
                after.push(Action::Pause(Duration::from_micros(u64::from(delay_us))));
            }
        }
        Ok(Handled::after(after))
    }

    /// Runs the SPI "user command" the registers describe, like the SPI peripheral does when
    /// CMD bit 18 is set: both clients read the JEDEC ID (and esptool the SFDP header) this way.
    fn run_spi_user_command(&mut self) {
        let spi = self.opts.profile.spi;
        let reg = |regs: &HashMap<u32, u32>, a: u32| regs.get(&a).copied().unwrap_or(0);
        let opcode = reg(&self.regs, spi.base + spi.usr2) & 0xFF;
        let usr1 = reg(&self.regs, spi.base + spi.usr1);
        let addr_bits = ((usr1 >> 26) & 0x3F) + 1;
        let raw_addr = reg(&self.regs, spi.addr());
        let addr = if spi.addr_msb {
            raw_addr >> (32 - addr_bits.min(32))
        } else {
            raw_addr
        };
        let result = match opcode {
            0x9F => {
                // RDID: manufacturer Winbond (EF), memory type 40, capacity code.
                u32::from_le_bytes([0xEF, 0x40, self.opts.jedec_capacity_code, 0])
            }
            0x5A => sfdp_word(addr, self.opts.jedec_capacity_code),
            _ => 0, // status reads, reset-enable/reset (66/99) and the rest: nothing to report
        };
        self.regs.insert(spi.base + spi.w0, result);
        let cmd = reg(&self.regs, spi.cmd());
        self.regs.insert(spi.cmd(), cmd & !SPI_CMD_USR);
    }

    fn check_range(&self, addr: u32, len: u32) -> Result<(), Failure> {
        if u64::from(addr) + u64::from(len) > u64::from(self.params_size) {
            return Err(Failure::FLASH_OP);
        }
        Ok(())
    }

    /// The checks every `*_DATA` command makes, in the ROM's order (`docs/formats/serial-protocol.md` §6.6): data_len matches,
    /// checksum matches. Returns (seq, block data).
    fn check_data_block(cmd: &Command) -> Result<(u32, &[u8]), Failure> {
        if cmd.data.len() < 16 {
            return Err(Failure::BAD_LENGTH);
        }
        let data_len = word(cmd, 0)? as usize;
        let seq = word(cmd, 1)?;
        let block = &cmd.data[16..];
        if block.len() != data_len {
            return Err(Failure::BAD_LENGTH);
        }
        if cmd.checksum != u32::from(checksum(block)) {
            return Err(Failure::CHECKSUM);
        }
        Ok((seq, block))
    }

    fn flash_begin(&mut self, cmd: &Command) -> Result<Handled, Failure> {
        let stub = self.state == LoaderState::Stub;
        if cmd.data.len() != 16 && cmd.data.len() != 20 {
            return Err(Failure::BAD_LENGTH);
        }
        if !stub && !self.attached {
            return Err(Failure::FLASH_OP); // the ROM needs SPI_ATTACH first
        }
        let (size, blocks, block_size, offset) =
            (word(cmd, 0)?, word(cmd, 1)?, word(cmd, 2)?, word(cmd, 3)?);
        let compressed = cmd.op == op::FLASH_DEFL_BEGIN;
        if size > 0 {
            self.check_range(offset, size)?;
        }
        if blocks > 0 && block_size == 0 {
            return Err(Failure::BAD_SEQUENCE);
        }
        let mut after = Vec::new();
        if !stub && size > 0 {
            // The ROM erases the whole range before it answers.
            let t = self
                .lock_flash()
                .erase_range(offset, size, &self.opts.timing);
            after.push(Action::Work(t));
            after.push(Action::FlashChanged { settled: false });
        }
        let inflate = compressed.then(|| Inflater(InflateState::new_boxed(DataFormat::Zlib)));
        self.write = Some(WriteSession {
            compressed,
            offset,
            size,
            block_size,
            next_seq: 0,
            written: 0,
            received: 0,
            erased_to: offset - offset % SECTOR_SIZE,
            inflate,
        });
        Ok(Handled::after(after))
    }

    #[allow(clippy::too_many_lines)] // the ROM and stub rules side by side
    fn flash_data(&mut self, cmd: &Command) -> Result<Handled, Failure> {
        let stub = self.state == LoaderState::Stub;
        let compressed = cmd.op == op::FLASH_DEFL_DATA;
        match &self.write {
            Some(w) if w.compressed == compressed => {}
            _ => return Err(Failure::NOT_IN_FLASH_MODE),
        }
        let (seq, block) = Self::check_data_block(cmd)?;
        let timing = self.opts.timing;
        let flash = Arc::clone(&self.flash);
        let mut flash = flash.lock().unwrap_or_else(PoisonError::into_inner);
        let w = self.write.as_mut().expect("checked above");
        if seq != w.next_seq {
            return Err(Failure::BAD_SEQUENCE);
        }
        // What to program, and where.
        let mut work = Duration::ZERO;
        let mut program =
            |w: &mut WriteSession, flash: &mut FlashArray, bytes: &[u8]| -> Result<(), Failure> {
                let at = w.offset.wrapping_add(w.written);
                let mut bytes = bytes;
                if stub {
                    let room = w.size.saturating_sub(w.written) as usize;
                    if bytes.len() > room {
                        if compressed {
                            return Err(Failure::TOO_MUCH_DATA);
                        }
                        bytes = &bytes[..room]; // the stub clamps the padding of the last block
                    }
                    // Erase just in time, skipping sectors that are already blank.
                    let end = at + u32::try_from(bytes.len()).expect("block fits in u32");
                    while w.erased_to < end {
                        if !flash.sector_is_blank(w.erased_to) {
                            flash.erase_sector(w.erased_to);
                            work += timing.sector_erase;
                        }
                        w.erased_to += SECTOR_SIZE;
                    }
                }
                flash.program(at, bytes);
                w.written += u32::try_from(bytes.len()).expect("block fits in u32");
                work += timing.program(bytes.len());
                Ok(())
            };
        if compressed {
            let mut out = vec![0u8; 64 * 1024];
            let mut input = block;
            loop {
                let state = &mut w
                    .inflate
                    .as_mut()
                    .expect("compressed session has an inflater")
                    .0;
                let r =
                    miniz_oxide::inflate::stream::inflate(state, input, &mut out, MZFlush::None);
                input = &input[r.bytes_consumed..];
                let failed = match r.status {
                    Err(
                        MZError::Data
                        | MZError::Param
                        | MZError::Stream
                        | MZError::Mem
                        | MZError::Version,
                    ) => Some(if state.last_status() == TINFLStatus::Adler32Mismatch {
                        Failure::ADLER
                    } else {
                        Failure::INFLATE
                    }),
                    _ => None,
                };
                let (written, status) = (r.bytes_written, r.status);
                program(w, &mut flash, &out[..written])?;
                if let Some(f) = failed {
                    return Err(f);
                }
                let done = matches!(status, Ok(MZStatus::StreamEnd));
                // Keep going while there is input left or the output buffer came back full.
                if done
                    || (input.is_empty() && written < out.len())
                    || (r.bytes_consumed == 0 && written == 0)
                {
                    break;
                }
            }
        } else {
            let block_size = w.block_size;
            let at_seq = seq.wrapping_mul(block_size);
            w.received = w
                .received
                .saturating_add(u32::try_from(block.len()).unwrap_or(u32::MAX));
            if !stub {
                // The ROM writes the whole (padded) block where the sequence number says.
                w.written = at_seq;
            } else if at_seq >= w.size {
                return Err(Failure::TOO_MUCH_DATA);
            }
            program(w, &mut flash, block)?;
        }
        w.next_seq += 1;
        drop(flash);
        let timing_action = if stub {
            Action::BackgroundWork(work)
        } else {
            Action::Work(work)
        };
        Ok(Handled::after(vec![
            timing_action,
            Action::FlashChanged { settled: false },
        ]))
    }

    fn flash_end(&mut self, cmd: &Command) -> Result<Handled, Failure> {
        let stub = self.state == LoaderState::Stub;
        let reboot = word(cmd, 0)? == 0;
        // The write session ends here either way.
        let session = self.write.take();
        if let (true, Some(w)) = (stub, &session) {
            if cmd.op == op::FLASH_DEFL_END && w.compressed && w.written < w.size {
                return Err(Failure::NOT_ENOUGH_DATA);
            }
        }
        let mut after = vec![Action::FlashChanged { settled: true }];
        let mut failure = None;
        if !stub {
            // Both ROMs refuse a FLASH_END that comes before as many FLASH_DATA bytes as
            // FLASH_BEGIN announced (status 01, error 06), and leave the loader anyway, like
            // after a FLASH_END they accept: reboot into flash, or run user code (issue #12;
            // see the README).
            if let Some(w) = &session
                && cmd.op == op::FLASH_END
                && !w.compressed
                && w.received < w.size
            {
                failure = Some(Failure::FLASH_OP);
            }
            after.push(Action::Pause(Duration::from_millis(5)));
            after.extend(self.boot_app());
        } else if reboot && self.opts.stub_reboot_to_rom {
            // esptool's model: the stub resets back into the ROM loader at 115200.
            self.reset_to_rom();
            after.push(Action::SetBaud(ROM_BAUD));
        }
        Ok(Handled {
            failure,
            ..Handled::after(after)
        })
    }

    fn on_read_ack(&mut self, frame: &[u8]) -> Vec<Action> {
        if frame.len() != 4 {
            return Vec::new();
        }
        let acked = crate::protocol::le32(frame, 0);
        if let Some(r) = self.read.as_mut() {
            r.acked = acked.min(r.total);
        }
        self.pump_read()
    }

    /// Sends data packets while fewer than `max_in_flight` *bytes* are unacknowledged, then the
    /// MD5 once the host has acknowledged everything (`docs/formats/serial-protocol.md` §6.10). The window counts bytes, as in
    /// esptool's stub (`num_sent - num_acked < max_in_flight`): with the 64 both clients pass
    /// and 4 KiB packets, one packet is in flight at a time. espflash clears its input buffer
    /// before each acknowledgement, so a packet-counting window loses data with it (the
    /// "Corrupt data, expected 1000 bytes" failure of espflash issue #697).
    fn pump_read(&mut self) -> Vec<Action> {
        let Some(r) = self.read.as_mut() else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        let flash = self.flash.lock().unwrap_or_else(PoisonError::into_inner);
        while r.sent < r.total && r.sent - r.acked.min(r.sent) < r.max_in_flight {
            let n = r.packet.min(r.total - r.sent);
            actions.push(Action::Frame(flash.read(r.offset + r.sent, n)));
            r.sent += n;
        }
        if r.sent == r.total && r.acked >= r.total {
            actions.push(Action::Frame(flash.md5(r.offset, r.total).to_vec()));
            drop(flash);
            self.read = None;
        }
        actions
    }
}

/// A handled command: header value, payload before the status, and what follows the reply
/// (except `Work`, which `on_frame` moves in front of the reply). `failure` is set for a command
/// the loader refuses but acts on all the same (the ROM's FLASH_END after a short write).
struct Handled {
    value: u32,
    payload: Vec<u8>,
    after: Vec<Action>,
    failure: Option<Failure>,
}

impl Handled {
    fn ok() -> Self {
        Handled {
            value: 0,
            payload: Vec::new(),
            after: Vec::new(),
            failure: None,
        }
    }
    fn value(value: u32) -> Self {
        Handled {
            value,
            payload: Vec::new(),
            after: Vec::new(),
            failure: None,
        }
    }
    fn payload(payload: Vec<u8>) -> Self {
        Handled {
            value: 0,
            payload,
            after: Vec::new(),
            failure: None,
        }
    }
    fn after(after: Vec<Action>) -> Self {
        Handled {
            value: 0,
            payload: Vec::new(),
            after,
            failure: None,
        }
    }
}

/// Word `n` of the data field, or the loader's "bad length" error.
fn word(cmd: &Command, n: usize) -> Result<u32, Failure> {
    cmd.word(n).ok_or(Failure::BAD_LENGTH)
}

/// A minimal SFDP table (JESD216): the "SFDP" signature, one parameter header for the basic
/// flash parameter table, and the table's density word. Enough for esptool's flash check.
fn sfdp_word(addr: u32, capacity_code: u8) -> u32 {
    let bits = (1u64 << capacity_code) * 8 - 1;
    let density = u32::try_from(bits).unwrap_or(u32::MAX).to_le_bytes();
    let mut table = [0xFFu8; 0x40];
    table[0..8].copy_from_slice(&[b'S', b'F', b'D', b'P', 0x06, 0x01, 0x00, 0xFF]);
    // Parameter header 0: JEDEC basic table, rev 1.6, 16 dwords, at 0x30.
    table[8..16].copy_from_slice(&[0x00, 0x06, 0x01, 0x10, 0x30, 0x00, 0x00, 0xFF]);
    // Parameter header 1 (manufacturer's table): id EF (Winbond), at 0x80 (not modelled).
    table[16..24].copy_from_slice(&[0xEF, 0x00, 0x01, 0x04, 0x80, 0x00, 0x00, 0xFF]);
    table[0x30..0x34].copy_from_slice(&[0xE5, 0x20, 0xF9, 0xFF]);
    table[0x34..0x38].copy_from_slice(&density);
    let at = |i: u32| table.get(i as usize).copied().unwrap_or(0xFF);
    u32::from_le_bytes([at(addr), at(addr + 1), at(addr + 2), at(addr + 3)])
}

#[cfg(test)]
mod tests;
