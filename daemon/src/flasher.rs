//! Writing a [`FlashImage`] to a board over a serial port, through espflash's connection.
//!
//! [`Session`] is the front door: [`Session::connect`] opens the port and identifies the board,
//! [`Session::flash`] writes an image on the same connection. [`flash`] does both for the CLI;
//! the daemon identifies first, picks the board's manifest, then flashes, still on one
//! connection. Progress goes to a callback; nothing here prints. Everything is `Send`.
//!
//! The sequence, and why it is in this order:
//!
//! 1. **Connect to the ROM loader at 115200** with the reset the port supports: the DTR/RTS
//!    dance for USB-UART bridges, the USB Serial/JTAG sequence for 303a:1001, none for ports
//!    without modem lines (ptys). Identify the chip by its magic register (one round trip; the
//!    ESP32 ROM does not implement GET_SECURITY_INFO, see [`session`]), read the MAC and the
//!    flash's JEDEC ID.
//! 2. **Check before writing anything**: the chip, the flash size (against the image's flash
//!    size and its last byte) and, if asked, the MAC. Any mismatch is refused with the board
//!    untouched.
//! 3. **Compare**: MD5 every part locally and ask the loader for the MD5 of the same region
//!    (SPI_FLASH_MD5). Parts that match are skipped. When nothing changed we stop here: no baud
//!    change, no stub upload, no write, so an unchanged re-flash costs a connect plus one or two
//!    MD5s per part.
//! 4. **Write** the changed parts at the transfer baud. With the stub (the default) it is
//!    uploaded on the open port at that baud and takes deflate-compressed blocks; without it the
//!    ROM takes 1 KiB blocks, announced exactly, and gets no FLASH_END (which it would refuse
//!    for a short last part, and which makes it leave the loader). Every written part is
//!    verified by MD5.
//! 5. **Reset** as `--after` asks; `no-reset` leaves the board in its loader.
//!
//! A failure at any step is a [`FlashError`] that says what the board was left holding
//! ([`BoardState`]); a flash is only reported done when every part is verified.

mod error;
mod port;
mod session;
mod stub_image;
mod stub_write;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use espfleet_compiler::device_match::{MatchRule, format_mac};
use espfleet_compiler::image::FlashImage;
use espfleet_compiler::target::Chip;
use md5::{Digest as _, Md5};

use self::session::Loader;

pub use self::error::{BoardState, FlashError, PartialWrite};
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
    /// The manifest's `match` nodes: the board must satisfy the chip and MAC of at least one of
    /// them (their USB properties are the daemon's business). Empty: any board.
    pub match_rules: Vec<MatchRule>,
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
            match_rules: Vec::new(),
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

/// Flashes `image` to the board on `port`: [`Session::connect`], then [`Session::flash`].
/// Blocks until done; call it from the port's worker thread (see [`spawn`]). `on_event` sees
/// every step; it must not block for long.
pub fn flash(
    port: &Port,
    image: &FlashImage,
    opts: &FlashOptions,
    on_event: &mut dyn FnMut(FlashEvent),
) -> Result<FlashReport, FlashError> {
    validate(image)?;
    // Compression runs while we connect and compare; it is cancelled if nothing needs writing.
    let compressor = opts.use_stub.then(|| stub_write::Compressor::start(image));
    on_event(FlashEvent::Connecting);
    let session = Session::connect(port.clone(), opts.clone(), Some(image.chip))?;
    session.write(image, compressor, on_event)
}

/// One connection to a board's loader: identify it once, then flash it, on the same open port.
///
/// This is the front door for flashing: the CLI's [`flash`] and the daemon (which identifies a
/// board, picks its manifest, then flashes) both go through it.
#[derive(Debug)]
pub struct Session {
    port: Port,
    opts: FlashOptions,
    loader: Loader,
    board: Board,
    opened: Instant,
}

impl Session {
    /// Opens the port, resets the chip into its loader as `opts.before` says, and identifies the
    /// board: chip, MAC, flash size. Refuses (with the board untouched) a chip other than
    /// `expected`, a chip espfleet does not flash, and a MAC other than `opts.expected_mac`.
    pub fn connect(
        port: Port,
        opts: FlashOptions,
        expected: Option<Chip>,
    ) -> Result<Session, FlashError> {
        let opened = Instant::now();
        let (loader, identity) = Loader::open(&port, opts.before, opts.after, expected)?;
        let Some(chip) = identity.chip else {
            return Err(FlashError::UnsupportedChip {
                port: port.path().to_owned(),
                found: identity.esp_chip.to_string(),
            });
        };
        let Some(mac) = identity.mac else {
            return Err(FlashError::Protocol {
                port: port.path().to_owned(),
                during: "reading the MAC",
                state: BoardState::Untouched,
                source: Box::new(espflash::Error::InvalidResponse(
                    "the eFuse MAC is not readable".into(),
                )),
            });
        };
        if let Some(expected) = opts.expected_mac
            && mac != expected
        {
            return Err(FlashError::MacMismatch {
                port: port.path().to_owned(),
                expected: expected.to_string(),
                found: mac.to_string(),
            });
        }
        let satisfies =
            |r: &MatchRule| r.mac.is_none_or(|m| m == mac.0) && r.chip.is_none_or(|c| c == chip);
        if !opts.match_rules.is_empty() && !opts.match_rules.iter().any(satisfies) {
            let named: Vec<String> = opts
                .match_rules
                .iter()
                .filter_map(|r| r.mac.map(format_mac))
                .collect();
            return Err(FlashError::NotMatched {
                port: port.path().to_owned(),
                wanted: named.join(", "),
                found: mac.to_string(),
            });
        }
        Ok(Session {
            port,
            opts,
            loader,
            board: Board {
                chip,
                mac,
                flash_size: identity.flash_size,
            },
            opened,
        })
    }

    /// The chip found.
    pub fn chip(&self) -> Chip {
        self.board.chip
    }

    /// The board's factory MAC.
    pub fn mac(&self) -> MacAddress {
        self.board.mac
    }

    /// The flash size found, in bytes.
    pub fn flash_size(&self) -> u32 {
        self.board.flash_size
    }

    /// Flashes `image`: compares every part with the board (MD5), writes the changed ones,
    /// verifies each written part by MD5, then resets as `--after` says. Ends the session.
    pub fn flash(
        self,
        image: &FlashImage,
        on_event: &mut dyn FnMut(FlashEvent),
    ) -> Result<FlashReport, FlashError> {
        validate(image)?;
        let compressor = self
            .opts
            .use_stub
            .then(|| stub_write::Compressor::start(image));
        self.write(image, compressor, on_event)
    }

    fn write(
        mut self,
        image: &FlashImage,
        mut compressor: Option<stub_write::Compressor>,
        on_event: &mut dyn FnMut(FlashEvent),
    ) -> Result<FlashReport, FlashError> {
        self.check(image)?;
        on_event(FlashEvent::Connected {
            chip: self.board.chip,
            mac: self.board.mac.to_string(),
            flash_size: self.board.flash_size,
        });
        let local_md5: Vec<[u8; 16]> = image
            .segments
            .iter()
            .map(|s| Md5::digest(&s.data).into())
            .collect();
        let (changed, write_len) = self.compare(image, &local_md5, on_event)?;
        let port = self.port.clone();
        if changed.is_empty() {
            on_event(FlashEvent::Resetting);
            self.finish(false)?;
            return Ok(self.report(image, &changed, false));
        }
        // The baud was raised in `compare` at the first changed part (a no-op if it is there).
        self.loader
            .set_baud(self.opts.baud)
            .map_err(untouched(&port, "changing the baud rate"))?;
        let stub = if let Some(compressor) = compressor.as_mut() {
            self.write_with_stub(
                image, compressor, &changed, &local_md5, &write_len, on_event,
            )?;
            true
        } else {
            self.write_with_rom(image, &changed, &local_md5, &write_len, on_event)?;
            false
        };
        on_event(FlashEvent::Resetting);
        self.finish(stub)?;
        Ok(self.report(image, &changed, stub))
    }

    /// Refuses an image for another chip or a larger flash.
    fn check(&self, image: &FlashImage) -> Result<(), FlashError> {
        let port = self.port.path().to_owned();
        if image.chip != self.board.chip {
            return Err(FlashError::WrongChip {
                port,
                expected: image.chip,
                found: self.board.chip.to_string(),
            });
        }
        let needed = image
            .segments
            .iter()
            .map(espfleet_compiler::image::Segment::end)
            .max()
            .unwrap_or(0)
            .max(u64::from(image.flash.size.bytes()));
        if u64::from(self.board.flash_size) < needed {
            return Err(FlashError::FlashTooSmall {
                port,
                needed_mb: u32::try_from(needed.div_ceil(1 << 20)).unwrap_or(u32::MAX),
                found_mb: self.board.flash_size >> 20,
            });
        }
        Ok(())
    }

    /// Compares every part with the board. Returns the changed parts, and per part how many
    /// bytes need sending: a changed part's trailing erased sectors need not be sent when the
    /// board is erased there too.
    ///
    /// Reading flash for an MD5 takes time on the device (about 0.1 s per MiB), so a part's
    /// first sector is checked first: when it differs (an erased board, a new build) the part is
    /// known to be changed without reading the rest.
    ///
    /// The session runs at 115200 until the first changed part: a board that holds everything
    /// never pays for a baud change, and once something is to be written the remaining
    /// comparisons already run at the transfer speed.
    fn compare(
        &mut self,
        image: &FlashImage,
        local_md5: &[[u8; 16]],
        on_event: &mut dyn FnMut(FlashEvent),
    ) -> Result<(Vec<usize>, Vec<usize>), FlashError> {
        let port = self.port.clone();
        let comparing = untouched(&port, "comparing flash contents");
        let md5_on_board = |loader: &mut Loader, addr: u32, len: usize| {
            loader
                .md5(addr, u32::try_from(len).unwrap_or(u32::MAX))
                .map_err(&comparing)
        };
        let mut changed = Vec::new();
        let mut write_len: Vec<usize> = image.segments.iter().map(|s| s.data.len()).collect();
        for (index, seg) in image.segments.iter().enumerate() {
            let same = self.opts.skip_unchanged && {
                let head = seg.data.len().min(SECTOR as usize);
                let head_same = head == seg.data.len()
                    || md5_on_board(&mut self.loader, seg.offset, head)?
                        == <[u8; 16]>::from(Md5::digest(&seg.data[..head]));
                head_same
                    && md5_on_board(&mut self.loader, seg.offset, seg.data.len())?
                        == local_md5[index]
            };
            if same {
                on_event(FlashEvent::PartUnchanged { index });
                continue;
            }
            if changed.is_empty() {
                self.loader
                    .set_baud(self.opts.baud)
                    .map_err(untouched(&port, "changing the baud rate"))?;
            }
            changed.push(index);
            let head = head_len(&seg.data);
            if head < seg.data.len() {
                let tail = &seg.data[head..];
                let at = seg.offset + u32::try_from(head).unwrap_or(0);
                if md5_on_board(&mut self.loader, at, tail.len())?
                    == <[u8; 16]>::from(Md5::digest(tail))
                {
                    write_len[index] = head;
                }
            }
        }
        Ok((changed, write_len))
    }

    /// Writes the changed parts through the ROM loader, uncompressed in 1 KiB blocks, and checks
    /// each part's MD5 right after it (the ROM programs each block before it answers).
    fn write_with_rom(
        &mut self,
        image: &FlashImage,
        changed: &[usize],
        local_md5: &[[u8; 16]],
        write_len: &[usize],
        on_event: &mut dyn FnMut(FlashEvent),
    ) -> Result<(), FlashError> {
        let port = self.port.clone();
        self.loader
            .begin_rom_writes()
            .map_err(untouched(&port, "preparing the flash"))?;
        let mut verified: Vec<usize> = Vec::new();
        for &index in changed {
            let seg = &image.segments[index];
            let data = pad4(&seg.data[..write_len[index]]);
            let blocks = data.len().div_ceil(0x400);
            on_event(FlashEvent::PartStarted { index, blocks });
            let sent = self.loader.write_rom_part(seg.offset, &data, &mut |done| {
                on_event(FlashEvent::PartProgress {
                    index,
                    done,
                    blocks,
                });
            });
            let len = u32::try_from(seg.data.len()).unwrap_or(u32::MAX);
            let theirs = sent.and_then(|()| {
                on_event(FlashEvent::PartVerifying { index });
                self.loader.md5(seg.offset, len)
            });
            let theirs =
                theirs.map_err(|e| write_error(&port, image, &verified, &[], Some(index), e))?;
            if theirs != local_md5[index] {
                return Err(FlashError::VerifyFailed {
                    port: port.path().to_owned(),
                    part: seg.name.clone(),
                    offset: seg.offset,
                    state: partially_written(image, &verified, &[], Some(index)),
                });
            }
            verified.push(index);
            on_event(FlashEvent::PartWritten { index });
        }
        Ok(())
    }

    /// Writes the changed parts through the stub (see [`stub_write`]): stub upload on the open
    /// port at the transfer baud, all parts sent, then all verified.
    #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
    fn write_with_stub(
        &mut self,
        image: &FlashImage,
        compressor: &mut stub_write::Compressor,
        changed: &[usize],
        local_md5: &[[u8; 16]],
        write_len: &[usize],
        on_event: &mut dyn FnMut(FlashEvent),
    ) -> Result<(), FlashError> {
        let port = self.port.clone();
        on_event(FlashEvent::LoadingStub);
        self.loader
            .load_stub()
            .map_err(untouched(&port, "starting the flasher stub"))?;
        let esp_chip = self.loader.esp_chip();
        let mut sent: Vec<usize> = Vec::new();
        for &index in changed {
            let prepared = compressor.take(index, image, write_len[index]);
            let blocks = prepared.blocks();
            let offset = image.segments[index].offset;
            on_event(FlashEvent::PartStarted { index, blocks });
            let result = stub_write::send_part(
                self.loader.connection(),
                esp_chip,
                offset,
                &prepared,
                &mut |done| {
                    on_event(FlashEvent::PartProgress {
                        index,
                        done,
                        blocks,
                    });
                },
            );
            if let Err(e) = result {
                // Nothing is verified yet: the MD5 checks run after the last part.
                return Err(write_error(&port, image, &[], &sent, Some(index), e));
            }
            sent.push(index);
        }
        let mut verified: Vec<usize> = Vec::new();
        for &index in changed {
            on_event(FlashEvent::PartVerifying { index });
            let seg = &image.segments[index];
            let len = u32::try_from(seg.data.len()).unwrap_or(u32::MAX);
            let unverified: Vec<usize> = sent
                .iter()
                .copied()
                .filter(|i| !verified.contains(i))
                .collect();
            let theirs = self.loader.md5(seg.offset, len).map_err(|e| {
                let state = BoardState::SentNotVerified {
                    verified: names(image, &verified),
                    parts: names(image, &unverified),
                };
                if vanished(&port, &e) {
                    FlashError::DeviceVanished {
                        port: port.path().to_owned(),
                        during: "verifying",
                        state,
                        source: Box::new(e),
                    }
                } else {
                    FlashError::WriteFailed {
                        port: port.path().to_owned(),
                        summary: chain(&e),
                        state,
                        source: Box::new(e),
                    }
                }
            })?;
            if theirs != local_md5[index] {
                let others: Vec<usize> = unverified.into_iter().filter(|&i| i != index).collect();
                return Err(FlashError::VerifyFailed {
                    port: port.path().to_owned(),
                    part: seg.name.clone(),
                    offset: seg.offset,
                    state: partially_written(image, &verified, &others, Some(index)),
                });
            }
            verified.push(index);
            on_event(FlashEvent::PartWritten { index });
        }
        Ok(())
    }

    /// Ends the session as `--after` asks (see [`Loader::finish`]).
    fn finish(&mut self, wrote_with_stub: bool) -> Result<(), FlashError> {
        self.loader
            .finish(wrote_with_stub)
            .map_err(|e| FlashError::ResetFailed {
                port: self.port.path().to_owned(),
                hint: error::reset_hint(self.loader.after(), self.loader.has_lines()),
                source: Box::new(e),
            })
    }

    fn report(&self, image: &FlashImage, written: &[usize], stub: bool) -> FlashReport {
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
            port: self.port.path().to_owned(),
            chip: self.board.chip,
            mac: self.board.mac.to_string(),
            flash_size: self.board.flash_size,
            stub,
            baud: self.opts.baud,
            bytes_written: parts
                .iter()
                .filter(|p| p.outcome == PartOutcome::Written)
                .map(|p| u64::from(p.size))
                .sum(),
            bytes_total: parts.iter().map(|p| u64::from(p.size)).sum(),
            parts,
            duration: self.opened.elapsed(),
        }
    }
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

/// The board, as identified by [`Session::connect`].
#[derive(Debug, Clone, Copy)]
struct Board {
    chip: Chip,
    mac: MacAddress,
    flash_size: u32,
}

/// espfleet's name for an espflash chip, when espfleet supports it.
fn our_chip(chip: espflash::target::Chip) -> Option<Chip> {
    match chip {
        espflash::target::Chip::Esp32 => Some(Chip::Esp32),
        espflash::target::Chip::Esp32c3 => Some(Chip::Esp32c3),
        _ => None,
    }
}

/// Runs [`flash`] on a new thread: one worker per port.
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

fn names(image: &FlashImage, parts: &[usize]) -> Vec<String> {
    parts
        .iter()
        .map(|&i| image.segments[i].name.clone())
        .collect()
}

/// The state of a board some parts were written to: `verified` parts are proven by MD5,
/// `unverified` ones were sent (every block acknowledged) but not checked yet, `current` was
/// being written.
fn partially_written(
    image: &FlashImage,
    verified: &[usize],
    unverified: &[usize],
    current: Option<usize>,
) -> BoardState {
    if verified.is_empty() && unverified.is_empty() && current.is_none() {
        return BoardState::Untouched;
    }
    BoardState::PartiallyWritten(Box::new(PartialWrite {
        completed: names(image, verified),
        unverified: names(image, unverified),
        interrupted: current.map(|i| image.segments[i].name.clone()),
    }))
}

/// Turns an error from the write phase into one that says what the board holds now: `verified`
/// parts are proven by MD5, `unverified` ones sent but not yet checked, `current` was being sent.
fn write_error(
    port: &Port,
    image: &FlashImage,
    verified: &[usize],
    unverified: &[usize],
    current: Option<usize>,
    e: espflash::Error,
) -> FlashError {
    let path = port.path().to_owned();
    let state = partially_written(image, verified, unverified, current);
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
    if garbled(&e, &summary) {
        let summary = match current {
            Some(i) => format!(
                "the board rejected a block of `{}` as garbled",
                image.segments[i].name
            ),
            None => "the board rejected a block as garbled".to_owned(),
        };
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

/// Whether the bootloader's complaint means the bytes it received were garbled: it rejected a
/// data block (bad checksum, length or deflate stream; the stub reports these as a status with
/// no ROM error code, which espflash prints as "Other (0x0)"), or the reply framing was broken.
/// espflash keeps its ROM error kinds private, so this reads their (stable) messages.
fn garbled(e: &espflash::Error, summary: &str) -> bool {
    const SIGNS: [&str; 6] = [
        "invalid CRC",
        "Bad data checksum",
        "Bad data length",
        "Malformed compressed data",
        "uncompressing",
        "invalid SLIP framing",
    ];
    let data_block_rejected = matches!(e, espflash::Error::RomError(_))
        && (summary.contains("FlashDeflData command") || summary.contains("FlashData command"));
    data_block_rejected || SIGNS.iter().any(|s| summary.contains(s))
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

/// Length of `data` without its trailing erased (all-0xFF) 4 KiB sectors, counted from the
/// part's start; the whole length when nothing can be cut (or everything could).
pub(crate) fn head_len(data: &[u8]) -> usize {
    let used = data.iter().rposition(|&b| b != 0xFF).map_or(0, |i| i + 1);
    let head = used.next_multiple_of(SECTOR as usize);
    if head == 0 || head >= data.len() {
        data.len()
    } else {
        head
    }
}

/// Pads to a multiple of 4 bytes with erased-flash bytes, as flash writes need.
fn pad4(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().next_multiple_of(4), 0xFF);
    v
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
    fn head_len_cuts_whole_erased_sectors_only() {
        let mut part = vec![0u8; 5000];
        part.resize(0x5000, 0xFF);
        assert_eq!(
            head_len(&part),
            0x2000,
            "5000 bytes of data fill two sectors"
        );
        assert_eq!(
            head_len(&[0xFF; 0x3000]),
            0x3000,
            "all erased: nothing to gain, keep it whole"
        );
        assert_eq!(head_len(&[0u8; 0x1800]), 0x1800, "no erased tail");
        let mut short = vec![0u8; 100];
        short.resize(0x1200, 0xFF);
        assert_eq!(head_len(&short), 0x1000);
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
