//! `espfleetd`'s command line: arguments, logging, and the production source, loader and
//! connector wired into [`super::run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use super::worker::RetryPolicy;
use super::{DaemonConfig, integration, udev_source};

/// Flashes ESP32 / ESP32-C3 boards with the images of their matching espfleet manifest when
/// they are plugged in. Meant to run under systemd (see systemd/espfleetd.service); logs go to
/// stderr.
#[derive(Debug, Parser)]
#[command(name = "espfleetd", version, max_term_width = 100)]
pub struct Args {
    /// Directory of `*.kdl` manifests; watched for changes.
    #[arg(
        long,
        env = "ESPFLEET_MANIFESTS",
        default_value = "/etc/espfleet/manifests"
    )]
    pub manifests: PathBuf,
    /// Directory for the journal (`journal.jsonl`).
    #[arg(long, env = "ESPFLEET_STATE_DIR", default_value = "/var/lib/espfleet")]
    pub state_dir: PathBuf,
    /// Build cache directory.
    #[arg(
        long,
        env = "ESPFLEET_CACHE_DIR",
        default_value = "/var/cache/espfleet"
    )]
    pub cache_dir: PathBuf,
    /// The status socket `espfleet status` asks.
    #[arg(
        long,
        env = "ESPFLEET_STATUS_SOCKET",
        default_value = "/run/espfleet/status.sock"
    )]
    pub socket: PathBuf,
    /// Also flash boards already plugged in when the daemon starts.
    #[arg(long)]
    pub flash_present: bool,
    /// Serial speed for flashing.
    #[arg(long, default_value_t = 921_600)]
    pub baud: u32,
    /// Attempts per plug-in before a board is reported as failed.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub attempts: u32,
    /// First wait between attempts in milliseconds (doubles each time, up to 30 s).
    #[arg(long, default_value_t = 1000)]
    pub backoff_ms: u64,
    /// Quiet time after a manifest change before rebuilding, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub debounce_ms: u64,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("ESPFLEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,espflash=error"));
    // journald adds its own timestamps; plain lines without ANSI colour. espflash's debug
    // output (every command's bytes) never reaches the journal, whatever ESPFLEET_LOG says.
    crate::logging::init(filter, crate::logging::Style::Daemon);
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(false)
                .unicode(false)
                .width(100)
                .build(),
        )
    }));

    let config = DaemonConfig {
        manifest_dir: args.manifests.clone(),
        journal: args.state_dir.join("journal.jsonl"),
        socket: Some(args.socket.clone()),
        flash_present: args.flash_present,
        retry: RetryPolicy {
            max_attempts: args.attempts,
            first_backoff: Duration::from_millis(args.backoff_ms),
            ..RetryPolicy::default()
        },
        debounce: Duration::from_millis(args.debounce_ms),
    };
    let loader = Arc::new(integration::CompilerLoader::new(args.cache_dir.clone()));
    let connector = Arc::new(integration::SerialConnector::new(args.baud));
    match super::run(config, Box::new(udev_source::UdevSource), connector, loader) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            ExitCode::FAILURE
        }
    }
}
