//! `espfleet check [--as USER] MANIFEST...`: validate manifests and print every problem at once;
//! with `--as`, also whether USER (the daemon's service user) can read every file they use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use espfleet_compiler::manifest;

use crate::daemon::access::{self, Account, Denial, Need};

use super::GlobalOpts;

/// Arguments of `espfleet check`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  espfleet check manifests/examples/ fleet/bench-01.kdl
  # Before enabling espfleetd: can the service user read every file the manifests use?
  sudo espfleet check --as espfleet /etc/espfleet/manifests

With --as USER, every manifest, every file it references (certificates, keys, firmware, bases)
and the directories on the way are also checked for USER: read permission from the mode bits,
owner and groups (ACLs are not evaluated), and files under /home, /root, /run/user (hidden by
the unit's ProtectHome=yes) or /tmp, /var/tmp (PrivateTmp=yes) count as unreadable. To let the
service read a key without making it world-readable:
  chgrp espfleet KEY && chmod 0640 KEY      (and g+x on the directories above it)

  # In CI: an expiring certificate (a warning) fails the job
  espfleet check --deny-warnings fleet/

Exit status: 0 when every manifest is valid (warnings allowed, unless --deny-warnings) and, with
--as, readable by USER; 1 otherwise; 2 bad arguments.")]
pub struct CheckArgs {
    /// Manifest files (`.kdl`), or directories to search for them.
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
    /// Also check that USER (the service user, `espfleet`) can read every file the manifests
    /// use.
    #[arg(long = "as", value_name = "USER")]
    pub as_user: Option<String>,
}

/// Validates every manifest; prints one `ok` line per valid manifest on stdout and the
/// diagnostics of the others on stderr.
#[allow(clippy::needless_pass_by_value)] // the shared dispatch signature
pub fn run(args: CheckArgs, global: &GlobalOpts) -> miette::Result<ExitCode> {
    let account = args.as_user.as_deref().map(Account::lookup).transpose()?;
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
    let mut unreadable: BTreeMap<PathBuf, Denial> = BTreeMap::new();
    if let Some(account) = &account {
        for dir in listed_dirs(&args.manifests, &files) {
            if let Err(d) = access::check(account, &dir, Need::List) {
                unreadable.insert(dir, d);
            }
        }
    }
    for path in &files {
        match manifest::Diagnostics::deny_warnings(manifest::load(path), global.deny_warnings) {
            Ok((plan, warnings)) => {
                if let Some(account) = &account {
                    for file in std::iter::once(path).chain(plan.files.0.keys()) {
                        if let Err(d) = access::check(account, file, Need::Read) {
                            unreadable.insert(file.clone(), d);
                        }
                    }
                }
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
    if let Some(account) = &account {
        for (file, why) in &unreadable {
            eprintln!("{} cannot read {}: {why}", account.name, file.display());
        }
        if unreadable.is_empty() {
            if !global.quiet {
                println!("{} can read every file these manifests use", account.name);
            }
        } else {
            eprintln!(
                "{} file(s) or folder(s) are unreadable for {}; give the group access without \
                 making them world-readable: chgrp {} FILE && chmod 0640 FILE (directories: \
                 chgrp {} DIR && chmod 0750 DIR), and keep fleet folders out of /home and /tmp",
                unreadable.len(),
                account.name,
                account.name,
                account.name
            );
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} manifest(s) have errors", files.len());
        Ok(ExitCode::FAILURE)
    } else if !unreadable.is_empty() {
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// The directories the daemon lists to find the manifests: each argument that is a directory
/// and every directory between it and a manifest found in it.
fn listed_dirs(args: &[PathBuf], files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for root in args.iter().filter(|a| a.is_dir()) {
        dirs.insert(root.clone());
        for file in files.iter().filter(|f| f.starts_with(root)) {
            for dir in file.ancestors().skip(1) {
                if !dir.starts_with(root) || dir == root {
                    break;
                }
                dirs.insert(dir.to_owned());
            }
        }
    }
    dirs
}
