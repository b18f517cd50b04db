//! Writing a [`FlashImage`] to a board over a serial port, with the espflash library.
//!
//! One call to [`flash`] does the whole job on one port and reports progress through a
//! callback; it never prints. The daemon runs one call per port on its own thread ([`spawn`]);
//! everything here is `Send`.
//!
//! The sequence, and why it is in this order:
//!
//! 1. **Connect in ROM mode** with the reset the port supports: the DTR/RTS dance for USB-UART
//!    bridges, the USB Serial/JTAG sequence for 303a:1001, none for ports without modem lines
//!    (ptys). Switch the ROM to the requested baud at once.
//! 2. **Check before writing anything**: the detected chip, the flash size (against the image's
//!    flash size and its last byte) and, if asked, the MAC. Any mismatch is refused with the
//!    board untouched.
//! 3. **Compare**: MD5 every part locally and ask the ROM for the MD5 of the same region
//!    (SPI_FLASH_MD5). Parts that match are skipped. When nothing changed we stop here: no stub
//!    upload, no write, which makes an unchanged re-flash cost a connect plus one MD5 per part.
//! 4. **Write** the changed parts. With the stub (the default) we reconnect on the same open port
//!    at the already-raised baud, so the stub upload runs at full speed instead of 115200, and
//!    espflash sends deflate-compressed blocks. Every written part is verified by MD5.
//! 5. **Reset** as asked.
//!
//! A failure at any step is a [`FlashError`] that says what the board was left holding
//! ([`BoardState`]); a flash is only reported done when every part is verified.

mod error;
mod port;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::Flasher;
use espflash::image_format::Segment as EspSegment;
use espflash::target::ProgressCallbacks;
use espfleet_compiler::image::FlashImage;
use espfleet_compiler::target::Chip;
use md5::{Digest as _, Md5};

pub use self::error::{BoardState, FlashError};
pub use self::port::{Port, USB_SERIAL_JTAG_PID, UsbIds};

/// Flash sector size: the erase unit, and so the alignment every part must have.
const SECTOR: u32 = 0x1000;

/// How to get the chip into its bootloader before flashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Before {
    /// Reset when the port has modem lines (DTR/RTS on a bridge, the USB Serial/JTAG sequence
    /// for 303a:1001), otherwise expect the chip to be in download mode already.
    #[default]
    Auto,
    /// Reset into download mode through DTR/RTS (or the USB Serial/JTAG sequence).
    DefaultReset,
    /// The ESP32-C3 USB Serial/JTAG reset sequence, whatever the port's USB ids say.
    UsbReset,
    /// No reset: the chip is already in download mode (BOOT held during reset, or a pty).
    NoReset,
}

/// What to do with the chip after flashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum After {
    /// Hard reset when the port has modem lines, otherwise leave it in the bootloader.
    #[default]
    Auto,
    /// Reset through the RTS line (or USB Serial/JTAG) so the new firmware starts.
    HardReset,
    /// Leave the chip in the ROM bootloader.
    NoReset,
    /// Leave the chip running the flasher stub.
    NoResetNoStub,
    /// Reset through the RTC watchdog (ESP32-C3 on USB Serial/JTAG only).
    WatchdogReset,
}

/// How to flash. `Default` is what the CLI uses without flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashOptions {
    /// Baud rate for the transfer; the connect itself always starts at 115200.
    pub baud: u32,
    /// Upload espflash's RAM stub (faster, compressed writes). Without it the ROM loader writes
    /// uncompressed 1 KiB blocks.
    pub use_stub: bool,
    /// Reset before connecting.
    pub before: Before,
    /// Reset after flashing.
    pub after: After,
    /// Refuse boards whose factory MAC differs (for images carrying per-board data).
    pub expected_mac: Option<MacAddress>,
    /// Skip parts whose flash region already holds the same bytes (MD5 compare).
    pub skip_unchanged: bool,
}

impl Default for FlashOptions {
    fn default() -> Self {
        FlashOptions {
            baud: 460_800,
            use_stub: true,
            before: Before::Auto,
            after: After::Auto,
            expected_mac: None,
            skip_unchanged: true,
        }
    }
}

/// A 6-byte MAC address, parsed from `24:0a:c4:12:34:56`, `24-0A-C4-12-34-56` or `240ac4123456`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl std::str::FromStr for MacAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex: String = s
            .chars()
            .filter(|c| !matches!(c, ':' | '-' | '.'))
            .collect();
        let bad = || {
            format!("`{s}` is not a MAC address (expected six hex bytes, e.g. 24:0a:c4:12:34:56)")
        };
        if hex.len() != 12 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(MacAddress(out))
    }
}

impl std::fmt::Display for MacAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: Vec<String> = self.0.iter().map(|b| format!("{b:02x}")).collect();
        f.write_str(&hex.join(":"))
    }
}

/// Progress of one flash, in order. Indices are into `FlashImage::segments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlashEvent {
    /// Opening the port and syncing with the bootloader (includes the reset, if any).
    Connecting,
    /// The bootloader answered and the board passed the chip, flash size and MAC checks.
    Connected {
        /// Detected chip.
        chip: Chip,
        /// Factory MAC.
        mac: String,
        /// Detected flash size in bytes.
        flash_size: u32,
    },
    /// The part's region already holds its bytes; it will not be written.
    PartUnchanged {
        /// Segment index.
        index: usize,
    },
    /// Uploading the flasher stub (only when something needs writing).
    LoadingStub,
    /// Writing a part starts.
    PartStarted {
        /// Segment index.
        index: usize,
        /// Number of blocks that will be sent (compressed blocks with the stub).
        blocks: usize,
    },
    /// Blocks of a part sent so far.
    PartProgress {
        /// Segment index.
        index: usize,
        /// Blocks sent.
        done: usize,
        /// Blocks in total.
        blocks: usize,
    },
    /// The part was sent; checking its MD5.
    PartVerifying {
        /// Segment index.
        index: usize,
    },
    /// The part is written and verified.
    PartWritten {
        /// Segment index.
        index: usize,
    },
    /// Resetting the board after flashing.
    Resetting,
}

/// What happened to one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartOutcome {
    /// Written and verified.
    Written,
    /// Already on the board (MD5 matched); not written.
    Skipped,
}

/// One part in a [`FlashReport`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartReport {
    /// Segment name.
    pub name: String,
    /// Flash offset.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// Written or skipped.
    pub outcome: PartOutcome,
}

/// The result of a completed flash: every part is on the board, verified.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FlashReport {
    /// The port.
    pub port: PathBuf,
    /// Detected chip.
    pub chip: Chip,
    /// Factory MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Detected flash size in bytes.
    pub flash_size: u32,
    /// Whether the stub was used for writing (false when nothing needed writing).
    pub stub: bool,
    /// The transfer baud rate.
    pub baud: u32,
    /// Per part, in image order.
    pub parts: Vec<PartReport>,
    /// Bytes of the parts written (uncompressed).
    pub bytes_written: u64,
    /// Bytes of all parts.
    pub bytes_total: u64,
    /// Wall time from opening the port to the end of the reset.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Flashes `image` to the board on `port`. Blocks until done; call it from the port's worker
/// thread (see [`spawn`]). `on_event` sees every step; it must not block for long.
pub fn flash(
    port: &Port,
    image: &FlashImage,
    opts: &FlashOptions,
    on_event: &mut dyn FnMut(FlashEvent),
) -> Result<FlashReport, FlashError> {
    let started = Instant::now();
    validate(image)?;
    let local_md5: Vec<[u8; 16]> = image
        .segments
        .iter()
        .map(|s| Md5::digest(&s.data).into())
        .collect();

    on_event(FlashEvent::Connecting);
    let (mut rom, link) = connect(port, opts)?;
    let board = check(port, image, opts, &mut rom)?;
    on_event(FlashEvent::Connected {
        chip: board.chip,
        mac: board.mac.clone(),
        flash_size: board.flash_size,
    });

    // Compare with what is on the board.
    let mut changed = Vec::new();
    for (index, seg) in image.segments.iter().enumerate() {
        let same = opts.skip_unchanged && {
            let len = u32::try_from(seg.data.len()).unwrap_or(u32::MAX);
            let theirs = rom
                .checksum_md5(seg.offset, len)
                .map_err(untouched(port, "comparing flash contents"))?;
            theirs.to_be_bytes() == local_md5[index]
        };
        if same {
            on_event(FlashEvent::PartUnchanged { index });
        } else {
            changed.push(index);
        }
    }

    if changed.is_empty() {
        on_event(FlashEvent::Resetting);
        rom.connection()
            .reset_after(false, board.esp_chip)
            .map_err(|e| FlashError::ResetFailed {
                port: port.path().to_owned(),
                source: Box::new(e),
            })?;
        return Ok(board.report(port, image, opts, &changed, false, started));
    }

    let mut writer = if opts.use_stub {
        on_event(FlashEvent::LoadingStub);
        // Same open port, already at the transfer baud: the ROM is in its loader and answers
        // SYNC at this speed, so the stub goes up fast. No second reset.
        let serial = rom.into_connection().into_serial();
        let connection = Connection::new(
            serial,
            link.info,
            link.after,
            ResetBeforeOperation::NoReset,
            opts.baud,
        );
        Flasher::connect(connection, true, true, false, Some(board.esp_chip), None)
            .map_err(untouched(port, "starting the flasher stub"))?
    } else {
        rom
    };

    let padded: Vec<Vec<u8>> = changed
        .iter()
        .map(|&i| pad4(&image.segments[i].data))
        .collect();
    let segments: Vec<EspSegment<'_>> = changed
        .iter()
        .zip(&padded)
        .map(|(&i, data)| EspSegment {
            addr: image.segments[i].offset,
            data: Cow::Borrowed(data),
        })
        .collect();
    let mut progress = Progress {
        image,
        changed: &changed,
        current: None,
        done: Vec::new(),
        blocks: 0,
        on_event,
    };
    let result = writer.write_bins_to_flash(&segments, &mut progress);
    let Progress {
        done,
        current,
        on_event,
        ..
    } = progress;
    if let Err(e) = result {
        return Err(write_error(port, image, &done, current, changed.len(), e));
    }
    on_event(FlashEvent::Resetting);
    Ok(board.report(port, image, opts, &changed, opts.use_stub, started))
}

/// How the port was opened, for reconnecting on it.
struct Link {
    info: serialport::UsbPortInfo,
    after: ResetAfterOperation,
}

/// Opens the port, resets the chip into its loader as the port allows, syncs and raises the baud.
fn connect(port: &Port, opts: &FlashOptions) -> Result<(Flasher, Link), FlashError> {
    let mut serial = port.open()?;
    let has_lines = port::can_toggle_lines(&mut serial);
    let before = match opts.before {
        Before::Auto if has_lines => ResetBeforeOperation::DefaultReset,
        Before::Auto | Before::NoReset => ResetBeforeOperation::NoReset,
        Before::DefaultReset => ResetBeforeOperation::DefaultReset,
        Before::UsbReset => ResetBeforeOperation::UsbReset,
    };
    let after = match opts.after {
        After::Auto if has_lines => ResetAfterOperation::HardReset,
        After::Auto | After::NoReset => ResetAfterOperation::NoReset,
        After::HardReset => ResetAfterOperation::HardReset,
        After::NoResetNoStub => ResetAfterOperation::NoResetNoStub,
        After::WatchdogReset => ResetAfterOperation::WatchdogReset,
    };
    let info = port.espflash_info();
    let connection = Connection::new(serial, info.clone(), after, before, opts.baud);
    let rom =
        Flasher::connect(connection, false, true, false, None, Some(opts.baud)).map_err(|e| {
            if vanished(port, &e) {
                FlashError::DeviceVanished {
                    port: port.path().to_owned(),
                    during: "connecting",
                    state: BoardState::Untouched,
                    source: Box::new(e),
                }
            } else {
                FlashError::NoResponse {
                    port: port.path().to_owned(),
                    before: before.to_string(),
                    source: Box::new(e),
                }
            }
        })?;
    Ok((rom, Link { info, after }))
}

/// Maps an error that happened before anything was written.
fn untouched<'p>(
    port: &'p Port,
    during: &'static str,
) -> impl Fn(espflash::Error) -> FlashError + 'p {
    move |e| {
        if vanished(port, &e) {
            FlashError::DeviceVanished {
                port: port.path().to_owned(),
                during,
                state: BoardState::Untouched,
                source: Box::new(e),
            }
        } else {
            FlashError::Protocol {
                port: port.path().to_owned(),
                during,
                state: BoardState::Untouched,
                source: Box::new(e),
            }
        }
    }
}

/// The board, as identified and accepted by [`check`].
struct Board {
    chip: Chip,
    esp_chip: espflash::target::Chip,
    mac: String,
    flash_size: u32,
}

/// Refuses the board unless chip, flash size and (if asked) MAC fit the image.
fn check(
    port: &Port,
    image: &FlashImage,
    opts: &FlashOptions,
    rom: &mut Flasher,
) -> Result<Board, FlashError> {
    let device = rom
        .device_info()
        .map_err(untouched(port, "identifying the board"))?;
    let found_chip = device.chip.to_string();
    let chip = match found_chip.parse::<Chip>() {
        Ok(c) if c == image.chip => c,
        _ => {
            return Err(FlashError::WrongChip {
                port: port.path().to_owned(),
                expected: image.chip,
                found: found_chip,
            });
        }
    };
    let flash_size = device.flash_size.size();
    let needed = image
        .segments
        .iter()
        .map(espfleet_compiler::image::Segment::end)
        .max()
        .unwrap_or(0)
        .max(u64::from(image.flash.size.bytes()));
    if u64::from(flash_size) < needed {
        return Err(FlashError::FlashTooSmall {
            port: port.path().to_owned(),
            needed_mb: u32::try_from(needed.div_ceil(1 << 20)).unwrap_or(u32::MAX),
            found_mb: flash_size >> 20,
        });
    }
    let mac = device
        .mac_address
        .clone()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if let Some(expected) = opts.expected_mac
        && mac.parse::<MacAddress>().ok() != Some(expected)
    {
        return Err(FlashError::MacMismatch {
            port: port.path().to_owned(),
            expected: expected.to_string(),
            found: mac,
        });
    }
    Ok(Board {
        chip,
        esp_chip: device.chip,
        mac,
        flash_size,
    })
}

impl Board {
    fn report(
        &self,
        port: &Port,
        image: &FlashImage,
        opts: &FlashOptions,
        written: &[usize],
        stub: bool,
        started: Instant,
    ) -> FlashReport {
        let parts: Vec<PartReport> = image
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| PartReport {
                name: s.name.clone(),
                offset: s.offset,
                size: u32::try_from(s.data.len()).unwrap_or(u32::MAX),
                outcome: if written.contains(&i) {
                    PartOutcome::Written
                } else {
                    PartOutcome::Skipped
                },
            })
            .collect();
        FlashReport {
            port: port.path().to_owned(),
            chip: self.chip,
            mac: self.mac.clone(),
            flash_size: self.flash_size,
            stub,
            baud: opts.baud,
            bytes_written: parts
                .iter()
                .filter(|p| p.outcome == PartOutcome::Written)
                .map(|p| u64::from(p.size))
                .sum(),
            bytes_total: parts.iter().map(|p| u64::from(p.size)).sum(),
            parts,
            duration: started.elapsed(),
        }
    }
}

/// Runs [`flash`] on a new thread: the daemon's one worker per port.
pub fn spawn(
    port: Port,
    image: Arc<FlashImage>,
    opts: FlashOptions,
    mut on_event: impl FnMut(FlashEvent) + Send + 'static,
) -> std::thread::JoinHandle<Result<FlashReport, FlashError>> {
    let name = format!("flash {}", port.path().display());
    std::thread::Builder::new()
        .name(name)
        .spawn(move || flash(&port, &image, &opts, &mut on_event))
        .expect("spawning a thread only fails when the OS is out of resources")
}

/// Turns an error from the write phase into one that says what the board holds now.
fn write_error(
    port: &Port,
    image: &FlashImage,
    done: &[usize],
    current: Option<usize>,
    to_write: usize,
    e: espflash::Error,
) -> FlashError {
    let path = port.path().to_owned();
    if done.len() == to_write {
        // Every part was verified; only the end-of-flash command or the reset failed.
        return FlashError::ResetFailed {
            port: path,
            source: Box::new(e),
        };
    }
    let completed: Vec<String> = done
        .iter()
        .map(|&i| image.segments[i].name.clone())
        .collect();
    let interrupted = current.map(|i| image.segments[i].name.clone());
    let state = if completed.is_empty() && interrupted.is_none() {
        BoardState::Untouched
    } else {
        BoardState::PartiallyWritten {
            completed,
            interrupted,
        }
    };
    if let (espflash::Error::VerifyFailed, Some(i)) = (&e, current) {
        let seg = &image.segments[i];
        return FlashError::VerifyFailed {
            port: path,
            part: seg.name.clone(),
            offset: seg.offset,
            state,
        };
    }
    if vanished(port, &e) {
        return FlashError::DeviceVanished {
            port: path,
            during: "writing",
            state,
            source: Box::new(e),
        };
    }
    let summary = chain(&e);
    if garbled(&summary) {
        return FlashError::DataCorrupted {
            port: path,
            summary,
            state,
            source: Box::new(e),
        };
    }
    FlashError::WriteFailed {
        port: path,
        summary,
        state,
        source: Box::new(e),
    }
}

/// Whether the bootloader's complaint means the bytes it received were garbled. espflash keeps
/// its ROM error kinds private, so this matches their (stable) messages.
fn garbled(summary: &str) -> bool {
    const SIGNS: [&str; 7] = [
        "invalid CRC",
        "Bad data checksum",
        "Bad data length",
        "Malformed compressed data",
        "uncompressing",
        "invalid SLIP framing",
        "Invalid message",
    ];
    SIGNS.iter().any(|s| summary.contains(s))
}

/// The error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Whether an error means the device is gone (unplugged, powered off, USB dropped) rather than
/// merely silent or confused.
fn vanished(port: &Port, e: &espflash::Error) -> bool {
    if !port.path().exists() {
        return true;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // EIO (pty master closed / USB device gone), ENXIO, ENODEV.
            if matches!(io.raw_os_error(), Some(5 | 6 | 19))
                || matches!(
                    io.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof
                )
            {
                return true;
            }
        }
        if let Some(se) = err.downcast_ref::<serialport::Error>() {
            if se.kind == serialport::ErrorKind::NoDevice {
                return true;
            }
            if let serialport::ErrorKind::Io(kind) = se.kind
                && matches!(
                    kind,
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof
                )
            {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// Checks what the flasher relies on: sorted, non-overlapping, sector-aligned parts inside the
/// image's flash size.
fn validate(image: &FlashImage) -> Result<(), FlashError> {
    let invalid = |reason: String| Err(FlashError::InvalidImage { reason });
    let mut prev_end = 0u64;
    for seg in &image.segments {
        if seg.data.is_empty() {
            return invalid(format!("part `{}` is empty", seg.name));
        }
        if seg.offset % SECTOR != 0 {
            return invalid(format!(
                "part `{}` starts at {:#x}, which is not on a 4 KiB flash sector boundary",
                seg.name, seg.offset
            ));
        }
        if u64::from(seg.offset) < prev_end {
            return invalid(format!(
                "part `{}` at {:#x} overlaps the part before it",
                seg.name, seg.offset
            ));
        }
        // Writes erase whole sectors, so the next part must start in a later sector.
        prev_end = seg.end().next_multiple_of(u64::from(SECTOR));
        if seg.end() > u64::from(image.flash.size.bytes()) {
            return invalid(format!(
                "part `{}` ends at {:#x}, beyond the image's {} flash",
                seg.name,
                seg.end(),
                image.flash.size
            ));
        }
    }
    Ok(())
}

/// Pads to a multiple of 4 bytes with erased-flash bytes, as flash writes need.
fn pad4(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().next_multiple_of(4), 0xFF);
    v
}

/// Adapts espflash's progress callbacks to [`FlashEvent`]s and records which parts finished,
/// so a failure can say what the board holds.
struct Progress<'a, 'f> {
    image: &'a FlashImage,
    changed: &'a [usize],
    current: Option<usize>,
    done: Vec<usize>,
    blocks: usize,
    on_event: &'f mut dyn FnMut(FlashEvent),
}

impl ProgressCallbacks for Progress<'_, '_> {
    fn init(&mut self, addr: u32, total: usize) {
        let index = self
            .changed
            .iter()
            .copied()
            .find(|&i| self.image.segments[i].offset == addr)
            .unwrap_or(self.changed[self.done.len().min(self.changed.len() - 1)]);
        self.current = Some(index);
        self.blocks = total;
        (self.on_event)(FlashEvent::PartStarted {
            index,
            blocks: total,
        });
    }
    fn update(&mut self, current: usize) {
        if let Some(index) = self.current {
            (self.on_event)(FlashEvent::PartProgress {
                index,
                done: current,
                blocks: self.blocks,
            });
        }
    }
    fn verifying(&mut self) {
        if let Some(index) = self.current {
            (self.on_event)(FlashEvent::PartVerifying { index });
        }
    }
    fn finish(&mut self, _skipped: bool) {
        if let Some(index) = self.current.take() {
            self.done.push(index);
            (self.on_event)(FlashEvent::PartWritten { index });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn worker_types_are_send() {
        assert_send::<Port>();
        assert_send::<FlashOptions>();
        assert_send::<FlashReport>();
        assert_send::<FlashError>();
        assert_send::<FlashImage>();
    }

    #[test]
    fn mac_parses_common_spellings() {
        let want = MacAddress([0x24, 0x0a, 0xc4, 0x12, 0x34, 0x56]);
        for s in ["24:0a:c4:12:34:56", "24-0A-C4-12-34-56", "240ac4123456"] {
            assert_eq!(s.parse::<MacAddress>().unwrap(), want, "{s}");
        }
        assert_eq!(want.to_string(), "24:0a:c4:12:34:56");
        assert!("24:0a:c4:12:34".parse::<MacAddress>().is_err());
        assert!("zz:0a:c4:12:34:56".parse::<MacAddress>().is_err());
    }
}
