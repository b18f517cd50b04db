//! `espfleet check MANIFEST...`: validate manifests and print every problem at once.

use std::path::PathBuf;
use std::process::ExitCode;

use espfleet_compiler::manifest;

use super::GlobalOpts;

/// Arguments of `espfleet check`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when every manifest is valid (warnings allowed, unless \
--deny-warnings), 1 otherwise.\n\
Examples:\n  espfleet check manifests/examples/ fleet/bench-01.kdl\n  \
espfleet check --deny-warnings fleet/   # in CI: an expiring certificate fails the job"
)]
pub struct CheckArgs {
    /// Manifest files (`.kdl`), or directories to search for them.
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
}

/// Validates every manifest; prints one `ok` line per valid manifest on stdout and the
/// diagnostics of the others on stderr.
pub fn run(args: CheckArgs, global: &GlobalOpts) -> miette::Result<ExitCode> {
    let files = manifest::discover::discover(&args.manifests)
        .map_err(|e| miette::miette!(code = "espfleet::cli::path_unreadable", "{e}"))?;
    if files.is_empty() {
        return Err(miette::miette!(
            code = "espfleet::cli::no_manifests",
            help = "manifests are files ending in .kdl",
            "no manifests found in {}",
            args.manifests
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut failed = 0usize;
    for path in &files {
        match manifest::Diagnostics::deny_warnings(manifest::load(path), global.deny_warnings) {
            Ok((plan, warnings)) => {
                if !warnings.errors.is_empty() {
                    eprintln!("{:?}", miette::Report::new(warnings));
                }
                if !global.quiet {
                    println!(
                        "ok  {}  {} ({}), ESP-AT {}, era {:?}",
                        path.display(),
                        plan.module.name,
                        plan.chip,
                        plan.release,
                        plan.era
                    );
                }
            }
            Err(diags) => {
                failed += 1;
                eprintln!("{:?}", miette::Report::new(diags));
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} manifest(s) have errors", files.len());
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
