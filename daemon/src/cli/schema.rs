//! `espfleet schema`: print the manifest language's JSON Schema.

use std::process::ExitCode;

use super::GlobalOpts;

/// Arguments of `espfleet schema`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The schema describes a manifest's JSON form (one member per KDL node, \
properties as members). The same text is checked in as schemas/manifest.schema.json.

Examples:
  espfleet schema > manifest.schema.json
  espfleet schema | jq '.properties | keys'"
)]
pub struct SchemaArgs {}

/// Prints the schema on stdout.
pub fn run(_args: SchemaArgs, _global: &GlobalOpts) -> miette::Result<ExitCode> {
    print!("{}", espfleet_compiler::manifest::schema::json_schema());
    Ok(ExitCode::SUCCESS)
}
