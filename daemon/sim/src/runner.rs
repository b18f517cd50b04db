//! The simulator thread: moves bytes between the pty and the [`Device`], paces them like a UART,
//! injects faults, and keeps the handle's view (stats, state) current.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

use crate::chip::{ChipProfile, default_mac};
use crate::config::{ByteFaultKind, Direction, ReportedChip, StubReboot, Trigger};
use crate::device::{Action, Device, DeviceOptions, Identity};
use crate::flash::FlashArray;
use crate::protocol::{Command, op};
use crate::pty::Pty;
use crate::{DropReason, LoaderState, SimConfig, SimError, SimEvent, SimStats, slip};

/// How long the device keeps trying to hand bytes to a host that does not read before it drops
/// them (a real UART never waits for the host).
const TX_GIVE_UP: Duration = Duration::from_secs(2);
/// A file-backed flash is written out after this long without traffic.
const IDLE_PERSIST: Duration = Duration::from_millis(300);
/// Bytes per paced write.
const TX_CHUNK: usize = 64;

/// Starts simulated boards.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Creates a fresh pty and starts a simulated board on it, in the ROM loader. Give
    /// [`SimHandle::path`] to the client.
    pub fn spawn(config: SimConfig) -> Result<SimHandle, SimError> {
        let pty = Pty::open().map_err(|source| SimError::Pty { source })?;
        Self::start(pty, config)
    }

    /// Starts a simulated board on an existing pty master, e.g. the one umockdev gives for a
    /// mocked `/dev/ttyUSB0`, or one end of serialport's `TTYPort::pair()`.
    pub fn spawn_on_master(master: OwnedFd, config: SimConfig) -> Result<SimHandle, SimError> {
        let pty = Pty::from_master(master).map_err(|source| SimError::Pty { source })?;
        Self::start(pty, config)
    }

    fn start(pty: Pty, config: SimConfig) -> Result<SimHandle, SimError> {
        let size = config.flash_size.bytes();
        let flash = match &config.flash_file {
            Some(path) => load_flash_file(path, size)?,
            None => FlashArray::erased(size),
        };
        let flash = Arc::new(Mutex::new(flash));
        let path = pty.path.clone();
        let (shared, thread) = launch(pty, &config, &flash)?;
        Ok(SimHandle {
            shared,
            flash,
            path,
            config,
            thread: Some(thread),
        })
    }
}

/// The simulator thread; it returns when stopped or unplugged.
type SimThread = JoinHandle<Result<(), SimError>>;

/// Starts the simulator thread on `pty`: a board just powered on into the ROM loader.
fn launch(
    pty: Pty,
    config: &SimConfig,
    flash: &Arc<Mutex<FlashArray>>,
) -> Result<(Arc<Shared>, SimThread), SimError> {
    if let Some(link) = &config.link {
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(&pty.path, link).map_err(|source| SimError::Link {
            path: link.clone(),
            source,
        })?;
    }
    let profile = ChipProfile::of(config.chip);
    let identity = match config.faults.report_chip {
        None => Identity::of(&profile),
        Some(ReportedChip::Chip(c)) => Identity::of(&ChipProfile::of(c)),
        Some(ReportedChip::Magic(magic)) => Identity {
            magic,
            security_chip_id: None,
            rom_refusal: profile.rom_refusal,
        },
    };
    let jedec = config
        .faults
        .jedec_flash_size
        .unwrap_or(config.flash_size)
        .bytes();
    let opts = DeviceOptions {
        profile,
        identity,
        mac: config.mac.unwrap_or_else(|| default_mac(config.chip)),
        jedec_capacity_code: u8::try_from(jedec.trailing_zeros())
            .expect("log2 of a u32 fits in u8"),
        stub_reboot_to_rom: config.stub_reboot == StubReboot::ToRomLoader,
        timing: config.pacing.flash_timing,
    };
    let device = Device::new(opts, Arc::clone(flash));
    let shared = Arc::new(Shared::default());
    shared.set_state(LoaderState::Rom);
    shared
        .stats
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .baud = crate::device::ROM_BAUD;
    let runner = Runner {
        pty: Some(pty),
        device,
        decoder: slip::Decoder::new(),
        shared: Arc::clone(&shared),
        flash: Arc::clone(flash),
        config: config.clone(),
        rx_clock: Instant::now(),
        tx_clock: Instant::now(),
        busy_until: Instant::now(),
        dirty: false,
        last_traffic: Instant::now(),
        per_op: std::collections::HashMap::new(),
        host_bauds: (None, None),
        stall_fired: false,
        unplug_fired: false,
    };
    let thread = std::thread::Builder::new()
        .name("espfleet-sim".into())
        .spawn(move || runner.run())
        .map_err(|source| SimError::Thread { source })?;
    Ok((shared, thread))
}

/// Control flags and the state the handle can see.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    unplug: AtomicBool,
    reset: AtomicBool,
    boot: AtomicBool,
    unplugged: AtomicBool,
    state: AtomicU8,
    stats: Mutex<SimStats>,
}

impl Shared {
    fn set_state(&self, s: LoaderState) {
        self.state.store(s as u8, Ordering::SeqCst);
    }
    /// True when the thread must drop what it is doing.
    fn interrupted(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
            || self.unplug.load(Ordering::SeqCst)
            || self.reset.load(Ordering::SeqCst)
            || self.boot.load(Ordering::SeqCst)
    }
}

/// A running simulated board. Dropping it stops the board (like [`SimHandle::stop`]).
#[derive(Debug)]
pub struct SimHandle {
    shared: Arc<Shared>,
    flash: Arc<Mutex<FlashArray>>,
    path: PathBuf,
    config: SimConfig,
    thread: Option<SimThread>,
}

impl SimHandle {
    /// The pty slave path (e.g. `/dev/pts/7`) to give to esptool, espflash or our flasher.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The symlink made for [`SimConfig::link`], if any.
    pub fn link(&self) -> Option<&Path> {
        self.config.link.as_deref()
    }

    /// A copy of the whole flash array as it is now.
    pub fn flash_contents(&self) -> Vec<u8> {
        self.flash
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contents()
            .to_vec()
    }

    /// Puts bytes into flash directly, as if the board had been programmed before (no erase
    /// semantics: the bytes replace what was there).
    pub fn preload_flash(&self, offset: u32, bytes: &[u8]) {
        let mut f = self.flash.lock().unwrap_or_else(PoisonError::into_inner);
        let len = u32::try_from(bytes.len()).expect("preload fits in u32");
        f.erase_range(offset, len, &crate::flash::FlashTiming::TYPICAL);
        f.program(offset, bytes);
    }

    /// Counters since start.
    pub fn stats(&self) -> SimStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The loader state now.
    pub fn state(&self) -> LoaderState {
        LoaderState::from_u8(self.shared.state.load(Ordering::SeqCst))
    }

    /// Resets the board into the ROM loader at 115200, as the auto-reset circuit does with DTR
    /// and RTS (which a pty does not have). Returns once the reset has happened.
    pub fn reset_to_bootloader(&self) {
        self.request(&self.shared.reset);
    }

    /// Resets the board normally: the ROM boots from flash, prints its boot log and the
    /// application runs (the loader no longer answers).
    pub fn boot_app(&self) {
        self.request(&self.shared.boot);
    }

    /// Pulls the board out: the pty hangs up, clients get I/O errors and the path disappears.
    /// Returns once it has happened.
    pub fn unplug(&self) {
        self.request(&self.shared.unplug);
    }

    /// Plugs the board back in after an unplug (or unplugs and replugs it): a new pty, possibly
    /// under a new path (read [`SimHandle::path`] again; the link, if any, is remade), and the
    /// board powers up in the ROM loader with its flash contents kept, as if its BOOT button were
    /// held. Faults fire again; statistics start from zero.
    pub fn replug(&mut self) -> Result<(), SimError> {
        if !self.is_unplugged() {
            self.unplug();
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap_or(Ok(()))?;
        }
        let pty = Pty::open().map_err(|source| SimError::Pty { source })?;
        self.path.clone_from(&pty.path);
        let (shared, thread) = launch(pty, &self.config, &self.flash)?;
        self.shared = shared;
        self.thread = Some(thread);
        Ok(())
    }

    /// True once the board has been unplugged (by [`SimHandle::unplug`] or an unplug fault).
    pub fn is_unplugged(&self) -> bool {
        self.shared.unplugged.load(Ordering::SeqCst)
    }

    /// True while the simulator thread runs (false after an unplug or a fatal error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the board, writes a file-backed flash out and closes the pty.
    pub fn stop(mut self) -> Result<(), SimError> {
        self.shutdown()
    }

    fn request(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(2);
        while flag.load(Ordering::SeqCst) && self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn shutdown(&mut self) -> Result<(), SimError> {
        self.shared.stop.store(true, Ordering::SeqCst);
        match self.thread.take() {
            Some(t) => t.join().unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn load_flash_file(path: &Path, size: u32) -> Result<FlashArray, SimError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() > size as usize => Err(SimError::FlashFileTooLarge {
            path: path.to_owned(),
            len: bytes.len() as u64,
            size,
        }),
        Ok(bytes) => Ok(FlashArray::with_image(size, &bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(FlashArray::erased(size)),
        Err(source) => Err(SimError::FlashFile {
            path: path.to_owned(),
            source,
        }),
    }
}

struct Runner {
    pty: Option<Pty>,
    device: Device,
    decoder: slip::Decoder,
    shared: Arc<Shared>,
    flash: Arc<Mutex<FlashArray>>,
    config: SimConfig,
    /// Virtual receive clock: when the last byte read finished arriving at the device's baud.
    rx_clock: Instant,
    /// Virtual transmit clock: when the last byte sent finishes leaving.
    tx_clock: Instant,
    /// The stub's background flash work runs until then.
    busy_until: Instant,
    dirty: bool,
    last_traffic: Instant,
    per_op: std::collections::HashMap<u8, u64>,
    stall_fired: bool,
    unplug_fired: bool,
    /// The host's termios speed just before the last read from the master and just after it.
    /// Bytes are sent at the speed in force when they were written, which lies between the
    /// two; the second one is what the latest client set.
    host_bauds: (Option<u32>, Option<u32>),
}

/// Why the byte loop stopped early.
enum Stop {
    Unplug,
    Interrupted,
}

impl Runner {
    fn stats(&self, f: impl FnOnce(&mut SimStats)) {
        f(&mut self
            .shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner));
    }

    fn emit(&self, event: &SimEvent) {
        if let Some(sink) = &self.config.on_event {
            sink(event);
        }
    }

    fn byte_time(&self) -> Duration {
        Duration::from_secs_f64(10.0 / f64::from(self.device.baud().max(1)))
    }

    fn run(mut self) -> Result<(), SimError> {
        let mut buf = vec![0u8; 4096];
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                self.persist();
                self.close();
                self.emit(&SimEvent::Stopped);
                return Ok(());
            }
            if self.shared.unplug.load(Ordering::SeqCst) {
                self.do_unplug();
                return Ok(());
            }
            if self.shared.reset.load(Ordering::SeqCst) {
                let _ = self.apply(|d| {
                    d.reset_to_rom();
                    Vec::new()
                });
                self.decoder = slip::Decoder::new();
                self.shared.reset.store(false, Ordering::SeqCst);
            }
            if self.shared.boot.load(Ordering::SeqCst) {
                self.decoder = slip::Decoder::new();
                let before = self.device.state();
                let actions = self.device.boot_app();
                self.busy_until = Instant::now();
                self.stats(|s| s.baud = self.device.baud());
                // Publish the new state and release the caller before the boot log goes out
                // (sending checks the request flags and would stop early otherwise).
                self.shared.set_state(self.device.state());
                self.shared.boot.store(false, Ordering::SeqCst);
                let _ = self.run_actions(before, actions);
            }
            if self.dirty && self.last_traffic.elapsed() > IDLE_PERSIST {
                self.persist();
            }
            let n = {
                let pty = self.pty.as_ref().expect("pty open while running");
                // The host's speed before the bytes arrive; see `host_bauds`.
                let before = pty.host_baud();
                let mut fds = [PollFd::new(&pty.master, PollFlags::IN)];
                let timeout = Timespec {
                    tv_sec: 0,
                    tv_nsec: 10_000_000,
                };
                match rustix::event::poll(&mut fds, Some(&timeout)) {
                    Ok(0) | Err(Errno::INTR) => continue,
                    Ok(_) => {}
                    Err(e) => return Err(SimError::Pty { source: e.into() }),
                }
                match rustix::io::read(&pty.master, &mut buf) {
                    Ok(n) => {
                        self.host_bauds = (before, pty.host_baud());
                        n
                    }
                    Err(Errno::AGAIN | Errno::INTR) => continue,
                    Err(Errno::IO) => {
                        // No slave open anywhere: wait for a client.
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    Err(e) => return Err(SimError::Pty { source: e.into() }),
                }
            };
            if n == 0 {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            self.last_traffic = Instant::now();
            if let Err(Stop::Unplug) = self.on_bytes(&buf[..n]) {
                self.do_unplug();
                return Ok(());
            }
        }
    }

    fn on_bytes(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        let now = Instant::now();
        let bt = self.byte_time();
        for &raw in bytes {
            let index = {
                let mut s = self
                    .shared
                    .stats
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                s.bytes_received += 1;
                s.bytes_received - 1
            };
            let mut b = raw;
            match self.byte_fault(Direction::ToDevice, index) {
                Some(ByteFaultKind::Drop) => {
                    self.stats(|s| s.bytes_dropped += 1);
                    self.emit(&SimEvent::ByteDropped {
                        direction: Direction::ToDevice,
                        index,
                    });
                    continue;
                }
                Some(ByteFaultKind::Corrupt) => {
                    b ^= 0x01;
                    self.stats(|s| s.bytes_corrupted += 1);
                    self.emit(&SimEvent::ByteCorrupted {
                        direction: Direction::ToDevice,
                        index,
                    });
                }
                None => {}
            }
            if self.config.pacing.uart {
                self.rx_clock = self.rx_clock.max(now) + bt;
            }
            if !self.unplug_fired
                && matches!(self.config.faults.unplug, Some(Trigger::RxBytes(n)) if index + 1 >= n)
            {
                self.unplug_fired = true;
                return Err(Stop::Unplug);
            }
            if let Some(stall) = self.config.faults.stall {
                if !self.stall_fired
                    && matches!(stall.trigger, Trigger::RxBytes(n) if index + 1 >= n)
                {
                    self.stall_fired = true;
                    self.stall(stall.duration);
                }
            }
            match self.decoder.push(b) {
                None => {}
                Some(Err(_)) => {
                    self.stats(|s| s.frames_dropped += 1);
                    self.emit(&SimEvent::FrameDropped {
                        reason: DropReason::Framing,
                    });
                }
                Some(Ok(frame)) => match self.on_frame(&frame) {
                    Ok(()) => {}
                    Err(Stop::Interrupted) => return Ok(()),
                    Err(Stop::Unplug) => return Err(Stop::Unplug),
                },
            }
            if self.shared.interrupted() {
                return Ok(());
            }
        }
        Ok(())
    }

    fn byte_fault(&self, direction: Direction, index: u64) -> Option<ByteFaultKind> {
        self.config
            .faults
            .bytes
            .iter()
            .find(|f| f.direction == direction && f.hits(index))
            .map(|f| f.kind)
    }

    fn on_frame(&mut self, frame: &[u8]) -> Result<(), Stop> {
        self.stats(|s| s.frames_received += 1);
        let state = self.device.state();
        let (earlier, host_baud) = self.host_bauds;
        if let Some(host) = host_baud {
            // A frame is garbled only if it cannot have been sent at the device's speed: a pty
            // does not say at which speed bytes were written, and a client that exits right
            // after its last command (espflash's soft reset sends FLASH_END without waiting)
            // may be followed by another that sets its own speed before we read those bytes.
            let sent_at_device_speed = bauds_match(host, self.device.baud())
                || earlier.is_some_and(|b| bauds_match(b, self.device.baud()));
            if state == LoaderState::Rom && Device::is_sync(frame) {
                // ROM autobaud: the UART measures the speed from the 0x55 bytes of SYNC.
                if host != self.device.baud() {
                    self.device.set_baud(host);
                    self.stats(|s| s.baud = host);
                    self.emit(&SimEvent::BaudChanged { baud: host });
                }
            } else if self.config.detect_baud_mismatch
                && state != LoaderState::App
                && !sent_at_device_speed
            {
                self.stats(|s| s.frames_dropped += 1);
                self.emit(&SimEvent::FrameDropped {
                    reason: DropReason::BaudMismatch {
                        host,
                        device: self.device.baud(),
                    },
                });
                return Ok(());
            }
        }
        if self.config.pacing.uart && !self.sleep_until(self.rx_clock) {
            return Err(Stop::Interrupted);
        }
        if let Ok(cmd) = Command::parse(frame) {
            let count = {
                let c = self.per_op.entry(cmd.op).or_insert(0);
                *c += 1;
                *c
            };
            let total = {
                let mut s = self
                    .shared
                    .stats
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                s.commands += 1;
                *s.commands_by_opcode.entry(cmd.op).or_insert(0) += 1;
                s.commands
            };
            self.emit(&SimEvent::Command {
                op: cmd.op,
                name: op::name(cmd.op),
                state,
            });
            let fires = |t: Trigger| match t {
                Trigger::Command(n) => total == n,
                Trigger::Opcode { op, nth } => op == cmd.op && count == nth,
                Trigger::RxBytes(_) => false,
            };
            if !self.unplug_fired && self.config.faults.unplug.is_some_and(fires) {
                self.unplug_fired = true;
                return Err(Stop::Unplug);
            }
            if let Some(stall) = self.config.faults.stall {
                if !self.stall_fired && fires(stall.trigger) {
                    self.stall_fired = true;
                    if !self.stall(stall.duration) {
                        return Err(Stop::Interrupted);
                    }
                }
            }
        }
        let actions = self.device.on_frame(frame);
        self.run_actions(state, actions)
    }

    /// Applies a device operation from the handle (reset, boot) and runs its actions.
    fn apply(&mut self, f: impl FnOnce(&mut Device) -> Vec<Action>) -> Result<(), Stop> {
        let before = self.device.state();
        let actions = f(&mut self.device);
        self.busy_until = Instant::now();
        self.stats(|s| s.baud = self.device.baud());
        self.run_actions(before, actions)
    }

    fn run_actions(&mut self, before: LoaderState, actions: Vec<Action>) -> Result<(), Stop> {
        let scale = self.config.pacing.flash_time_scale;
        let mut result = Ok(());
        for action in actions {
            match action {
                Action::Frame(payload) => {
                    if !self.send(&slip::encode(&payload)) {
                        result = Err(Stop::Interrupted);
                        break;
                    }
                }
                Action::Text(text) => {
                    if !self.send(&text) {
                        result = Err(Stop::Interrupted);
                        break;
                    }
                }
                Action::Work(d) => {
                    let until = self.busy_until.max(Instant::now()) + d.mul_f64(scale);
                    if !self.sleep_until(until) {
                        result = Err(Stop::Interrupted);
                        break;
                    }
                }
                Action::BackgroundWork(d) => {
                    self.busy_until = self.busy_until.max(Instant::now()) + d.mul_f64(scale);
                }
                Action::Pause(d) => {
                    if !self.sleep_until(Instant::now() + d) {
                        result = Err(Stop::Interrupted);
                        break;
                    }
                }
                Action::SetBaud(baud) => {
                    self.device.set_baud(baud);
                    self.stats(|s| s.baud = baud);
                    self.emit(&SimEvent::BaudChanged { baud });
                }
                Action::FlashChanged { settled } => {
                    self.dirty = true;
                    if settled {
                        self.persist();
                    }
                }
            }
        }
        let after = self.device.state();
        self.shared.set_state(after);
        if after != before {
            self.stats(|s| s.state = after);
            self.emit(&SimEvent::StateChanged {
                from: before,
                to: after,
            });
        }
        result
    }

    /// Stops answering for `duration` (or until interrupted). False when interrupted.
    fn stall(&mut self, duration: Option<Duration>) -> bool {
        self.emit(&SimEvent::Stalled { duration });
        self.stats(|s| s.stalls += 1);
        let until = Instant::now() + duration.unwrap_or(Duration::from_secs(365 * 24 * 3600));
        let ok = self.sleep_until(until);
        // Time stood still for the UART too: nothing was received meanwhile.
        self.rx_clock = self.rx_clock.max(Instant::now());
        ok
    }

    /// Sleeps until `deadline`, waking to check for stop/unplug/reset. False when interrupted.
    fn sleep_until(&self, deadline: Instant) -> bool {
        loop {
            if self.shared.interrupted() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
    }

    /// Sends bytes to the host: waits for background flash work, applies tx faults, paces at
    /// the device baud. False when interrupted.
    fn send(&mut self, bytes: &[u8]) -> bool {
        if !self.sleep_until(self.busy_until) {
            return false;
        }
        let mut out = Vec::with_capacity(bytes.len());
        for &raw in bytes {
            let index = {
                let mut s = self
                    .shared
                    .stats
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                s.bytes_sent += 1;
                s.bytes_sent - 1
            };
            match self.byte_fault(Direction::ToHost, index) {
                Some(ByteFaultKind::Drop) => {
                    self.stats(|s| s.bytes_dropped += 1);
                    self.emit(&SimEvent::ByteDropped {
                        direction: Direction::ToHost,
                        index,
                    });
                }
                Some(ByteFaultKind::Corrupt) => {
                    self.stats(|s| s.bytes_corrupted += 1);
                    self.emit(&SimEvent::ByteCorrupted {
                        direction: Direction::ToHost,
                        index,
                    });
                    out.push(raw ^ 0x01);
                }
                None => out.push(raw),
            }
        }
        if !self.config.pacing.uart {
            return self.write_all(&out);
        }
        let bt = self.byte_time();
        self.tx_clock = self.tx_clock.max(Instant::now());
        for chunk in out.chunks(TX_CHUNK) {
            // A byte reaches the host once its stop bit has gone out.
            self.tx_clock += bt * u32::try_from(chunk.len()).expect("chunk is small");
            if !self.sleep_until(self.tx_clock) || !self.write_all(chunk) {
                return false;
            }
        }
        true
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> bool {
        let mut waiting_since: Option<Instant> = None;
        while !bytes.is_empty() {
            if self.shared.interrupted() {
                return false;
            }
            let Some(pty) = self.pty.as_ref() else {
                return false;
            };
            match rustix::io::write(&pty.master, bytes) {
                Ok(n) => {
                    bytes = &bytes[n..];
                    waiting_since = None;
                }
                Err(Errno::AGAIN | Errno::INTR) => {
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > TX_GIVE_UP {
                        // The host is not reading; a UART does not wait, the bytes are lost.
                        let lost = bytes.len() as u64;
                        self.stats(|s| s.bytes_lost += lost);
                        return true;
                    }
                    let mut fds = [PollFd::new(&pty.master, PollFlags::OUT)];
                    let timeout = Timespec {
                        tv_sec: 0,
                        tv_nsec: 5_000_000,
                    };
                    let _ = rustix::event::poll(&mut fds, Some(&timeout));
                }
                Err(_) => {
                    let lost = bytes.len() as u64;
                    self.stats(|s| s.bytes_lost += lost);
                    return true;
                }
            }
        }
        true
    }

    fn persist(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let Some(path) = self.config.flash_file.clone() else {
            return;
        };
        let snapshot = self
            .flash
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contents()
            .to_vec();
        match espfleet_compiler::output::write_atomic(&path, &snapshot, None) {
            Ok(()) => self.emit(&SimEvent::FlashSaved { path }),
            Err(e) => self.emit(&SimEvent::FlashSaveFailed {
                path,
                message: e.to_string(),
            }),
        }
    }

    fn close(&mut self) {
        self.pty = None; // closes master and our slave fd: the line hangs up
        if let Some(link) = &self.config.link {
            let _ = std::fs::remove_file(link);
        }
    }

    fn do_unplug(&mut self) {
        self.persist();
        // Flag first: a client that sees the hang-up must also see `is_unplugged()`.
        self.shared.unplugged.store(true, Ordering::SeqCst);
        self.close();
        self.shared.unplug.store(false, Ordering::SeqCst);
        self.emit(&SimEvent::Unplugged);
    }
}

/// Whether two UART speeds are close enough to exchange bytes (within 3 %, as a UART tolerates).
fn bauds_match(host: u32, device: u32) -> bool {
    let (h, d) = (f64::from(host), f64::from(device));
    (h - d).abs() <= d * 0.03
}
