//! One worker thread per port: connect, let the loop decide, flash, retry transient failures
//! with backoff, report everything as events.
//!
//! Workers hold no state the loop needs; they report [`WorkerEvent`]s and obey [`Command`]s.
//! Unplugging sets the worker's cancel flag (and makes its serial I/O fail), so a worker
//! stops cleanly within one serial timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::board::{BoardConnector, FlashFailure, Progress};
use super::device::SerialPort;
use super::event::{Event, WorkerEvent, WorkerId};
use super::manifests::LoadedManifest;

/// How many times a worker tries on one plug-in, and how long it waits in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per plug-in, including the first. A board that fails this often is reported
    /// as failed and left alone until it is plugged in again.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub first_backoff: Duration,
    /// Upper bound for the wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// What the loop tells a worker after it identified the board.
#[derive(Debug)]
pub enum Command {
    /// Flash these images.
    Flash(Arc<LoadedManifest>),
    /// Leave the board alone and finish.
    Release,
}

/// The loop's handle on a worker.
#[derive(Debug)]
pub struct WorkerHandle {
    /// This run's id.
    pub id: WorkerId,
    /// Set to stop the worker (unplug, shutdown).
    pub cancel: Arc<AtomicBool>,
    /// Commands to the worker.
    pub commands: mpsc::Sender<Command>,
    /// The thread, joined on shutdown.
    pub thread: JoinHandle<()>,
}

/// Starts a worker for the board on `port`.
pub fn spawn(
    id: WorkerId,
    port: SerialPort,
    connector: Arc<dyn BoardConnector>,
    policy: RetryPolicy,
    events: mpsc::Sender<Event>,
) -> std::io::Result<WorkerHandle> {
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let name = format!("flash {}", port.devnode.display());
    let c2 = cancel.clone();
    let thread = std::thread::Builder::new().name(name).spawn(move || {
        let w = Worker {
            id,
            port,
            connector,
            policy,
            events,
            cancel: c2,
            commands: rx,
        };
        w.run();
    })?;
    Ok(WorkerHandle {
        id,
        cancel,
        commands: tx,
        thread,
    })
}

struct Worker {
    id: WorkerId,
    port: SerialPort,
    connector: Arc<dyn BoardConnector>,
    policy: RetryPolicy,
    events: mpsc::Sender<Event>,
    cancel: Arc<AtomicBool>,
    commands: mpsc::Receiver<Command>,
}

enum Step {
    /// The loop released the board, or we were cancelled: finish without a record.
    Stop,
    /// The attempt ended; this is its result.
    Finished(Result<super::board::FlashReport, FlashFailure>),
}

impl Worker {
    fn send(&self, event: WorkerEvent) -> bool {
        self.events
            .send(Event::Worker {
                id: self.id,
                syspath: self.port.syspath.clone(),
                event,
            })
            .is_ok()
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn run(self) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let start = Instant::now();
            let step = self.attempt();
            let duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            let Step::Finished(mut result) = step else {
                break;
            };
            if self.cancelled() {
                if let Err(f) = &mut result {
                    f.board_gone = true;
                }
            }
            let retry = match &result {
                Ok(_) => None,
                Err(f) => (f.transient && !f.board_gone && attempt < self.policy.max_attempts)
                    .then(|| self.policy.backoff(attempt)),
            };
            let retry_in_ms = retry.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            if !self.send(WorkerEvent::AttemptFinished {
                attempt,
                result,
                duration_ms,
                retry_in_ms,
            }) {
                return;
            }
            match retry {
                Some(wait) if self.sleep(wait) => {}
                _ => break,
            }
        }
        self.send(WorkerEvent::Done);
    }

    /// Sleeps `d` unless cancelled; true when the full time passed.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.cancelled() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
        }
        !self.cancelled()
    }

    fn attempt(&self) -> Step {
        let mut session = match self.connector.connect(&self.port, &self.cancel) {
            Ok(s) => s,
            Err(f) => return Step::Finished(Err(f)),
        };
        if !self.send(WorkerEvent::Identified(session.facts())) {
            return Step::Stop;
        }
        let manifest = loop {
            match self.commands.recv_timeout(Duration::from_millis(100)) {
                Ok(Command::Flash(m)) => break m,
                Ok(Command::Release) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Step::Stop;
                }
                Err(mpsc::RecvTimeoutError::Timeout) if self.cancelled() => return Step::Stop,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        };
        let mut last_sent = Instant::now();
        let mut progress = |p: Progress| {
            if p.done == p.total || last_sent.elapsed() >= Duration::from_millis(100) {
                last_sent = Instant::now();
                self.send(WorkerEvent::Progress(p));
            }
        };
        Step::Finished(session.flash(&manifest.image, &self.cancel, &mut progress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 5,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        let waits: Vec<_> = (1..=4).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        assert_eq!(p.backoff(200), Duration::from_millis(350));
    }
}
