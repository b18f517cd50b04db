//! `espfleet check MANIFEST...`

use std::path::PathBuf;
use std::process::ExitCode;

use super::GlobalOpts;

/// Arguments of `espfleet check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Manifest files (`.kdl`) to validate.
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
}

pub fn run(_args: CheckArgs, _global: &GlobalOpts) -> miette::Result<ExitCode> {
    Err(miette::miette!("espfleet check: not implemented yet"))
}
