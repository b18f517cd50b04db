//! `espfleet status`: ask the running daemon what each port is doing.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use super::GlobalOpts;
use crate::daemon::status;

/// Arguments of `espfleet status`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Asks espfleetd over its Unix socket (mode 0660: root and the espfleet group).

Examples:
  espfleet status
  espfleet status --json | jq '.ports[] | select(.state == \"flashing\")'
  espfleet status --socket /tmp/espfleet.sock      # a daemon started with --socket

With --json the answer always has \"running\": true and the daemon's pid, manifests and ports;
when no daemon answers it is {\"running\": false, \"socket\": ..., \"error\": ...}.

Exit status: 0 the daemon answered; 1 no daemon answered (not running, or no permission on the
socket); 2 bad arguments.")]
pub struct StatusArgs {
    /// Print the daemon's answer as JSON.
    #[arg(long)]
    pub json: bool,
    /// The daemon's status socket.
    #[arg(
        long,
        env = "ESPFLEET_STATUS_SOCKET",
        default_value = "/run/espfleet/status.sock"
    )]
    pub socket: PathBuf,
}

/// Prints the daemon's manifests and ports.
#[allow(clippy::needless_pass_by_value)] // every subcommand's `run` takes its args by value
pub fn run(args: StatusArgs, _global: &GlobalOpts) -> miette::Result<ExitCode> {
    let snap = match status::query(&args.socket) {
        Ok(snap) => snap,
        Err(e) if args.json => {
            let down = serde_json::json!({
                "running": false,
                "socket": args.socket,
                "error": e.to_string(),
            });
            println!("{down:#}");
            eprintln!("{:?}", miette::Report::new(e));
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        // The same bytes the bench page's `GET /api/status` serves.
        let _ = std::io::Write::write_all(
            &mut std::io::stdout().lock(),
            status::to_json(&snap).as_bytes(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!("espfleetd (pid {})\n\nmanifests:\n", snap.pid);
    if snap.manifests.is_empty() {
        out.push_str("  (none)\n");
    }
    for m in &snap.manifests {
        let state = match (&m.error, m.in_force) {
            (None, _) => "ok".to_owned(),
            (Some(_), true) => "BROKEN, last good version in force".to_owned(),
            (Some(_), false) => "BROKEN, not in force".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {:<28} {:<20} {state}",
            m.file,
            m.name.as_deref().unwrap_or("-")
        );
    }
    out.push_str("\nports:\n");
    if snap.ports.is_empty() {
        out.push_str("  (none)\n");
    }
    for p in &snap.ports {
        let progress = if p.total > 0 && p.state == "flashing" {
            format!(" {:>3}%", p.done * 100 / p.total)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  slot {:<10} {:<14} {:<8} {:<17} {:<24} {}{progress}{}",
            p.slot,
            p.port,
            p.chip.as_deref().unwrap_or("-"),
            p.mac.as_deref().unwrap_or("-"),
            p.manifest.as_deref().unwrap_or("-"),
            p.state,
            p.detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default(),
        );
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
