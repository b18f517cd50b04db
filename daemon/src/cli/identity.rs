//! `espfleet identity list | show | export | revoke | export-private-key`: what the identity
//! store holds. Nothing here prints a private key; `export-private-key` writes one to a mode 0600
//! file, on purpose, and says so.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use espfleet_compiler::identity::Mac;
use espfleet_compiler::output::write_atomic;
use espfleet_identity::store::{IdentityRecord, Origin, State};

use super::GlobalOpts;
use super::build_for_mac::{open_store, parse_mac};

/// Arguments of `espfleet identity`.
#[derive(Debug, clap::Args)]
#[command(after_help = "The store is the SQLite file espfleetd allocates from \
(/var/lib/espfleet/identity.sqlite); run these as the service user so that the store keeps its \
owner: `sudo -u espfleet espfleet identity list`.\n\
Examples:\n  espfleet identity list\n  espfleet identity show 24:0a:c4:12:34:56\n  \
espfleet identity export --format csv --out fleet.csv\n  \
espfleet identity export --format json --state flashed\n  \
espfleet identity revoke 24:0a:c4:12:34:56 --reason \"board scrapped\"\n  \
espfleet identity --store ./bench.sqlite list")]
pub struct IdentityArgs {
    #[command(subcommand)]
    command: IdentityCommand,
    /// The identity store (a SQLite file) [default: $ESPFLEET_STATE_DIR/identity.sqlite, else
    /// /var/lib/espfleet/identity.sqlite].
    #[arg(long, global = true, env = "ESPFLEET_STORE", value_name = "PATH")]
    store: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum IdentityCommand {
    /// One line per board: MAC, serial, state, manifest, station, time, fingerprint.
    #[command(
        after_help = "Examples:\n  espfleet identity list\n  espfleet identity list --json | jq '.[] | select(.state == \"reserved\")'"
    )]
    List(ListArgs),
    /// Everything the store holds about one board (certificate included, key never).
    #[command(
        after_help = "Examples:\n  espfleet identity show 24:0a:c4:12:34:56\n  espfleet identity show 240ac4123456 --json"
    )]
    Show(ShowArgs),
    /// What a cloud bulk registration needs: MAC, serial, certificate PEM, fingerprint, time,
    /// station. Never keys.
    #[command(
        after_help = "Columns: mac, serial, state, certificate_pem, fingerprint (SHA-256 of the \
certificate DER, the AWS IoT certificate ID), created_at, station, manifest, origin, flashed_at \
(RFC 3339, UTC).\nExamples:\n  espfleet identity export --format csv --out fleet.csv\n  \
espfleet identity export --format json --state flashed > flashed.json"
    )]
    Export(ExportArgs),
    /// Revoke a board's identity: it is kept for the audit, refused for that board and never
    /// handed out again.
    #[command(
        after_help = "Revoke the certificate at your cloud or CA too: the store only stops \
handing it out.\nExamples:\n  espfleet identity revoke 24:0a:c4:12:34:56 --reason \"RMA 1234\""
    )]
    Revoke(RevokeArgs),
    /// Write one board's PRIVATE KEY to a file (mode 0600). A deliberate key export: nothing
    /// else ever prints a key.
    #[command(
        after_help = "The file must not exist yet. Keep it where only you can read it, and \
delete it when done.\nExamples:\n  espfleet identity export-private-key 24:0a:c4:12:34:56 --out /root/240ac4123456.key"
    )]
    ExportPrivateKey(KeyArgs),
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Print JSON (every record in full) instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// The board.
    #[arg(value_parser = parse_mac)]
    mac: Mac,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StateArg {
    Reserved,
    Flashed,
    Revoked,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum)]
    format: Format,
    /// Write to FILE (atomically) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Only boards in these states (repeat or comma-separate) [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    state: Vec<StateArg>,
}

#[derive(Debug, clap::Args)]
struct RevokeArgs {
    /// The board.
    #[arg(value_parser = parse_mac)]
    mac: Mac,
    /// Why (kept in the store).
    #[arg(long, default_value = "revoked by an operator")]
    reason: String,
}

#[derive(Debug, clap::Args)]
struct KeyArgs {
    /// The board.
    #[arg(value_parser = parse_mac)]
    mac: Mac,
    /// The file to create (mode 0600).
    #[arg(long, short, value_name = "FILE")]
    out: PathBuf,
}

fn state_matches(want: &[StateArg], s: State) -> bool {
    want.is_empty()
        || want.iter().any(|w| {
            matches!(
                (w, s),
                (StateArg::Reserved, State::Reserved)
                    | (StateArg::Flashed, State::Flashed)
                    | (StateArg::Revoked, State::Revoked)
            )
        })
}

fn origin_text(o: &Origin) -> String {
    match o {
        Origin::Minted => "minted".to_owned(),
        Origin::Pool(p) => format!("pool:{p}"),
    }
}

fn json(v: &impl serde::Serialize) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Runs `espfleet identity`.
#[allow(clippy::needless_pass_by_value)] // every subcommand's `run` takes its args by value
pub fn run(args: IdentityArgs, global: &GlobalOpts) -> miette::Result<ExitCode> {
    let store = open_store(args.store.as_deref())?;
    let mut stdout = std::io::stdout().lock();
    let io = |e: std::io::Error| miette::miette!(code = "espfleet::cli::write_failed", "{e}");
    match args.command {
        IdentityCommand::List(a) => {
            let all = store.identities()?;
            if a.json {
                write!(stdout, "{}", json(&all)).map_err(io)?;
            } else {
                for r in &all {
                    writeln!(
                        stdout,
                        "{}  {}  {:<8}  {}  {}  {}  {}",
                        r.mac,
                        r.serial,
                        r.state.as_str(),
                        r.manifest,
                        r.station,
                        r.created_at,
                        &r.fingerprint[..16]
                    )
                    .map_err(io)?;
                }
                if !global.quiet {
                    eprintln!(
                        "{} identit{}",
                        all.len(),
                        if all.len() == 1 { "y" } else { "ies" }
                    );
                }
            }
        }
        IdentityCommand::Show(a) => {
            let Some(r) = store.identity(a.mac)? else {
                return Err(espfleet_identity::store::StoreError::NotFound { mac: a.mac }.into());
            };
            if a.json {
                write!(stdout, "{}", json(&r)).map_err(io)?;
            } else {
                write!(stdout, "{}", show_text(&r)).map_err(io)?;
            }
        }
        IdentityCommand::Export(a) => {
            let rows: Vec<IdentityRecord> = store
                .identities()?
                .into_iter()
                .filter(|r| state_matches(&a.state, r.state))
                .collect();
            let text = match a.format {
                Format::Json => json(&rows.iter().map(export_row).collect::<Vec<_>>()),
                Format::Csv => export_csv(&rows)?,
            };
            match &a.out {
                Some(path) => {
                    write_atomic(path, text.as_bytes(), None).map_err(io)?;
                    if !global.quiet {
                        eprintln!(
                            "exported {} identit{} to {}",
                            rows.len(),
                            if rows.len() == 1 { "y" } else { "ies" },
                            path.display()
                        );
                    }
                }
                None => write!(stdout, "{text}").map_err(io)?,
            }
        }
        IdentityCommand::Revoke(a) => {
            let r = store.revoke(a.mac, &a.reason)?;
            writeln!(
                stdout,
                "revoked  {}  {}  (certificate {}); revoke the certificate at your cloud or CA too",
                r.mac, r.serial, r.fingerprint
            )
            .map_err(io)?;
        }
        IdentityCommand::ExportPrivateKey(a) => export_private_key(store.as_ref(), &a)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The deliberate key export: a new file, mode 0600, and a line on stderr saying what it is.
fn export_private_key(
    store: &dyn espfleet_identity::store::IdentityStore,
    a: &KeyArgs,
) -> miette::Result<()> {
    let Some(key) = store.private_key(a.mac)? else {
        return Err(espfleet_identity::store::StoreError::NotFound { mac: a.mac }.into());
    };
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let fail = |e: std::io::Error| {
        miette::miette!(
            code = "espfleet::cli::write_failed",
            help = "the key file must not exist yet; choose a new path",
            "{}: {e}",
            a.out.display()
        )
    };
    let mut f = o.open(&a.out).map_err(fail)?;
    f.write_all(key.expose().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(fail)?;
    eprintln!(
        "wrote the PRIVATE KEY of {} to {} (mode 0600): keep it safe, delete it when done",
        a.mac,
        a.out.display()
    );
    Ok(())
}

fn show_text(r: &IdentityRecord) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "mac          {}", r.mac);
    let _ = writeln!(s, "serial       {}", r.serial);
    let _ = writeln!(s, "state        {}", r.state.as_str());
    let _ = writeln!(s, "manifest     {}", r.manifest);
    let _ = writeln!(s, "origin       {}", origin_text(&r.origin));
    let _ = writeln!(s, "allocated    {} by {}", r.created_at, r.station);
    if let (Some(at), Some(by)) = (&r.flashed_at, &r.flashed_by) {
        let _ = writeln!(s, "flashed      {at} by {by}");
        for i in &r.images {
            let _ = writeln!(
                s,
                "  {:#09x}  {:>8}  {}  {}",
                i.offset, i.size, i.blake3, i.name
            );
        }
    }
    if let Some(at) = &r.revoked_at {
        let _ = writeln!(
            s,
            "revoked      {at}: {}",
            r.revoke_reason.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(s, "fingerprint  {} (SHA-256)", r.fingerprint);
    s.push_str(&r.certificate_pem);
    if !r.certificate_pem.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn export_row(r: &IdentityRecord) -> serde_json::Value {
    serde_json::json!({
        "mac": r.mac,
        "serial": r.serial,
        "state": r.state,
        "certificate_pem": r.certificate_pem,
        "fingerprint": r.fingerprint,
        "created_at": r.created_at,
        "station": r.station,
        "manifest": r.manifest,
        "origin": origin_text(&r.origin),
        "flashed_at": r.flashed_at,
    })
}

fn export_csv(rows: &[IdentityRecord]) -> miette::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| miette::miette!(code = "espfleet::cli::write_failed", "{e}");
    w.write_record([
        "mac",
        "serial",
        "state",
        "certificate_pem",
        "fingerprint",
        "created_at",
        "station",
        "manifest",
        "origin",
        "flashed_at",
    ])
    .map_err(fail)?;
    for r in rows {
        w.write_record([
            r.mac.to_string(),
            r.serial.clone(),
            r.state.as_str().to_owned(),
            r.certificate_pem.clone(),
            r.fingerprint.clone(),
            r.created_at.to_string(),
            r.station.clone(),
            r.manifest.clone(),
            origin_text(&r.origin),
            r.flashed_at.map(|t| t.to_string()).unwrap_or_default(),
        ])
        .map_err(fail)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| miette::miette!(code = "espfleet::cli::write_failed", "{e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
