//! The production [`ManifestLoader`] and [`BoardConnector`]: the compiler and the flasher.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use espfleet_compiler::device_match::ChipFacts;
use espfleet_compiler::image::FlashImage;

use super::board::{BoardConnector, BoardSession, FlashFailure, FlashReport, Progress};
use super::device::SerialPort;
use super::manifests::{LoadedManifest, ManifestLoader};
use crate::flasher::{self, FlashError, FlashEvent, FlashOptions, PartOutcome, Port, Session};

/// Loads manifests with the compiler and builds them through its cache.
#[derive(Debug)]
pub struct CompilerLoader {
    cache_dir: PathBuf,
}

impl CompilerLoader {
    /// A loader whose builds are cached under `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Self {
        CompilerLoader { cache_dir }
    }
}

fn render(d: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100);
    if handler.render_report(&mut out, d).is_err() {
        return d.to_string();
    }
    out
}

impl ManifestLoader for CompilerLoader {
    fn load(&self, path: &Path) -> Result<LoadedManifest, String> {
        let (plan, _warnings) = espfleet_compiler::manifest::load(path).map_err(|d| render(&d))?;
        let image = build_image(&plan, &self.cache_dir)?;
        let extends = plan
            .files
            .0
            .keys()
            .filter(|p| p.extension().is_some_and(|e| e == "kdl") && p.as_path() != path)
            .cloned()
            .collect();
        Ok(LoadedManifest {
            file: String::new(),
            name: plan.name.clone(),
            chip: plan.chip,
            rules: plan.matches.clone(),
            image: std::sync::Arc::new(image),
            extends,
        })
    }
}

/// Builds a plan's images through the compiler's content-addressed cache in `cache_dir`, so
/// rebuilding every manifest after a change costs a hash of the unchanged ones' inputs. A cache
/// that cannot be opened (read-only disk, wrong owner) is logged and builds go on without it.
fn build_image(
    plan: &espfleet_compiler::manifest::Plan,
    cache_dir: &Path,
) -> Result<FlashImage, String> {
    let cache = match espfleet_compiler::cache::Cache::open(cache_dir) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("building without the image cache: {e}");
            None
        }
    };
    let images = espfleet_compiler::build::emit_with(
        plan,
        espfleet_compiler::build::Jobs::Parallel,
        cache.as_ref(),
        &|_| {},
    )
    .map_err(|d| render(&d))?;
    Ok(espfleet_compiler::build::flash_image(plan, &images))
}

/// Connects to boards on serial ports with the flasher's [`Session`].
#[derive(Debug)]
pub struct SerialConnector {
    baud: u32,
}

impl SerialConnector {
    /// A connector flashing at `baud`.
    pub fn new(baud: u32) -> Self {
        SerialConnector { baud }
    }
}

impl BoardConnector for SerialConnector {
    /// Opens a flasher [`Session`]: resets the board into its ROM loader (when the port has
    /// reset lines) and identifies it at 115200, changing nothing. The session stays open: the
    /// flash that may follow runs on it, with no second reset or connect.
    fn connect(
        &self,
        serial_port: &SerialPort,
        cancel: &AtomicBool,
    ) -> Result<Box<dyn BoardSession>, FlashFailure> {
        let path = serial_port.devnode.as_path();
        let usb = &serial_port.usb;
        let ids = usb.vid.zip(usb.pid).map(|(vid, pid)| flasher::UsbIds {
            vid,
            pid,
            serial_number: usb.serial.clone(),
            manufacturer: None,
            product: None,
        });
        let port = Port::with_usb(path, ids);
        let opts = FlashOptions {
            baud: self.baud,
            ..FlashOptions::default()
        };
        let session = Session::connect(port, opts, None).map_err(|e| failure_from(&e, path))?;
        if cancel.load(Ordering::Relaxed) {
            return Err(FlashFailure {
                transient: false,
                board_gone: true,
                message: "unplugged while connecting".into(),
            });
        }
        let facts = ChipFacts {
            chip: session.chip(),
            mac: session.mac().0,
        };
        Ok(Box::new(SerialSession {
            path: path.to_owned(),
            facts,
            session: Some(session),
        }))
    }
}

struct SerialSession {
    path: PathBuf,
    facts: ChipFacts,
    /// The open session; taken by the one flash it serves.
    session: Option<Session>,
}

impl BoardSession for SerialSession {
    fn facts(&self) -> ChipFacts {
        self.facts
    }

    fn flash(
        &mut self,
        image: &FlashImage,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<FlashReport, FlashFailure> {
        if cancel.load(Ordering::Relaxed) {
            return Err(FlashFailure {
                transient: false,
                board_gone: true,
                message: "unplugged before flashing; nothing was written".into(),
            });
        }
        let Some(session) = self.session.take() else {
            return Err(FlashFailure {
                transient: true,
                board_gone: false,
                message: "the session was used already; connect again".into(),
            });
        };
        let sizes: Vec<u64> = image.segments.iter().map(|s| s.data.len() as u64).collect();
        let total: u64 = sizes.iter().sum();
        // Bytes accounted per part: a part counts in full once found unchanged or once all
        // its blocks are sent. The flasher sends every changed part before verifying any
        // (PartWritten comes with the verification), so a running sum of finished parts
        // plus the current one would fall back at each new part; this never does.
        let mut accounted = vec![0u64; sizes.len()];
        let mut on_event = |ev: FlashEvent| {
            let (index, bytes) = match ev {
                FlashEvent::PartUnchanged { index } | FlashEvent::PartWritten { index } => {
                    (index, sizes[index])
                }
                FlashEvent::PartProgress {
                    index,
                    done,
                    blocks,
                } if blocks > 0 => (index, sizes[index] * done as u64 / blocks as u64),
                _ => return,
            };
            let slot = &mut accounted[index];
            *slot = (*slot).max(bytes.min(sizes[index]));
            progress(Progress {
                done: accounted.iter().sum(),
                total,
            });
        };
        match session.flash(image, &mut on_event) {
            Ok(r) => Ok(FlashReport {
                bytes_written: r.bytes_written,
                bytes_total: r.bytes_total,
                segments_skipped: r
                    .parts
                    .iter()
                    .filter(|p| p.outcome == PartOutcome::Skipped)
                    .count(),
                segments_written: r
                    .parts
                    .iter()
                    .filter(|p| p.outcome == PartOutcome::Written)
                    .count(),
            }),
            Err(e) => Err(failure_from(&e, &self.path)),
        }
    }
}

/// Sorts the flasher's errors into "try again", "board gone" and "no point retrying".
fn failure_from(e: &FlashError, path: &Path) -> FlashFailure {
    let (transient, board_gone) = match e {
        FlashError::DeviceVanished { .. } | FlashError::PortMissing { .. } => (false, true),
        FlashError::NoResponse { .. }
        | FlashError::Protocol { .. }
        | FlashError::PortBusy { .. }
        | FlashError::WriteFailed { .. }
        | FlashError::DataCorrupted { .. }
        | FlashError::VerifyFailed { .. }
        | FlashError::ResetFailed { .. }
        | FlashError::UnknownChip { .. } => (true, !path.exists()),
        _ => (false, false),
    };
    FlashFailure {
        transient,
        board_gone,
        message: format!("{e} [{}]", e.code_str()),
    }
}
