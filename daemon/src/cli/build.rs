//! `espfleet build MANIFEST... --out DIR`: compile manifests into the images ESP-AT reads.

use std::path::PathBuf;
use std::process::ExitCode;

use espfleet_compiler::build::{self, Jobs};
use espfleet_compiler::manifest;
use rayon::prelude::*;

use super::GlobalOpts;

/// Arguments of `espfleet build`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each manifest's images go to OUT/<manifest name>/, laid out as ESP-AT's build \
folder (partition_table/partition-table.bin, at_customize.bin, customized_partitions/*.bin, \
flasher_args.json, download.config, factory/factory_<MODULE>.bin). Every file is written \
atomically; files holding private keys get mode 0600.\n\
Example: espfleet build manifests/examples/wroom-32.kdl --out out/"
)]
pub struct BuildArgs {
    /// Manifest files (`.kdl`), or directories to search for them.
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
    /// Output directory; each manifest gets a subdirectory named after it.
    #[arg(long, short, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Parallel jobs (1 = build everything on one thread, in order).
    #[arg(long, short, value_name = "N")]
    pub jobs: Option<usize>,
}

/// Builds every manifest; prints one line per manifest, diagnostics on stderr.
pub fn run(args: BuildArgs, global: &GlobalOpts) -> miette::Result<ExitCode> {
    let files = manifest::discover::discover(&args.manifests)
        .map_err(|e| miette::miette!(code = "espfleet::cli::path_unreadable", "{e}"))?;
    if files.is_empty() {
        return Err(miette::miette!(
            code = "espfleet::cli::no_manifests",
            help = "manifests are files ending in .kdl",
            "no manifests found"
        ));
    }
    let jobs = match args.jobs {
        Some(1) => Jobs::Sequential,
        _ => Jobs::Parallel,
    };
    if let Some(n) = args.jobs.filter(|n| *n > 1) {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    let build_one = |path: &PathBuf| -> Result<(String, usize, PathBuf), miette::Report> {
        let (plan, warnings) = manifest::load(path).map_err(miette::Report::new)?;
        if !warnings.errors.is_empty() {
            eprintln!("{:?}", miette::Report::new(warnings));
        }
        let images = build::emit(&plan, jobs).map_err(miette::Report::new)?;
        let dir = args.out.join(&plan.name);
        build::write(&dir, &images).map_err(|e| {
            miette::miette!(
                code = "espfleet::cli::write_failed",
                "writing {}: {e}",
                dir.display()
            )
        })?;
        Ok((plan.name, images.len(), dir))
    };
    let results: Vec<_> = match jobs {
        Jobs::Parallel => files.par_iter().map(build_one).collect(),
        Jobs::Sequential => files.iter().map(build_one).collect(),
    };
    let mut names = std::collections::BTreeMap::new();
    let mut failed = 0;
    for (path, r) in files.iter().zip(results) {
        match r {
            Ok((name, n, dir)) => {
                if let Some(other) = names.insert(name.clone(), path.clone()) {
                    eprintln!(
                        "error: {} and {} are both named `{name}` and wrote the same directory",
                        other.display(),
                        path.display()
                    );
                    failed += 1;
                }
                if !global.quiet {
                    println!(
                        "built  {}  →  {}  ({n} files)",
                        path.display(),
                        dir.display()
                    );
                }
            }
            Err(report) => {
                failed += 1;
                eprintln!("{report:?}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} manifest(s) failed", files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
