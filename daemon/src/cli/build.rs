//! `espfleet build MANIFEST... --out DIR`

use std::path::PathBuf;
use std::process::ExitCode;

use super::GlobalOpts;

/// Arguments of `espfleet build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Manifest files (`.kdl`) to validate.
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
}

pub fn run(_args: BuildArgs, _global: &GlobalOpts) -> miette::Result<ExitCode> {
    Err(miette::miette!("espfleet build: not implemented yet"))
}
