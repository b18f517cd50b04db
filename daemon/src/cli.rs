//! The `espfleet` command line: argument definitions and dispatch.
//!
//! Each subcommand lives in its own module with an `Args` type and a `run` function.
//! Exit codes (stable, scripts rely on them):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the work failed: invalid manifest or input, a failed build, a failed flash |
//! | 2 | usage error (bad arguments), as clap reports it |

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod build;
mod build_for_mac;
mod cache;
mod check;
mod flash;
mod history;
mod identity;
mod import;
mod inspect;
mod merge_bin;
mod nvs;
mod partitions;
mod schema;
mod sim;
mod status;

/// Global options shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// Print less: no progress bars, only errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print more (repeat for more detail). Logs go to stderr.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Treat warnings as errors (exit 1): expired certificates, repeated properties, settings
    /// the release ignores. For CI.
    #[arg(long, global = true, env = "ESPFLEET_DENY_WARNINGS")]
    pub deny_warnings: bool,
    /// When to use colour in diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// espfleet compiles KDL device manifests into the flash images ESP-AT reads, and flashes them.
#[derive(Debug, Parser)]
#[command(
    name = "espfleet",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Start with `espfleet check manifests/examples/wroom-32.kdl`, then \
`espfleet build manifests/examples/wroom-32.kdl --out out/`.\nThe manifest language is \
documented in manifests/README.md; `espfleet schema` prints its JSON Schema."
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate manifests; print every problem with its place in the manifest.
    Check(check::CheckArgs),
    /// Build the images of one or more manifests into OUT/<manifest name>/.
    Build(build::BuildArgs),
    /// Convert a partition table CSV to binary or back (a drop-in for gen_esp32part.py).
    Partitions(partitions::PartitionsArgs),
    /// Print the manifest language's JSON Schema.
    Schema(schema::SchemaArgs),
    /// Write a manifest's images (or given parts) to a board; unchanged parts are skipped.
    Flash(flash::FlashArgs),
    /// Generate, encrypt, decrypt and dump NVS partition images (a drop-in for esp-idf-nvs-partition-gen).
    Nvs(nvs::NvsArgs),
    /// Run a simulated ESP32 / ESP32-C3 on a pseudo-terminal for esptool, espflash or espfleet.
    Sim(Box<sim::SimArgs>),
    /// Show what an image holds: partition tables, NVS, era A bins, firmware, factory images.
    Inspect(inspect::InspectArgs),
    /// Merge binaries into one flashable image (a drop-in for esptool merge-bin).
    MergeBin(merge_bin::MergeBinArgs),
    /// Recover a manifest (and its certificate, BLE and firmware files) from a factory image.
    Import(import::ImportArgs),
    /// Show, trim or empty the content-addressed image cache.
    Cache(cache::CacheArgs),
    /// What espfleetd did: its journal of flash attempts.
    History(history::HistoryArgs),
    /// Ask the running espfleetd what each port is doing.
    Status(status::StatusArgs),
    /// The identity store: which board got which serial and certificate; export, revoke.
    Identity(identity::IdentityArgs),
}

/// Entry point of the `espfleet` binary: parse arguments, set up diagnostics and logging, run.
pub fn main() -> ExitCode {
    let args = match merge_bin::expand_esptool_arguments(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    setup(&cli.global);
    let result = match cli.command {
        Command::Check(args) => check::run(args, &cli.global),
        Command::Build(args) => build::run(args, &cli.global),
        Command::Partitions(args) => partitions::run(args, &cli.global),
        Command::Schema(args) => schema::run(args, &cli.global),
        Command::Flash(args) => flash::run(args, &cli.global),
        Command::Nvs(args) => nvs::run(args, &cli.global),
        Command::Sim(args) => sim::run(*args, &cli.global),
        Command::Inspect(args) => inspect::run(args, &cli.global),
        Command::MergeBin(args) => merge_bin::run(args, &cli.global),
        Command::Import(args) => import::run(args, &cli.global),
        Command::Cache(args) => cache::run(args, &cli.global),
        Command::History(args) => history::run(args, &cli.global),
        Command::Status(args) => status::run(args, &cli.global),
        Command::Identity(args) => identity::run(args, &cli.global),
    };
    match result {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::FAILURE
        }
    }
}

/// Installs the miette report handler and the tracing subscriber according to the global options.
fn setup(global: &GlobalOpts) {
    use std::io::IsTerminal as _;
    let color = match global.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(color)
                .terminal_links(false)
                .width(100)
                .build(),
        )
    }));
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ESPFLEET_LOG")
        // espflash warns about routine things (any baud above 115200): errors only unless -v.
        .unwrap_or_else(|_| {
            let directives = if global.verbose == 0 {
                format!("{level},espflash=error")
            } else {
                level.to_owned()
            };
            tracing_subscriber::EnvFilter::new(directives)
        });
    // Whatever the filter says, espflash's debug output (every command's bytes) stays out.
    crate::logging::init(filter, crate::logging::Style::Cli { ansi: color });
}
