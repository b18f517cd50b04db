//! `espfleetd`'s command line: arguments, logging, and the production source, loader and
//! connector wired into [`super::run`].

use std::net::SocketAddr;
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
#[command(
    name = "espfleetd",
    version,
    max_term_width = 100,
    after_help = "Examples:\n  \
espfleetd --manifests /etc/espfleet/manifests\n  \
espfleetd --http                         # bench page on http://127.0.0.1:8420/\n  \
espfleetd --http 127.0.0.1:9000          # another port, still loopback only\n  \
espfleetd --http 0.0.0.0:8420 --http-host bench-7.lab   # the lab network, by name\n\n\
The bench page (docs/bench-page.md) is read-only and shows no key material; it has no login, \
so only listen beyond loopback on a network you trust. Exit status 1 when a source dies \
(systemd restarts the daemon), 2 on bad arguments."
)]
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
    /// Serve the live bench page and its JSON API on ADDR (off unless given; without a value
    /// 127.0.0.1:8420, loopback only).
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = super::http::DEFAULT_ADDR
    )]
    pub http: Option<SocketAddr>,
    /// A host name the bench page answers to besides IP addresses and `localhost`
    /// (repeatable). Requests naming any other host are refused, which stops DNS-rebinding
    /// pages from reading the bench through a browser.
    #[arg(long, value_name = "NAME", requires = "http")]
    pub http_host: Vec<String>,
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
        http: args.http.map(|addr| super::http::HttpConfig {
            addr,
            allowed_hosts: args.http_host.clone(),
            limits: super::http::Limits::default(),
        }),
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
