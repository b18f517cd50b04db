//! A faithful simulated ESP32 / ESP32-C3: the ROM serial bootloader and the flasher stub,
//! spoken on a pseudo-terminal, so esptool, espflash and espfleet's own flasher can be run with
//! no board attached. The protocol is described in `docs/formats/serial-protocol.md` ("spec"
//! and section numbers in comments refer to it); behaviour of the real ROMs beyond it (issue
//! #12) is listed, with the chip and the evidence, in this crate's README.
//!
//! # Use
//!
//! ```no_run
//! use espfleet_sim::{SimConfig, Simulator, Pacing};
//! use espfleet_compiler::target::Chip;
//!
//! let mut config = SimConfig::new(Chip::Esp32c3);
//! config.pacing = Pacing::OFF; // tests: as fast as the pty goes
//! let sim = Simulator::spawn(config)?;
//! println!("point esptool at {}", sim.path().display());
//! // ... run a client against sim.path() ...
//! let flash = sim.flash_contents();
//! sim.stop()?;
//! # Ok::<(), espfleet_sim::SimError>(())
//! ```
//!
//! The board starts in the ROM loader. A pty has no DTR/RTS, so clients must not reset it:
//!
//! * esptool: `python -m esptool --port PATH --before no-reset --after no-reset write-flash ...`
//!   (esptool 4.x: `--before no_reset --after no_reset write_flash`);
//! * espflash (library): `ResetBeforeOperation::NoReset` and `ResetAfterOperation::NoReset` or
//!   `NoResetNoStub`. espflash's `Flasher` sends FLASH_END(reboot) to the ROM at the end of a
//!   write even with `NoReset`, and the ROM then leaves the loader (refusing that FLASH_END when
//!   the last part was short), so call [`SimHandle::reset_to_bootloader`] before the next
//!   session, as a real auto-reset circuit would.
//!
//! The command line front end is `espfleet sim`.
//!
//! # Model
//!
//! * [`slip`] and [`protocol`]: framing, packets, checksum, status bytes.
//! * [`device`]: the loader state machine (ROM, stub, application) as a pure function from
//!   frames to [`device::Action`]s.
//! * [`flash`]: a NOR array (erase to FF, program with AND) and typical timings.
//! * [`chip`]: the register maps clients read to identify the chip, MAC and flash.
//! * The runner thread paces bytes at the emulated baud (10 bit-times per byte, both directions),
//!   charges flash time where the real ROM or stub does, and injects [`Faults`].

mod config;
mod pty;
mod runner;

pub mod chip;
pub mod device;
pub mod flash;
pub mod protocol;
pub mod slip;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use config::{
    ByteFault, ByteFaultKind, Direction, EventSink, Faults, Pacing, ReportedChip, SimConfig, Stall,
    StubReboot, Trigger,
};
pub use runner::{SimHandle, Simulator};

/// Which program answers on the serial port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum LoaderState {
    /// The mask-ROM serial loader (4 status bytes, non-zero SYNC value).
    #[default]
    Rom = 0,
    /// The flasher stub uploaded by the client (2 status bytes, SYNC value 0).
    Stub = 1,
    /// The application from flash; the loader protocol is not spoken any more.
    App = 2,
}

impl LoaderState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => LoaderState::Stub,
            2 => LoaderState::App,
            _ => LoaderState::Rom,
        }
    }
}

/// Counters since the simulator started, for tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Bytes read from the host (before faults).
    pub bytes_received: u64,
    /// Bytes sent to the host, SLIP escaping included (before faults).
    pub bytes_sent: u64,
    /// SLIP frames received.
    pub frames_received: u64,
    /// Frames thrown away: framing errors and baud mismatches.
    pub frames_dropped: u64,
    /// Command frames received (all loaders).
    pub commands: u64,
    /// Command frames received, by opcode.
    pub commands_by_opcode: BTreeMap<u8, u64>,
    /// Bytes dropped by fault injection.
    pub bytes_dropped: u64,
    /// Bytes corrupted by fault injection.
    pub bytes_corrupted: u64,
    /// Bytes the host did not read within 2 s, or that could not be written, and were lost.
    pub bytes_lost: u64,
    /// Stalls injected.
    pub stalls: u64,
    /// Loader state now.
    pub state: LoaderState,
    /// Device UART speed now.
    pub baud: u32,
}

/// Why a received frame was thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Invalid SLIP escape.
    Framing,
    /// The host's line speed differs from the device's, so the UART received garbage.
    BaudMismatch {
        /// The host's termios speed.
        host: u32,
        /// The device UART speed.
        device: u32,
    },
}

/// Something that happened in the simulator, reported through [`SimConfig::on_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimEvent {
    /// A command frame arrived (before it is handled).
    Command {
        /// Opcode.
        op: u8,
        /// Opcode name, e.g. `FLASH_DATA`.
        name: &'static str,
        /// Loader state it arrived in.
        state: LoaderState,
    },
    /// The loader state changed (stub started, back to ROM, application booted).
    StateChanged {
        /// Before.
        from: LoaderState,
        /// After.
        to: LoaderState,
    },
    /// The device UART speed changed (CHANGE_BAUDRATE, autobaud, reset).
    BaudChanged {
        /// New speed.
        baud: u32,
    },
    /// A frame was thrown away.
    FrameDropped {
        /// Why.
        reason: DropReason,
    },
    /// A byte fault dropped a byte.
    ByteDropped {
        /// Which way it was going.
        direction: Direction,
        /// Its index in that direction.
        index: u64,
    },
    /// A byte fault corrupted a byte.
    ByteCorrupted {
        /// Which way it was going.
        direction: Direction,
        /// Its index in that direction.
        index: u64,
    },
    /// A stall fault started.
    Stalled {
        /// How long (`None`: until reset or stop).
        duration: Option<Duration>,
    },
    /// The flash file was written out.
    FlashSaved {
        /// Where.
        path: PathBuf,
    },
    /// Writing the flash file failed; the in-memory flash is still correct.
    FlashSaveFailed {
        /// Where.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// The board was unplugged: the pty is gone.
    Unplugged,
    /// The simulator stopped.
    Stopped,
}

/// Errors starting or running a simulator.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SimError {
    /// The pseudo-terminal could not be created or used.
    #[error("could not set up the pseudo-terminal")]
    #[diagnostic(
        code(espfleet::sim::pty_failed),
        help("check that /dev/ptmx and /dev/pts are available (mount devpts in containers)")
    )]
    Pty {
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The flash file could not be read.
    #[error("could not read the flash file {}", path.display())]
    #[diagnostic(
        code(espfleet::sim::flash_file_unreadable),
        help(
            "give a readable file, or a path that does not exist yet to start with an erased flash"
        )
    )]
    FlashFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The flash file holds more bytes than the simulated flash.
    #[error("the flash file {} holds {len} bytes, more than the {size}-byte flash", path.display())]
    #[diagnostic(
        code(espfleet::sim::flash_file_too_large),
        help("raise --flash-size, or truncate the file")
    )]
    FlashFileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The flash size.
        size: u32,
    },
    /// The symlink to the pty could not be made.
    #[error("could not create the link {}", path.display())]
    #[diagnostic(
        code(espfleet::sim::link_failed),
        help("pick a path in a writable directory")
    )]
    Link {
        /// The link path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The simulator thread could not be started.
    #[error("could not start the simulator thread")]
    #[diagnostic(
        code(espfleet::sim::thread_failed),
        help("the system is out of threads or memory")
    )]
    Thread {
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
