//! The one event type the loop handles: everything that can happen, as plain data.

use std::path::PathBuf;

use espfleet_compiler::device_match::ChipFacts;

use super::board::{FlashFailure, FlashReport, Progress};
use super::device::DeviceEvent;

/// Identifies one worker run; a port may get a new worker after a re-plug, and late events
/// from the old one must not be mistaken for the new one's.
pub type WorkerId = u64;

/// Everything the loop reacts to.
#[derive(Debug)]
pub enum Event {
    /// A serial port appeared, was there at start, or went away.
    Device(DeviceEvent),
    /// The device source is listening and has reported every port present at start: the
    /// daemon is ready (READY=1).
    DevicesEnumerated,
    /// Something changed in the manifest directory (debounced by the loop).
    ManifestsChanged,
    /// A worker has something to say.
    Worker {
        /// Which worker.
        id: WorkerId,
        /// The port it works on.
        syspath: PathBuf,
        /// What it says.
        event: WorkerEvent,
    },
    /// A source stopped; the daemon exits so systemd restarts it.
    SourceDied {
        /// Which source ("udev", "manifest watcher", ...).
        source: &'static str,
        /// Why.
        error: String,
    },
    /// SIGTERM or SIGINT: stop cleanly.
    Shutdown,
}

/// What a worker reports.
#[derive(Debug)]
pub enum WorkerEvent {
    /// Connected to the ROM bootloader; the loop must now decide which manifest applies.
    Identified(ChipFacts),
    /// Flash progress.
    Progress(Progress),
    /// One attempt ended; `retry_in` is set when the worker will try again.
    AttemptFinished {
        /// Attempt number, from 1.
        attempt: u32,
        /// The result.
        result: Result<FlashReport, FlashFailure>,
        /// Milliseconds the attempt took.
        duration_ms: u64,
        /// Set when the worker will retry after this many milliseconds.
        retry_in_ms: Option<u64>,
    },
    /// The worker finished and released the port.
    Done,
}
