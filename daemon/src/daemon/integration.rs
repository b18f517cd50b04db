//! The production [`ManifestLoader`] and [`BoardConnector`]: the compiler and the flasher.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::board::{BoardConnector, BoardSession, FlashFailure};
use super::manifests::{LoadedManifest, ManifestLoader};

/// Loads manifests with the compiler and builds them through its cache.
#[derive(Debug)]
pub struct CompilerLoader {
    #[allow(dead_code)] // used once the compiler's build entry point lands
    cache_dir: PathBuf,
}

impl CompilerLoader {
    /// A loader whose builds are cached under `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Self {
        CompilerLoader { cache_dir }
    }
}

impl ManifestLoader for CompilerLoader {
    fn load(&self, path: &Path) -> Result<LoadedManifest, String> {
        Err(format!(
            "{}: this build of espfleetd cannot compile manifests yet",
            path.display()
        ))
    }
}

/// Connects to boards on serial ports with the espflash-based flasher.
#[derive(Debug)]
pub struct SerialConnector {
    #[allow(dead_code)] // used once the flasher lands
    baud: u32,
}

impl SerialConnector {
    /// A connector flashing at `baud`.
    pub fn new(baud: u32) -> Self {
        SerialConnector { baud }
    }
}

impl BoardConnector for SerialConnector {
    fn connect(
        &self,
        port: &Path,
        _cancel: &AtomicBool,
    ) -> Result<Box<dyn BoardSession>, FlashFailure> {
        Err(FlashFailure {
            transient: false,
            board_gone: false,
            message: format!(
                "{}: this build of espfleetd has no flasher yet; nothing was written",
                port.display()
            ),
        })
    }
}
