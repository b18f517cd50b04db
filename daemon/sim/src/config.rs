//! What a simulator is: chip, flash, pacing and the faults it injects.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use espfleet_compiler::target::{Chip, FlashSize};

use crate::SimEvent;
use crate::flash::FlashTiming;

/// Receives every [`SimEvent`] as it happens, on the simulator's thread. Keep it quick.
pub type EventSink = Arc<dyn Fn(&SimEvent) + Send + Sync>;

/// Everything needed to spawn a simulated board. Start from [`SimConfig::new`] and change
/// fields; all of them are public.
#[derive(Clone)]
pub struct SimConfig {
    /// The chip to simulate.
    pub chip: Chip,
    /// Size of the flash array that is really there.
    pub flash_size: FlashSize,
    /// eFuse MAC; `None` gives a fixed Espressif-OUI address per chip.
    pub mac: Option<[u8; 6]>,
    /// Back the flash with this file: loaded at start (shorter files are padded with FF; a
    /// missing file means an erased chip) and written out atomically after each completed flash
    /// operation, when the link goes idle, and on stop or unplug.
    pub flash_file: Option<PathBuf>,
    /// Also make a symlink to the pty at this path (removed on stop and unplug), for a stable
    /// name such as `/tmp/esp32-sim`.
    pub link: Option<PathBuf>,
    /// Timing realism.
    pub pacing: Pacing,
    /// Faults to inject.
    pub faults: Faults,
    /// What FLASH_END(reboot) does in the stub (`docs/formats/serial-protocol.md` §9).
    pub stub_reboot: StubReboot,
    /// Drop frames received while the host's termios speed differs from the device's UART
    /// speed, as real hardware garbles them (`docs/formats/serial-protocol.md` §1.3). The ROM's autobaud on SYNC still works.
    pub detect_baud_mismatch: bool,
    /// Called for every event (commands, state changes, faults), for tests and benchmarks.
    pub on_event: Option<EventSink>,
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("chip", &self.chip)
            .field("flash_size", &self.flash_size)
            .field("mac", &self.mac)
            .field("flash_file", &self.flash_file)
            .field("link", &self.link)
            .field("pacing", &self.pacing)
            .field("faults", &self.faults)
            .field("stub_reboot", &self.stub_reboot)
            .field("detect_baud_mismatch", &self.detect_baud_mismatch)
            .field("on_event", &self.on_event.as_ref().map(|_| "Fn(&SimEvent)"))
            .finish()
    }
}

impl SimConfig {
    /// A healthy board: 4 MB flash, realistic pacing, no faults.
    pub fn new(chip: Chip) -> Self {
        SimConfig {
            chip,
            flash_size: FlashSize::from_bytes(4 << 20).expect("4 MB is a known size"),
            mac: None,
            flash_file: None,
            link: None,
            pacing: Pacing::REALISTIC,
            faults: Faults::default(),
            stub_reboot: StubReboot::ToRomLoader,
            detect_baud_mismatch: true,
            on_event: None,
        }
    }
}

/// How closely the simulator follows real time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// Pace bytes at the emulated baud (8N1: 10 bit-times per byte, both directions).
    pub uart: bool,
    /// Multiplier for flash erase/program/read times (`docs/formats/serial-protocol.md` §12); 0 makes them instant.
    pub flash_time_scale: f64,
    /// The flash timings before scaling.
    pub flash_timing: FlashTiming,
}

impl Pacing {
    /// Line-rate UART and typical flash timings: transfers take as long as on a real board.
    pub const REALISTIC: Pacing = Pacing {
        uart: true,
        flash_time_scale: 1.0,
        flash_timing: FlashTiming::TYPICAL,
    };
    /// Everything as fast as the pty allows: for tests where time is not the point.
    pub const OFF: Pacing = Pacing {
        uart: false,
        flash_time_scale: 0.0,
        flash_timing: FlashTiming::TYPICAL,
    };
}

/// What the stub does on FLASH_END / FLASH_DEFL_END with "reboot".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StubReboot {
    /// Back to the ROM loader at 115200, as esptool's comments describe (recommended).
    ToRomLoader,
    /// Stay in the stub, as esp-flasher-stub v1.1 does (it leaves reboot unimplemented).
    StayInStub,
}

/// Faults to inject. The default injects none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Bytes to drop or corrupt on the wire.
    pub bytes: Vec<ByteFault>,
    /// Stop responding for a while.
    pub stall: Option<Stall>,
    /// Vanish: the pty hangs up and its path disappears, like a board pulled out mid-transfer.
    pub unplug: Option<Trigger>,
    /// Claim to be another chip (magic register and GET_SECURITY_INFO); everything else stays.
    pub report_chip: Option<ReportedChip>,
    /// Make the flash's JEDEC ID claim this capacity while the real array is
    /// [`SimConfig::flash_size`] (a counterfeit or mislabelled module: addresses wrap).
    pub jedec_flash_size: Option<FlashSize>,
}

/// Which way a byte travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Host to device (commands).
    ToDevice,
    /// Device to host (replies).
    ToHost,
}

/// What happens to a byte hit by a [`ByteFault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteFaultKind {
    /// The byte never arrives.
    Drop,
    /// The byte arrives with its lowest bit flipped.
    Corrupt,
}

/// Drop or corrupt bytes, counted per direction from 0 since the simulator started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteFault {
    /// Which direction's bytes.
    pub direction: Direction,
    /// Drop or corrupt.
    pub kind: ByteFaultKind,
    /// Index of the first byte hit.
    pub first: u64,
    /// Hit every `every`th byte after that too; `None` hits only one byte.
    pub every: Option<u64>,
}

impl ByteFault {
    /// True when byte number `index` (in this fault's direction) is hit.
    pub fn hits(&self, index: u64) -> bool {
        match self.every {
            _ if index < self.first => false,
            None | Some(0) => index == self.first,
            Some(n) => (index - self.first) % n == 0,
        }
    }
}

/// When a one-shot fault fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Once this many bytes have been received from the host.
    RxBytes(u64),
    /// When the `n`th command frame (1-based, any opcode) has been received, before it is handled.
    Command(u64),
    /// When the `nth` (1-based) command with this opcode has been received, before it is handled.
    Opcode {
        /// The opcode, e.g. 0x03 for FLASH_DATA.
        op: u8,
        /// Which occurrence.
        nth: u64,
    },
}

/// Stop responding when `trigger` fires, for `duration` (`None`: until reset or stop).
/// Bytes the host sends meanwhile wait in the pty buffer and are handled afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// When.
    pub trigger: Trigger,
    /// How long; `None` hangs until the harness resets the board.
    pub duration: Option<Duration>,
}

/// The identity a "wrong chip" board reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportedChip {
    /// Another supported chip.
    Chip(Chip),
    /// An unknown chip with this magic register value and no GET_SECURITY_INFO.
    Magic(u32),
}
