//! Flashing errors: each says what went wrong, what state the board was left in, and what to do.

use std::fmt;
use std::path::PathBuf;

use espfleet_compiler::target::Chip;
use miette::Diagnostic;
use thiserror::Error;

/// What a failed (or interrupted) flash left on the board. Every error carries one, so an
/// operator never has to guess whether a board is safe to ship.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BoardState {
    /// Nothing was written: the flash holds whatever it held before.
    Untouched,
    /// Writing stopped part way (see [`PartialWrite`]).
    PartiallyWritten(Box<PartialWrite>),
    /// Every part was sent and acknowledged block by block, but checking them failed part way;
    /// `verified` ones are proven, the others are probably right, but nothing proves it.
    SentNotVerified {
        /// Parts verified by MD5 before the failure.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        verified: Vec<String>,
        /// Parts sent but not verified.
        parts: Vec<String>,
    },
    /// Every part was written and verified, but the final reset failed.
    WrittenNotReset,
}

/// What a write that stopped part way left: `completed` parts are written and proven by MD5;
/// `unverified` ones were sent block by block and acknowledged but not checked yet (with the
/// stub the MD5 checks run after the last part); `interrupted` is the part that was being
/// written (it is incomplete), if one was.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartialWrite {
    /// Parts written and verified by MD5 before the failure.
    pub completed: Vec<String>,
    /// Parts sent (every block acknowledged) but not verified.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unverified: Vec<String>,
    /// The part being written when it failed; its region holds a mix of old, erased and new
    /// bytes.
    pub interrupted: Option<String>,
}

impl fmt::Display for BoardState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoardState::Untouched => {
                f.write_str("nothing was written; the board's flash is unchanged")
            }
            BoardState::PartiallyWritten(partial) => {
                let PartialWrite {
                    completed,
                    unverified,
                    interrupted,
                } = &**partial;
                match interrupted {
                    Some(part) => {
                        write!(f, "the board is PARTIALLY WRITTEN: `{part}` is incomplete")?;
                    }
                    None => f.write_str("the board is PARTIALLY WRITTEN")?,
                }
                if completed.is_empty() {
                    f.write_str(" and no part was completed and verified")?;
                } else {
                    write!(f, " (completed and verified: {})", completed.join(", "))?;
                }
                if !unverified.is_empty() {
                    write!(f, "; sent but not verified: {}", unverified.join(", "))?;
                }
                Ok(())
            }
            BoardState::SentNotVerified { verified, parts } => {
                write!(
                    f,
                    "every part was sent, but {} not verified; flash it again to be sure",
                    parts.join(", ")
                )?;
                if !verified.is_empty() {
                    write!(f, " (verified: {})", verified.join(", "))?;
                }
                Ok(())
            }
            BoardState::WrittenNotReset => {
                f.write_str("every part was written and verified, but the board was not reset")
            }
        }
    }
}

/// Why a flash failed. Codes are stable (`espfleet::flash::...`); scripts and the daemon key on
/// them.
#[derive(Debug, Error, Diagnostic)]
pub enum FlashError {
    /// The image itself cannot be flashed (overlapping or out-of-range segments).
    #[error("the image cannot be flashed: {reason}")]
    #[diagnostic(
        code(espfleet::flash::invalid_image),
        help("this is a bug in whatever produced the image; rebuild it. Nothing was written.")
    )]
    InvalidImage {
        /// What is wrong with it.
        reason: String,
    },

    /// The serial port does not exist.
    #[error("serial port {} does not exist", port.display())]
    #[diagnostic(
        code(espfleet::flash::port_missing),
        help(
            "check that the board is plugged in and the cable carries data (some cables are \
             charge-only); `ls /dev/serial/by-id/` lists the ports present. Nothing was written."
        )
    )]
    PortMissing {
        /// The port path as given.
        port: PathBuf,
    },

    /// Another program holds the port.
    #[error("serial port {} is busy: another program has it open", port.display())]
    #[diagnostic(
        code(espfleet::flash::port_busy),
        help(
            "close serial monitors (idf.py monitor, screen, minicom, another espfleet) using it; \
             `fuser -v {}` shows who. ModemManager can also grab new ports. Nothing was written.",
            port.display()
        )
    )]
    PortBusy {
        /// The port path.
        port: PathBuf,
    },

    /// The port exists but could not be opened for another reason (permissions, driver).
    #[error("cannot open serial port {}: {detail}", port.display())]
    #[diagnostic(
        code(espfleet::flash::port_open),
        help(
            "if it says permission denied, add yourself to the `dialout` group (then log in \
             again) or install espfleet's udev rules. Nothing was written."
        )
    )]
    PortOpen {
        /// The port path.
        port: PathBuf,
        /// The operating system's message.
        detail: String,
    },

    /// Nothing answered the bootloader's SYNC.
    #[error("no response from a bootloader on {}", port.display())]
    #[diagnostic(
        code(espfleet::flash::no_response),
        help(
            "the chip is not in download mode or is not connected. Hold BOOT (IO0/GPIO9) down, \
             press and release RESET (EN), then release BOOT and try again; if your board has no \
             auto-reset circuit use `--before no-reset` after doing that. Check the cable, the \
             port and that nothing else drives the UART pins. Nothing was written."
        )
    )]
    NoResponse {
        /// The port path.
        port: PathBuf,
        /// The reset performed before connecting, for the message.
        before: String,
        /// The library's own error, for `--verbose` readers.
        #[source]
        source: Box<espflash::Error>,
    },

    /// The board answered with a chip id (magic register) espflash does not know.
    #[error("unknown chip on {}: its ROM reports magic value {magic:#010x}", port.display())]
    #[diagnostic(
        code(espfleet::flash::unknown_chip),
        help(
            "this is not an ESP32-family chip espflash knows, or the serial link garbles replies; \
             check the board and the cable. Nothing was written."
        )
    )]
    UnknownChip {
        /// The port path.
        port: PathBuf,
        /// The value of the chip's magic register (0x40001000).
        magic: u32,
    },

    /// The board is an ESP32-family chip espfleet does not flash.
    #[error("the board on {} is an {found}, which espfleet does not flash", port.display())]
    #[diagnostic(
        code(espfleet::flash::unsupported_chip),
        help("espfleet flashes ESP32 and ESP32-C3 boards. Nothing was written.")
    )]
    UnsupportedChip {
        /// The port path.
        port: PathBuf,
        /// espflash's name of the chip.
        found: String,
    },

    /// The board is a different chip than the image was built for.
    #[error("wrong chip: the image is for {expected}, but the board on {} is {found}", port.display())]
    #[diagnostic(
        code(espfleet::flash::wrong_chip),
        help(
            "use the manifest built for this board, or plug in the right board. Nothing was \
             written."
        )
    )]
    WrongChip {
        /// The port path.
        port: PathBuf,
        /// The chip the image needs.
        expected: Chip,
        /// What the board reported (espflash's name; may be a chip espfleet does not support).
        found: String,
    },

    /// The board's flash is smaller than the image needs.
    #[error(
        "flash too small: the image needs {needed_mb} MB of flash, but the board on {} has {found_mb} MB",
        port.display()
    )]
    #[diagnostic(
        code(espfleet::flash::flash_too_small),
        help(
            "this board has a smaller flash than the module the manifest describes; use a \
             manifest for a {found_mb} MB module, or a board with at least {needed_mb} MB. \
             Nothing was written."
        )
    )]
    FlashTooSmall {
        /// The port path.
        port: PathBuf,
        /// Flash size the image needs, in MiB (rounded up).
        needed_mb: u32,
        /// Flash size detected, in MiB.
        found_mb: u32,
    },

    /// The board's MAC is not the one expected.
    #[error("wrong board: expected MAC {expected}, but the board on {} has MAC {found}", port.display())]
    #[diagnostic(
        code(espfleet::flash::mac_mismatch),
        help(
            "this is not the board this image is for (images with per-board data are tied to a MAC); plug in the right one. Nothing was written."
        )
    )]
    MacMismatch {
        /// The port path.
        port: PathBuf,
        /// The MAC asked for.
        expected: String,
        /// The MAC the board reported.
        found: String,
    },

    /// The manifest's `match` rules name other boards (by MAC) than the one on the port.
    #[error(
        "wrong board: the manifest is for MAC {wanted} (its `match mac=`), but the board on {} has MAC {found}",
        port.display()
    )]
    #[diagnostic(
        code(espfleet::flash::board_not_matched),
        help(
            "this manifest carries data for another board (a per-device certificate or key); plug \
             in that board. To write these images to this board anyway, add `--ignore-match`. \
             Nothing was written."
        )
    )]
    NotMatched {
        /// The port path.
        port: PathBuf,
        /// The MACs the manifest's match rules name.
        wanted: String,
        /// The MAC the board reported.
        found: String,
    },

    /// The board disappeared (unplugged, reset, cable) while we were talking to it.
    #[error("the board on {} vanished during {during}; {state}", port.display())]
    #[diagnostic(
        code(espfleet::flash::device_vanished),
        help(
            "the board was unplugged or lost power, or the USB connection dropped. A board that \
             was partially written will not boot correctly: plug it back in and flash it again."
        )
    )]
    DeviceVanished {
        /// The port path.
        port: PathBuf,
        /// What we were doing.
        during: &'static str,
        /// What was left on the board.
        state: BoardState,
        /// The underlying error.
        #[source]
        source: Box<espflash::Error>,
    },

    /// The board stopped answering properly while writing (the port is still there).
    #[error("writing failed on {}: {summary}; {state}", port.display())]
    #[diagnostic(
        code(espfleet::flash::write_failed),
        help(
            "the serial link dropped or garbled data. Flash the board again (a partially written \
             board will not boot correctly); if it keeps failing, use a lower `--baud`, a \
             shorter cable or another USB port."
        )
    )]
    WriteFailed {
        /// The port path.
        port: PathBuf,
        /// espflash's description of the failure.
        summary: String,
        /// What was left on the board.
        state: BoardState,
        /// The underlying error.
        #[source]
        source: Box<espflash::Error>,
    },

    /// The bootloader rejected a block as garbled (bad checksum, bad length, broken deflate
    /// stream): bytes were corrupted on the serial link.
    #[error("data was corrupted on the way to the board on {}: {summary}; {state}", port.display())]
    #[diagnostic(
        code(espfleet::flash::data_corrupted),
        help(
            "the serial link garbled bytes (noise, a long or poor cable, a baud rate the USB \
             bridge cannot hold). Flash the board again, at a lower `--baud` or with a better \
             cable; a partially written board will not boot correctly."
        )
    )]
    DataCorrupted {
        /// The port path.
        port: PathBuf,
        /// The bootloader's complaint.
        summary: String,
        /// What was left on the board.
        state: BoardState,
        /// The underlying error.
        #[source]
        source: Box<espflash::Error>,
    },

    /// After writing, the flash did not hold what we wrote.
    #[error(
        "verification failed for `{part}` at {offset:#x} on {}: the flash does not hold what was written; {state}",
        port.display()
    )]
    #[diagnostic(
        code(espfleet::flash::verify_failed),
        help(
            "bytes were corrupted on the way or the flash chip did not program correctly. Flash \
             the board again; if it fails again at the same part, the board's flash (or its \
             power supply) is faulty."
        )
    )]
    VerifyFailed {
        /// The port path.
        port: PathBuf,
        /// The part whose MD5 did not match.
        part: String,
        /// Its flash offset.
        offset: u32,
        /// What was left on the board.
        state: BoardState,
    },

    /// Talking to the bootloader failed before anything was written (after it had answered).
    #[error("lost contact with the bootloader on {} during {during}; {state}", port.display())]
    #[diagnostic(
        code(espfleet::flash::protocol),
        help(
            "the board answered at first and then stopped making sense. Reset it into download \
             mode and try again, if needed at a lower `--baud`."
        )
    )]
    Protocol {
        /// The port path.
        port: PathBuf,
        /// What we were doing.
        during: &'static str,
        /// What was left on the board.
        state: BoardState,
        /// The underlying error.
        #[source]
        source: Box<espflash::Error>,
    },

    /// Everything was written and verified (or found in place), but ending the session as
    /// `--after` asked failed.
    #[error("the board on {} holds the images, verified, but resetting it failed", port.display())]
    #[diagnostic(code(espfleet::flash::reset_failed), help("{hint}"))]
    ResetFailed {
        /// The port path.
        port: PathBuf,
        /// What to do, for the `--after` that was asked for ([`reset_hint`]).
        hint: &'static str,
        /// The underlying error.
        #[source]
        source: Box<espflash::Error>,
    },
}

/// The help of [`FlashError::ResetFailed`]: what to do depends on what `--after` asked for and
/// whether the port has reset lines.
pub(crate) fn reset_hint(after: super::After, has_lines: bool) -> &'static str {
    use super::After;
    match (after, has_lines) {
        (After::NoReset | After::NoResetNoStub, _) | (After::Auto, false) => {
            "the images are written and verified; only returning to the loader failed. Reset the \
             board into download mode (hold BOOT, press RESET) before the next flash, or press \
             RESET alone to run the new firmware."
        }
        (After::HardReset | After::WatchdogReset, false) => {
            "this port has no DTR/RTS lines (a bare UART or a pseudo-terminal), so espfleet cannot \
             reset the board: press RESET (EN) or power-cycle it to run the new firmware, and use \
             `--after no-reset` for such ports."
        }
        (After::WatchdogReset, true) => {
            "the watchdog reset works only for an ESP32-C3 on its USB Serial/JTAG port; press \
             RESET (EN) or power-cycle the board to run the new firmware, or use `--after \
             hard-reset`."
        }
        (After::HardReset | After::Auto, true) => {
            "the RTS pulse did not reset the board (check the board's auto-reset circuit and \
             cable): press RESET (EN) or power-cycle it to run the new firmware."
        }
    }
}

impl FlashError {
    /// What the failure left on the board.
    pub fn board_state(&self) -> BoardState {
        match self {
            FlashError::DeviceVanished { state, .. }
            | FlashError::WriteFailed { state, .. }
            | FlashError::DataCorrupted { state, .. }
            | FlashError::VerifyFailed { state, .. }
            | FlashError::Protocol { state, .. } => state.clone(),
            FlashError::ResetFailed { .. } => BoardState::WrittenNotReset,
            _ => BoardState::Untouched,
        }
    }

    /// The stable code, as in the diagnostic (`espfleet::flash::no_response`).
    pub fn code_str(&self) -> String {
        self.code().map(|c| c.to_string()).unwrap_or_default()
    }
}
