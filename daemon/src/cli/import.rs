//! `espfleet import FACTORY.bin --out DIR`: recover a manifest from an ESP-AT factory image.

use std::path::PathBuf;
use std::process::ExitCode;

use espfleet_compiler::import::{self, Verification};

use super::GlobalOpts;

/// Arguments of `espfleet import`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reverses ESP-AT's `at.py modify_bin`: reads the factory image's \
bootloader header (chip, flash settings), partition tables, factory parameters, certificates, \
keys, BLE services and firmware, and writes DIR/manifest.kdl with the files it references \
(certs/, ble/, firmware/, partitions/; keys with mode 0600). The ESP-AT release is inferred from \
the image and the reasoning is written into the manifest as comments. The manifest is then \
rebuilt and compared with the input byte for byte.\n\
Example:\n  espfleet import build/factory/factory_WROOM-32.bin --out fleet/wroom/\n  \
espfleet build fleet/wroom/manifest.kdl --out out/"
)]
pub struct ImportArgs {
    /// The merged factory image (factory_<MODULE>.bin).
    #[arg(value_name = "FACTORY.bin")]
    pub image: PathBuf,
    /// Directory for manifest.kdl and its files.
    #[arg(long, short, value_name = "DIR", default_value = "imported")]
    pub out: PathBuf,
    /// Do not rebuild the manifest to check it reproduces the image.
    #[arg(long)]
    pub no_verify: bool,
}

/// Imports one image; prints what was found and whether the rebuild matches.
#[allow(clippy::needless_pass_by_value)] // dispatch hands every subcommand its args by value
pub fn run(args: ImportArgs, global: &GlobalOpts) -> miette::Result<ExitCode> {
    let bytes =
        espfleet_compiler::input::read(&args.image, espfleet_compiler::input::InputKind::IMAGE)?;
    let imported = import::import(&bytes)
        .map_err(|e| miette::Report::new(e).wrap_err(args.image.display().to_string()))?;
    let path = import::write(&args.out, &imported).map_err(|e| {
        miette::miette!(
            code = "espfleet::import::write_failed",
            "cannot write {}: {e}",
            args.out.display()
        )
    })?;
    if !global.quiet {
        println!(
            "{}: {} ({}), ESP-AT {} → {} ({} files)",
            args.image.display(),
            imported.module,
            imported.chip,
            imported.release,
            path.display(),
            imported.files.len()
        );
        for line in &imported.reasoning {
            println!("  {line}");
        }
    }
    if args.no_verify {
        return Ok(ExitCode::SUCCESS);
    }
    match import::verify(&path, &bytes) {
        Verification::Identical => {
            if !global.quiet {
                println!("verified: building the manifest reproduces the image byte for byte");
            }
            Ok(ExitCode::SUCCESS)
        }
        Verification::Differs { first, rebuilt_len } => Err(miette::miette!(
            code = "espfleet::import::not_reproduced",
            help = "the manifest was written; review it (the image may hold data espfleet does not model)",
            "the rebuilt image differs from the input at byte {first:#x} (rebuilt {rebuilt_len} bytes, input {})",
            bytes.len()
        )),
        Verification::BuildFailed(e) => Err(miette::miette!(
            code = "espfleet::import::not_reproduced",
            help = "the manifest was written; fix it by hand and run `espfleet check` on it",
            "the recovered manifest does not build:\n{e}"
        )),
    }
}
