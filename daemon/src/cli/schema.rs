//! `espfleet schema`

use std::process::ExitCode;

use super::GlobalOpts;

/// Arguments of `espfleet schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {}

pub fn run(_args: SchemaArgs, _global: &GlobalOpts) -> miette::Result<ExitCode> {
    Err(miette::miette!("espfleet schema: not implemented yet"))
}
