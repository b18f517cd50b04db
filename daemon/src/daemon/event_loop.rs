//! The one loop: every event goes through [`Daemon::run`]'s `match`, which owns all state.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime};

use espfleet_compiler::device_match::{self, ChipFacts, Decision, format_mac};
use sha2::Digest as _;

use super::board::{BoardConnector, FlashFailure, FlashReport, Progress};
use super::device::{DeviceEvent, DeviceSource, SerialPort, known_bridge};
use super::event::{Event, WorkerEvent, WorkerId};
use super::journal::{self, ImageHash, Journal, Outcome, Record};
use super::manifests::{Change, LoadedManifest, ManifestLoader, ManifestStore};
use super::sd_notify::Notifier;
use super::status::{self, PortStatus, Shared, Snapshot};
use super::worker::{self, Command, RetryPolicy, WorkerHandle};

/// How the daemon is set up (the command line of `espfleetd`).
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Directory of `*.kdl` manifests to watch.
    pub manifest_dir: PathBuf,
    /// The journal file.
    pub journal: PathBuf,
    /// The status socket, if any.
    pub socket: Option<PathBuf>,
    /// Flash boards that are already plugged in when the daemon starts (by default they are
    /// listed as present and left alone, so a daemon restart does not reflash a bench).
    pub flash_present: bool,
    /// Retries on one plug-in.
    pub retry: RetryPolicy,
    /// Quiet time after a change in the manifest directory before rescanning it.
    pub debounce: Duration,
    /// Serve the bench page (`--http`); off when `None`.
    pub http: Option<super::http::HttpConfig>,
}

/// Why the daemon stopped with an error. Every variant makes `espfleetd` exit with status 1,
/// so systemd restarts it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DaemonError {
    /// An event source stopped.
    #[error("event source `{source_name}` died: {error}")]
    #[diagnostic(
        code(espfleet::daemon::source_died),
        help("the daemon exits so that systemd restarts it; see the log above for the cause")
    )]
    SourceDied {
        /// Which source.
        source_name: &'static str,
        /// Why.
        error: String,
    },
    /// The manifest directory could not be read or watched.
    #[error("manifest directory {path}: {message}")]
    #[diagnostic(
        code(espfleet::daemon::manifest_dir),
        help(
            "create the directory (or pass --manifests) and make it readable by the daemon's user"
        )
    )]
    ManifestDir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The journal could not be written: the daemon refuses to flash without a record.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Journal(#[from] journal::JournalError),
    /// The status socket could not be created.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Status(#[from] status::StatusError),
    /// The bench page could not be served.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Http(#[from] super::http::HttpError),
    /// A thread could not be started.
    #[error("starting a thread: {0}")]
    #[diagnostic(
        code(espfleet::daemon::spawn),
        help("the system is out of resources (threads, memory)")
    )]
    Spawn(#[source] std::io::Error),
}

/// Starts a daemon with the udev source and runs it until SIGTERM/SIGINT or a source dies.
pub fn run(
    config: DaemonConfig,
    source: Box<dyn DeviceSource>,
    connector: Arc<dyn BoardConnector>,
    loader: Arc<dyn ManifestLoader>,
) -> Result<(), DaemonError> {
    let daemon = Daemon::new(config, connector, loader)?;
    let tx = daemon.sender();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(DaemonError::Spawn)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let _ = tx.send(Event::Shutdown);
            }
        })
        .map_err(DaemonError::Spawn)?;
    daemon.run(source)
}

struct Job {
    port: SerialPort,
    handle: WorkerHandle,
    facts: Option<ChipFacts>,
    manifest: Option<Arc<LoadedManifest>>,
    images: Vec<ImageHash>,
    progress: Progress,
    unplugged: bool,
}

struct PortEntry {
    port: SerialPort,
    state: &'static str,
    job: Option<WorkerId>,
    manifest: Option<String>,
    facts: Option<ChipFacts>,
    progress: Progress,
    attempt: u32,
    detail: Option<String>,
    /// Timing for the status (elapsed time and rate on the bench page).
    timing: Timing,
}

/// When work on a plug-in began and ended, and when the current flash attempt began.
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    flash_start: Option<Instant>,
    rate: Option<u64>,
}

impl Timing {
    fn begin() -> Self {
        Timing {
            since: Some(SystemTime::now()),
            ..Timing::default()
        }
    }

    fn end(&mut self) {
        self.until.get_or_insert_with(SystemTime::now);
    }

    fn progress(&mut self, done: u64) {
        if let Some(start) = self.flash_start {
            let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            if ms >= 200 {
                self.rate = Some(done.saturating_mul(1000) / ms);
            }
        }
    }
}

fn unix_ms(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Default)]
struct Totals {
    flashed: u64,
    verified: u64,
    failed: u64,
    left_alone: u64,
}

/// The daemon: state plus the channel every event arrives on.
pub struct Daemon {
    config: DaemonConfig,
    connector: Arc<dyn BoardConnector>,
    loader: Arc<dyn ManifestLoader>,
    tx: mpsc::Sender<Event>,
    rx: mpsc::Receiver<Event>,
    journal: Journal,
    store: ManifestStore,
    ports: BTreeMap<PathBuf, PortEntry>,
    jobs: HashMap<WorkerId, Job>,
    next_id: WorkerId,
    notifier: Notifier,
    shared: Shared,
    totals: Totals,
    /// The flash maps the bench page shows, refreshed after every rescan.
    maps: super::page::FlashMaps,
}

impl Daemon {
    /// Opens the journal and reads the environment's notify socket; nothing runs yet.
    pub fn new(
        config: DaemonConfig,
        connector: Arc<dyn BoardConnector>,
        loader: Arc<dyn ManifestLoader>,
    ) -> Result<Self, DaemonError> {
        let journal = Journal::open(&config.journal)?;
        let notifier = Notifier::from_env().map_err(|e| DaemonError::SourceDied {
            source_name: "sd_notify",
            error: e.to_string(),
        })?;
        let (tx, rx) = mpsc::channel();
        Ok(Daemon {
            config,
            connector,
            loader,
            tx,
            rx,
            journal,
            store: ManifestStore::default(),
            ports: BTreeMap::new(),
            jobs: HashMap::new(),
            next_id: 1,
            notifier,
            shared: Shared::default(),
            totals: Totals::default(),
            maps: super::page::FlashMaps::default(),
        })
    }

    /// A sender into the loop (tests send [`Event::Shutdown`] through it).
    pub fn sender(&self) -> mpsc::Sender<Event> {
        self.tx.clone()
    }

    /// Runs until shutdown (`Ok`) or until a source dies (`Err`).
    #[allow(clippy::too_many_lines)] // the one match over every event reads best in one place
    pub fn run(mut self, source: Box<dyn DeviceSource>) -> Result<(), DaemonError> {
        self.rescan_manifests()?;
        let _watcher =
            super::watch::watch(&self.config.manifest_dir, self.tx.clone()).map_err(|e| {
                DaemonError::ManifestDir {
                    path: self.config.manifest_dir.clone(),
                    message: e.to_string(),
                }
            })?;
        if let Some(path) = &self.config.socket {
            let listener = status::bind(path)?;
            let shared = self.shared.clone();
            let tx = self.tx.clone();
            std::thread::Builder::new()
                .name("status socket".into())
                .spawn(move || {
                    let e = status::serve(&listener, &shared);
                    let _ = tx.send(Event::SourceDied {
                        source: "status socket",
                        error: e.to_string(),
                    });
                })
                .map_err(DaemonError::Spawn)?;
        }
        let _page = match self.config.http.clone() {
            Some(http) => Some(self.serve_page(http)?),
            None => None,
        };
        let source_name = source.name();
        let tx = self.tx.clone();
        std::thread::Builder::new()
            .name(source_name.into())
            .spawn(move || source.run(tx))
            .map_err(DaemonError::Spawn)?;

        tracing::info!(
            manifests = self.store.in_force().count(),
            dir = %self.config.manifest_dir.display(),
            journal = %self.journal.path().display(),
            "espfleetd started, watching {source_name}"
        );
        self.publish();

        let tick = self
            .notifier
            .watchdog_timeout()
            .map_or(Duration::from_secs(5), |t| {
                (t / 2).max(Duration::from_millis(10))
            });
        let mut next_tick = Instant::now() + tick;
        let mut rescan_at: Option<Instant> = None;
        let result = loop {
            let now = Instant::now();
            if now >= next_tick {
                let _ = self.notifier.watchdog();
                next_tick = now + tick;
            }
            if rescan_at.is_some_and(|t| now >= t) {
                rescan_at = None;
                if let Err(e) = self.rescan_manifests() {
                    break Err(e);
                }
                self.publish();
            }
            let wait = rescan_at
                .map_or(next_tick, |t| t.min(next_tick))
                .saturating_duration_since(Instant::now());
            let event = match self.rx.recv_timeout(wait) {
                Ok(ev) => ev,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    unreachable!("the loop holds a sender")
                }
            };
            match event {
                Event::DevicesEnumerated => {
                    tracing::info!(
                        "{source_name}: {} ports present at start; ready",
                        self.ports.len()
                    );
                    let _ = self.notifier.ready(&self.summary());
                }
                Event::Device(DeviceEvent::Present(port)) => self.on_present(port),
                Event::Device(DeviceEvent::Added(port)) => self.on_added(port, false),
                Event::Device(DeviceEvent::Removed { syspath, devnode }) => {
                    self.on_removed(&syspath, devnode);
                }
                Event::ManifestsChanged => rescan_at = Some(Instant::now() + self.config.debounce),
                Event::Worker { id, event, .. } => {
                    if let Err(e) = self.on_worker(id, event) {
                        break Err(e);
                    }
                }
                Event::SourceDied { source, error } => {
                    tracing::error!(
                        "event source `{source}` died: {error}; exiting so systemd restarts espfleetd"
                    );
                    break Err(DaemonError::SourceDied {
                        source_name: source,
                        error,
                    });
                }
                Event::Shutdown => {
                    tracing::info!("shutting down");
                    break Ok(());
                }
            }
            self.publish();
        };
        let _ = self.notifier.stopping();
        self.stop_workers();
        result
    }

    /// Starts the bench page (binding now, so a bad address fails the start).
    fn serve_page(
        &self,
        http: super::http::HttpConfig,
    ) -> Result<super::http::HttpHandle, DaemonError> {
        let page = super::page::Page::new(super::page::PageSources {
            status: self.shared.clone(),
            maps: self.maps.clone(),
            journal: self.config.journal.clone(),
        });
        let tx = self.tx.clone();
        let handle =
            super::http::start(http.addr, http.allowed_hosts, http.limits, page, move |e| {
                let _ = tx.send(Event::SourceDied {
                    source: "bench page",
                    error: e.to_string(),
                });
            })?;
        let addr = handle.local_addr();
        tracing::info!("bench page on http://{addr}/");
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "the bench page listens on {addr}, beyond this machine: anyone who can reach it sees the bench (it is read-only and shows no key material)"
            );
        }
        Ok(handle)
    }

    fn stop_workers(&mut self) {
        for job in self.jobs.values() {
            job.handle
                .cancel
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = job.handle.commands.send(Command::Release);
        }
        for (_, job) in self.jobs.drain() {
            let _ = job.handle.thread.join();
        }
    }

    fn rescan_manifests(&mut self) -> Result<(), DaemonError> {
        let dir = self.config.manifest_dir.clone();
        let changes =
            self.store
                .rescan(&dir, &*self.loader)
                .map_err(|e| DaemonError::ManifestDir {
                    path: dir.clone(),
                    message: e.to_string(),
                })?;
        for change in changes {
            match change {
                Change::Loaded { file, replaced } => {
                    let m = self.store.get(&file).expect("just loaded");
                    let bytes: usize = m.image.segments.iter().map(|s| s.data.len()).sum();
                    let verb = if replaced { "reloaded" } else { "loaded" };
                    tracing::info!(
                        "manifest {file} {verb}: {} for {}, {} images, {}",
                        m.name,
                        m.chip,
                        m.image.segments.len(),
                        human_bytes(bytes as u64)
                    );
                }
                Change::Failed {
                    file,
                    error,
                    kept_last_good: true,
                } => {
                    tracing::error!(
                        "manifest {file} fails to build; its last good version stays in force:\n{error}"
                    );
                }
                Change::Failed {
                    file,
                    error,
                    kept_last_good: false,
                } => {
                    tracing::error!(
                        "manifest {file} fails to build; no version of it is in force:\n{error}"
                    );
                }
                Change::Recovered { file } => {
                    tracing::info!("manifest {file} builds again (unchanged images)");
                }
                Change::Removed { file } => {
                    tracing::info!("manifest {file} removed; no longer in force");
                }
            }
        }
        self.maps.update(self.store.in_force());
        let _ = self.notifier.status(&self.summary());
        Ok(())
    }

    fn on_present(&mut self, port: SerialPort) {
        if self.ports.contains_key(&port.syspath) {
            return; // already seen through an early "add"
        }
        if self.config.flash_present {
            self.on_added(port, true);
        } else if self.is_board_candidate(&port) {
            tracing::info!(
                "slot {}  {}  present at start; left as is (start with --flash-present to flash boards already plugged in)",
                port.slot(),
                port.devnode.display()
            );
            self.ports
                .insert(port.syspath.clone(), PortEntry::new(port, "present"));
        }
    }

    fn is_board_candidate(&self, port: &SerialPort) -> bool {
        known_bridge(port.usb.vid, port.usb.pid).is_some()
            || self.store.names_usb_id(port.usb.vid, port.usb.pid)
    }

    fn on_added(&mut self, port: SerialPort, present: bool) {
        if !self.is_board_candidate(&port) {
            tracing::debug!(
                "{} ({:04x?}:{:04x?}) is not an ESP32 bridge; ignored",
                port.devnode.display(),
                port.usb.vid,
                port.usb.pid
            );
            return;
        }
        if let Some(old) = self.ports.remove(&port.syspath) {
            // An "add" for a port we think is there: the remove got lost. Treat as a re-plug.
            if let Some(id) = old.job {
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.unplugged = true;
                    job.handle
                        .cancel
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        let candidates = self.store.candidates();
        if let Decision::NoMatch(rejections) = device_match::before_connect(&candidates, &port.usb)
        {
            {
                let why = if rejections.is_empty() {
                    "no manifest is in force".to_owned()
                } else {
                    rejections
                        .iter()
                        .map(|r| format!("{}: {}", r.key, r.why))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                drop(candidates);
                self.left_alone(&port, None, format!("matches no manifest ({why})"));
                let mut entry = PortEntry::new(port, "left-alone");
                entry.detail = Some(format!("matches no manifest ({why})"));
                entry.timing = Timing::begin();
                entry.timing.end();
                self.ports.insert(entry.port.syspath.clone(), entry);
            }
        } else {
            drop(candidates);
            self.start_worker(port, present);
        }
    }

    fn start_worker(&mut self, port: SerialPort, present: bool) {
        let id = self.next_id;
        self.next_id += 1;
        let spawned = worker::spawn(
            id,
            port.clone(),
            self.connector.clone(),
            self.config.retry,
            self.tx.clone(),
        );
        let handle = match spawned {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("slot {}  cannot start a worker: {e}", port.slot());
                return;
            }
        };
        tracing::debug!(
            "slot {}  {} {}; connecting",
            port.slot(),
            port.devnode.display(),
            if present { "present" } else { "plugged in" }
        );
        let mut entry = PortEntry::new(port.clone(), "connecting");
        entry.job = Some(id);
        entry.attempt = 1;
        entry.timing = Timing::begin();
        self.ports.insert(port.syspath.clone(), entry);
        self.jobs.insert(
            id,
            Job {
                port,
                handle,
                facts: None,
                manifest: None,
                images: Vec::new(),
                progress: Progress { done: 0, total: 0 },
                unplugged: false,
            },
        );
    }

    fn on_removed(&mut self, syspath: &std::path::Path, devnode: Option<PathBuf>) {
        let Some(entry) = self.ports.remove(syspath) else {
            return;
        };
        tracing::debug!(
            "slot {}  {} unplugged",
            entry.port.slot(),
            devnode.unwrap_or(entry.port.devnode.clone()).display()
        );
        if let Some(job) = entry.job.and_then(|id| self.jobs.get_mut(&id)) {
            job.unplugged = true;
            job.handle
                .cancel
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn on_worker(&mut self, id: WorkerId, event: WorkerEvent) -> Result<(), DaemonError> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Ok(());
        };
        let syspath = job.port.syspath.clone();
        let entry = self.ports.get_mut(&syspath).filter(|e| e.job == Some(id));
        match event {
            WorkerEvent::Identified(facts) => {
                job.facts = Some(facts);
                if let Some(e) = entry {
                    e.facts = Some(facts);
                }
                self.decide(id);
            }
            WorkerEvent::Progress(p) => {
                job.progress = p;
                if let Some(e) = entry {
                    e.progress = p;
                    e.timing.progress(p.done);
                    // Every byte is sent (or found in place): what is left is the flasher
                    // reading back each part's MD5.
                    if e.state == "flashing" && p.total > 0 && p.done >= p.total {
                        e.state = "verifying";
                    }
                }
            }
            WorkerEvent::AttemptFinished {
                attempt,
                result,
                duration_ms,
                retry_in_ms,
            } => {
                self.attempt_finished(id, attempt, &result, duration_ms, retry_in_ms)?;
            }
            WorkerEvent::Done => {
                if let Some(job) = self.jobs.remove(&id) {
                    let _ = job.handle.thread.join();
                }
                if let Some(e) = self.ports.get_mut(&syspath).filter(|e| e.job == Some(id)) {
                    e.job = None;
                    if matches!(
                        e.state,
                        "connecting" | "flashing" | "verifying" | "retrying"
                    ) {
                        e.state = "idle";
                    }
                    e.timing.end();
                }
            }
        }
        Ok(())
    }

    /// Phase 2 of matching: chip and MAC are known; pick the manifest or leave the board alone.
    fn decide(&mut self, id: WorkerId) {
        let job = &self.jobs[&id];
        let facts = job.facts.expect("identified");
        let decision = device_match::after_connect(&self.store.candidates(), &job.port.usb, &facts);
        let port = job.port.clone();
        let reason = match decision {
            Decision::Matched { key, .. } => {
                let manifest = self
                    .store
                    .get(&key)
                    .expect("a candidate is in force")
                    .clone();
                let images = hash_images(&manifest);
                let total = manifest
                    .image
                    .segments
                    .iter()
                    .map(|s| s.data.len() as u64)
                    .sum();
                let job = self.jobs.get_mut(&id).expect("exists");
                job.images = images;
                job.progress = Progress { done: 0, total };
                let _ = job.handle.commands.send(Command::Flash(manifest.clone()));
                job.manifest = Some(manifest);
                if let Some(e) = self
                    .ports
                    .get_mut(&port.syspath)
                    .filter(|e| e.job == Some(id))
                {
                    e.state = "flashing";
                    e.manifest = Some(key);
                    e.progress = Progress { done: 0, total };
                    e.timing.flash_start = Some(Instant::now());
                    e.timing.rate = None;
                }
                return;
            }
            Decision::NoMatch(rejections) => format!(
                "matches no manifest ({})",
                rejections
                    .iter()
                    .map(|r| format!("{}: {}", r.key, r.why))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Decision::Tie { keys, specificity } => {
                format!(
                    "matches {} equally (specificity {specificity}); refusing to guess",
                    keys.join(" and ")
                )
            }
            Decision::Connect => unreachable!("after_connect never asks to connect"),
        };
        let _ = self.jobs[&id].handle.commands.send(Command::Release);
        self.left_alone(&port, Some(facts), reason.clone());
        if let Some(e) = self
            .ports
            .get_mut(&port.syspath)
            .filter(|e| e.job == Some(id))
        {
            e.state = "left-alone";
            e.detail = Some(reason);
            e.timing.end();
        }
    }

    fn left_alone(&mut self, port: &SerialPort, facts: Option<ChipFacts>, reason: String) {
        self.totals.left_alone += 1;
        tracing::warn!(
            "slot {}  {}  left alone: {reason}",
            port.slot(),
            board_name(facts)
        );
        let record = record_for(
            port,
            facts,
            None,
            &[],
            Outcome::LeftAlone,
            0,
            0,
            0,
            Some(reason),
        );
        if let Err(e) = self.journal.append(&record) {
            tracing::error!("{e}");
        }
    }

    fn attempt_finished(
        &mut self,
        id: WorkerId,
        attempt: u32,
        result: &Result<FlashReport, FlashFailure>,
        duration_ms: u64,
        retry_in_ms: Option<u64>,
    ) -> Result<(), DaemonError> {
        let job = &self.jobs[&id];
        let manifest = job.manifest.as_ref().map(|m| m.file.clone());
        let slot = job.port.slot();
        let who = board_name(job.facts);
        let what = manifest.clone().unwrap_or_else(|| "-".into());
        let secs = Duration::from_millis(duration_ms).as_secs_f64();
        let max = self.config.retry.max_attempts;
        let (outcome, bytes, error, state, detail) = match result {
            Ok(report) => {
                if report.verified_only() {
                    self.totals.verified += 1;
                    tracing::info!(
                        "slot {slot}  {who}  {what}  verified {} in {secs:.1} s (already up to date)",
                        human_bytes(report.bytes_total)
                    );
                    (Outcome::Verified, 0, None, "verified", None)
                } else {
                    self.totals.flashed += 1;
                    tracing::info!(
                        "slot {slot}  {who}  {what}  flashed {} in {secs:.1} s",
                        human_bytes(report.bytes_written)
                    );
                    (
                        Outcome::Flashed,
                        report.bytes_written,
                        None,
                        "flashed",
                        None,
                    )
                }
            }
            Err(f) => {
                let gone = f.board_gone || job.unplugged;
                let done = job.progress.done;
                let detail = if gone {
                    tracing::warn!(
                        "slot {slot}  {who}  {what}  unplugged during attempt {attempt}: {f}; the next plug-in retries"
                    );
                    format!("unplugged: {f}")
                } else if let Some(ms) = retry_in_ms {
                    tracing::warn!(
                        "slot {slot}  {who}  {what}  attempt {attempt}/{max} failed: {f}; retrying in {:.1} s",
                        Duration::from_millis(ms).as_secs_f64()
                    );
                    format!("attempt {attempt} failed: {f}")
                } else {
                    self.totals.failed += 1;
                    tracing::error!(
                        "slot {slot}  {who}  {what}  FAILED after {attempt} attempt(s): {f}; leaving it alone until it is plugged in again"
                    );
                    format!("failed after {attempt} attempt(s): {f}")
                };
                let state = if retry_in_ms.is_some() && !gone {
                    "retrying"
                } else {
                    "failed"
                };
                (
                    Outcome::Failed,
                    done,
                    Some(f.message.clone()),
                    state,
                    Some(detail),
                )
            }
        };
        let record = record_for(
            &job.port,
            job.facts,
            manifest,
            &job.images,
            outcome,
            attempt,
            bytes,
            duration_ms,
            error,
        );
        self.journal.append(&record)?;
        if let Some(e) = self
            .ports
            .get_mut(&job.port.syspath)
            .filter(|e| e.job == Some(id))
        {
            e.state = state;
            e.detail = detail;
            e.attempt = attempt + u32::from(retry_in_ms.is_some());
            if state != "retrying" {
                e.timing.progress(e.progress.done);
                e.timing.end();
            }
        }
        let _ = self.notifier.status(&self.summary());
        Ok(())
    }

    fn summary(&self) -> String {
        let busy = self.jobs.len();
        format!(
            "{} manifests; {busy} boards busy; {} flashed, {} verified, {} failed, {} left alone",
            self.store.in_force().count(),
            self.totals.flashed,
            self.totals.verified,
            self.totals.failed,
            self.totals.left_alone
        )
    }

    fn publish(&self) {
        let snapshot = Snapshot {
            pid: std::process::id(),
            manifests: self.store.status(),
            ports: self
                .ports
                .values()
                .map(|e| PortStatus {
                    port: e.port.devnode.display().to_string(),
                    slot: e.port.slot(),
                    state: e.state.to_owned(),
                    manifest: e.manifest.clone(),
                    chip: e.facts.map(|f| f.chip.to_string()),
                    mac: e.facts.map(|f| format_mac(f.mac)),
                    done: e.progress.done,
                    total: e.progress.total,
                    attempt: e.attempt,
                    detail: e.detail.clone(),
                    serial: None,
                    since_ms: unix_ms(e.timing.since),
                    until_ms: unix_ms(e.timing.until),
                    rate: e.timing.rate,
                })
                .collect(),
        };
        *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }
}

impl PortEntry {
    fn new(port: SerialPort, state: &'static str) -> Self {
        PortEntry {
            port,
            state,
            job: None,
            manifest: None,
            facts: None,
            progress: Progress { done: 0, total: 0 },
            attempt: 0,
            detail: None,
            timing: Timing::default(),
        }
    }
}

fn board_name(facts: Option<ChipFacts>) -> String {
    facts.map_or_else(
        || "board".to_owned(),
        |f| format!("{} {}", f.chip, format_mac(f.mac)),
    )
}

fn hash_images(m: &LoadedManifest) -> Vec<ImageHash> {
    m.image
        .segments
        .iter()
        .map(|s| ImageHash {
            name: s.name.clone(),
            offset: s.offset,
            sha256: hex::encode(sha2::Sha256::digest(&s.data)),
        })
        .collect()
}

#[allow(clippy::too_many_arguments)] // one record's fields; a builder would only move them
fn record_for(
    port: &SerialPort,
    facts: Option<ChipFacts>,
    manifest: Option<String>,
    images: &[ImageHash],
    outcome: Outcome,
    attempt: u32,
    bytes: u64,
    duration_ms: u64,
    error: Option<String>,
) -> Record {
    Record {
        time: journal::rfc3339(SystemTime::now()),
        port: port.devnode.display().to_string(),
        slot: port.usb.usb_path.clone(),
        vid: port.usb.vid.map(|v| format!("{v:04x}")),
        pid: port.usb.pid.map(|v| format!("{v:04x}")),
        usb_serial: port.usb.serial.clone(),
        chip: facts.map(|f| f.chip.to_string()),
        mac: facts.map(|f| format_mac(f.mac)),
        manifest,
        images: images.to_vec(),
        outcome,
        attempt,
        bytes,
        duration_ms,
        error,
    }
}

/// `1.2 MB`, `340.0 kB`, `12 B` (decimal units, as the log line format shows).
pub fn human_bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // display only
    let f = n as f64;
    if n >= 1_000_000 {
        format!("{:.1} MB", f / 1e6)
    } else if n >= 1_000 {
        format!("{:.1} kB", f / 1e3)
    } else {
        format!("{n} B")
    }
}
