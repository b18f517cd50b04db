//! The daemon's view of a board on a serial port: connect (learn chip and MAC), then flash.
//!
//! Behind a trait so the loop and the workers run the same code against the espflash-based
//! flasher on real boards, the simulator on a pseudo-terminal, and in-memory fakes in tests.

use std::sync::atomic::AtomicBool;

use espfleet_compiler::device_match::ChipFacts;
use espfleet_compiler::image::FlashImage;

/// Progress of one flash, for the status socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Bytes done (written or verified) so far.
    pub done: u64,
    /// Bytes in all segments.
    pub total: u64,
}

/// What a successful flash did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct FlashReport {
    /// Bytes actually written (regions whose MD5 already matched are not rewritten).
    pub bytes_written: u64,
    /// Bytes in all segments (written or found already in place).
    pub bytes_total: u64,
    /// Segments found already in place and only verified.
    pub segments_skipped: usize,
    /// Segments written.
    pub segments_written: usize,
}

impl FlashReport {
    /// True when nothing had to be written: the board already held the images.
    pub fn verified_only(&self) -> bool {
        self.segments_written == 0
    }
}

/// Why connecting or flashing failed, and what that means for retrying.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FlashFailure {
    /// Worth retrying on the same plug-in (a timeout, a garbled reply).
    pub transient: bool,
    /// The port disappeared (unplugged): the next plug-in retries.
    pub board_gone: bool,
    /// Human-readable cause, including what state the board was left in.
    pub message: String,
}

impl std::fmt::Display for FlashFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An open connection to a board's ROM bootloader (or stub).
pub trait BoardSession: Send {
    /// Chip and MAC, read while connecting.
    fn facts(&self) -> ChipFacts;
    /// Writes `image` (skipping regions already in place), verifies it, and reports progress.
    /// Must stop early, with a failure, once `cancel` is set.
    fn flash(
        &mut self,
        image: &FlashImage,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<FlashReport, FlashFailure>;
}

/// Opens connections to boards. One connector is shared by every worker.
pub trait BoardConnector: Send + Sync {
    /// Connects to the bootloader of the board on `port` (resetting it into download mode if
    /// the port allows) and reads chip and MAC. Writes nothing. The port's USB facts come from
    /// the device event, so nothing needs to resolve the device node (which must not be done
    /// on umockdev's mocked nodes, and costs a sysfs walk on real ones).
    fn connect(
        &self,
        port: &super::device::SerialPort,
        cancel: &AtomicBool,
    ) -> Result<Box<dyn BoardSession>, FlashFailure>;
}
