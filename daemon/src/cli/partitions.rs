//! `espfleet partitions INPUT OUTPUT`

use std::path::PathBuf;
use std::process::ExitCode;

use super::GlobalOpts;

/// Arguments of `espfleet partitions`.
#[derive(Debug, clap::Args)]
pub struct PartitionsArgs {
    /// Manifest files (`.kdl`) to validate.
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
}

pub fn run(_args: PartitionsArgs, _global: &GlobalOpts) -> miette::Result<ExitCode> {
    Err(miette::miette!("espfleet partitions: not implemented yet"))
}
