//! `espfleet history`: what the daemon did, from its journal.

use std::path::PathBuf;
use std::process::ExitCode;

use espfleet_compiler::device_match::{format_mac, parse_mac};

use super::GlobalOpts;
use crate::daemon::journal::{self, Outcome, Record};

/// Arguments of `espfleet history`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads the journal espfleetd appends to (one JSON line per attempt). A line torn by a crash or
power loss is skipped with a warning.

Examples:
  espfleet history                          # every attempt, oldest first
  espfleet history --mac 84:f7:03:12:34:56  # one board, wherever it was plugged in
  espfleet history --slot 1-1.3 -n 5        # the last five attempts on one bench slot
  espfleet history --json | jq 'select(.outcome == \"failed\")'

Exit status: 0 the journal was read (stderr says so when no attempt matches); 1 there is no
journal (espfleetd has not flashed anything yet, or uses another --state-dir: pass --journal)
or it cannot be read; 2 bad arguments.")]
pub struct HistoryArgs {
    /// Only attempts on the board with this MAC (`84:f7:03:12:34:56`).
    #[arg(long, value_parser = parse_mac_arg)]
    pub mac: Option<[u8; 6]>,
    /// Only attempts on this bench slot (USB path, `1-1.3`).
    #[arg(long)]
    pub slot: Option<String>,
    /// Only the last N matching attempts.
    #[arg(long, short = 'n')]
    pub last: Option<usize>,
    /// Print the records as JSON lines, as stored.
    #[arg(long)]
    pub json: bool,
    /// The journal file.
    #[arg(
        long,
        env = "ESPFLEET_JOURNAL",
        default_value = "/var/lib/espfleet/journal.jsonl"
    )]
    pub journal: PathBuf,
}

fn parse_mac_arg(s: &str) -> Result<[u8; 6], String> {
    parse_mac(s).ok_or_else(|| {
        format!("`{s}` is not a MAC address (expected six hex bytes, e.g. 84:f7:03:12:34:56)")
    })
}

/// Prints the journal's records, oldest first.
#[allow(clippy::needless_pass_by_value)] // every subcommand's `run` takes its args by value
pub fn run(args: HistoryArgs, _global: &GlobalOpts) -> miette::Result<ExitCode> {
    if !args.journal.exists() {
        eprintln!(
            "no journal at {}: espfleetd has not recorded any flash attempt there yet (is it \
             installed and running? with another --state-dir, pass --journal PATH)",
            args.journal.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let contents = journal::read(&args.journal)?;
    if contents.torn_lines > 0 {
        tracing::warn!(
            "{}: skipped {} torn line(s) (an interrupted write)",
            args.journal.display(),
            contents.torn_lines
        );
    }
    let want_mac = args.mac.map(format_mac);
    let mut records: Vec<&Record> = contents
        .records
        .iter()
        .filter(|r| {
            want_mac
                .as_ref()
                .is_none_or(|m| r.mac.as_deref() == Some(m.as_str()))
        })
        .filter(|r| {
            args.slot
                .as_ref()
                .is_none_or(|s| r.slot.as_deref() == Some(s.as_str()))
        })
        .collect();
    if let Some(n) = args.last {
        records.drain(..records.len().saturating_sub(n));
    }
    let mut out = String::new();
    for r in &records {
        if args.json {
            out.push_str(&serde_json::to_string(r).map_err(|e| miette::miette!("{e}"))?);
        } else {
            out.push_str(&line(r));
        }
        out.push('\n');
    }
    print!("{out}");
    if records.is_empty() {
        if contents.records.is_empty() {
            eprintln!("{}: no flash attempts recorded yet", args.journal.display());
        } else {
            eprintln!(
                "no attempts match ({} recorded in {})",
                contents.records.len(),
                args.journal.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One readable line per attempt, in the daemon's log style.
fn line(r: &Record) -> String {
    let outcome = match r.outcome {
        Outcome::Flashed => format!(
            "flashed {}",
            crate::daemon::event_loop::human_bytes(r.bytes)
        ),
        Outcome::Verified => "verified (already up to date)".to_owned(),
        Outcome::Failed => format!(
            "FAILED (attempt {}): {}",
            r.attempt,
            r.error.as_deref().unwrap_or("?")
        ),
        Outcome::LeftAlone => format!("left alone: {}", r.error.as_deref().unwrap_or("?")),
    };
    let secs = std::time::Duration::from_millis(r.duration_ms).as_secs_f64();
    let took = if matches!(
        r.outcome,
        Outcome::Flashed | Outcome::Verified | Outcome::Failed
    ) {
        format!(" in {secs:.1} s")
    } else {
        String::new()
    };
    format!(
        "{}  slot {}  {} {}  {}  {outcome}{took}",
        r.time,
        r.slot.as_deref().unwrap_or(&r.port),
        r.chip.as_deref().unwrap_or("-"),
        r.mac.as_deref().unwrap_or("-"),
        r.manifest.as_deref().unwrap_or("-"),
    )
}
