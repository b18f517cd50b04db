//! `espfleet build MANIFEST --for-mac MAC...`: offline per-device builds. Each board's identity
//! is allocated from the identity store (the same one the daemon uses; a MAC that has one gets
//! it back) and its images — exactly what the daemon would flash on that board — are written to
//! `OUT/<manifest name>/<mac hex>/`, replaced as a whole directory or not at all.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use espfleet_compiler::build::{Image, Jobs};
use espfleet_compiler::cache::Cache;
use espfleet_compiler::identity::{Mac, device_images};
use espfleet_compiler::manifest;
use espfleet_compiler::output::write_atomic;
use espfleet_identity::provision::Provisioner;
use espfleet_identity::store::{Allocation, IdentityStore, StoreError, StoreLocation};

use super::GlobalOpts;
use super::build::BuildArgs;

/// The per-device options of `espfleet build`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Per-device builds (manifests with an identity section)")]
pub struct DeviceArgs {
    /// Build these boards' images: allocate each MAC's identity from the store (a MAC that has
    /// one gets it back) and write OUT/<manifest name>/<mac hex>/.
    #[arg(long = "for-mac", value_name = "MAC", num_args = 1.., value_parser = parse_mac)]
    pub for_mac: Vec<Mac>,
    /// Read the MACs from FILE: one per line, or the first column of a CSV; blank lines, `#`
    /// comments and a `mac` header are skipped.
    #[arg(long, value_name = "FILE")]
    pub macs_from: Option<PathBuf>,
    /// The identity store (a SQLite file) [default: $ESPFLEET_STATE_DIR/identity.sqlite, else
    /// /var/lib/espfleet/identity.sqlite].
    #[arg(long, env = "ESPFLEET_STORE", value_name = "PATH")]
    pub store: Option<String>,
    /// This station's name in the store [default: $ESPFLEET_STATION, else the host name].
    #[arg(long, value_name = "NAME")]
    pub station: Option<String>,
}

impl DeviceArgs {
    /// Whether a per-device build was asked for.
    pub fn wanted(&self) -> bool {
        !self.for_mac.is_empty() || self.macs_from.is_some()
    }
}

/// `--for-mac` values.
pub fn parse_mac(s: &str) -> Result<Mac, String> {
    s.parse()
}

/// The store `--store` names (or the default one).
pub fn open_store(store: Option<&str>) -> miette::Result<Box<dyn IdentityStore>> {
    let location = match store {
        Some(s) => StoreLocation::parse(s)?,
        None => StoreLocation::default_location(),
    };
    Ok(location.open()?)
}

fn read_macs(path: &Path) -> miette::Result<Vec<Mac>> {
    let bytes =
        espfleet_compiler::input::read(path, espfleet_compiler::input::InputKind::TABLE_CSV)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut macs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let first = line
            .split([',', ';', '\t'])
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if first.is_empty() || first.starts_with('#') || first.eq_ignore_ascii_case("mac") {
            continue;
        }
        macs.push(first.parse::<Mac>().map_err(|e| {
            miette::miette!(
                code = "espfleet::cli::mac_invalid",
                help = "one MAC per line, e.g. 24:0a:c4:12:34:56",
                "{}:{}: {e}",
                path.display(),
                i + 1
            )
        })?);
    }
    Ok(macs)
}

/// Runs a per-device build (called by `espfleet build` when `--for-mac` or `--macs-from` is
/// given).
pub fn run(args: &BuildArgs, global: &GlobalOpts) -> miette::Result<ExitCode> {
    if args.locked || args.lock.is_some() || args.report.is_some() {
        return Err(miette::miette!(
            code = "espfleet::cli::usage",
            help = "per-device builds write OUT/<name>/<mac>/ without a lock file or report",
            "--lock, --locked and --report do not go with --for-mac"
        ));
    }
    let mut macs = args.device.for_mac.clone();
    if let Some(file) = &args.device.macs_from {
        macs.extend(read_macs(file)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    macs.retain(|m| seen.insert(*m));
    if macs.is_empty() {
        return Err(miette::miette!(
            code = "espfleet::cli::no_macs",
            help = "give --for-mac MAC... or a --macs-from file with MACs",
            "no MACs to build"
        ));
    }
    let files = manifest::discover::discover(&args.manifests)
        .map_err(|e| miette::miette!(code = "espfleet::cli::path_unreadable", "{e}"))?;
    let cache = if args.no_cache {
        None
    } else {
        args.cache_dir
            .clone()
            .or_else(Cache::default_dir)
            .map(|d| Cache::open(&d))
            .transpose()?
    };
    let jobs = if args.jobs == Some(1) {
        Jobs::Sequential
    } else {
        Jobs::Parallel
    };
    let store = open_store(args.device.store.as_deref())?;
    let station = args
        .device
        .station
        .clone()
        .unwrap_or_else(espfleet_identity::store::default_station);
    let cx = Session {
        store: store.as_ref(),
        station: &station,
        macs: &macs,
        jobs,
        cache: cache.as_ref(),
        out: &args.out,
        quiet: global.quiet,
    };
    let mut failed = 0usize;
    for file in &files {
        failed += cx.build_manifest(file)?;
    }
    if failed > 0 {
        eprintln!("{failed} failure(s)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// What every manifest of one `build --for-mac` run shares.
struct Session<'a> {
    store: &'a dyn IdentityStore,
    station: &'a str,
    macs: &'a [Mac],
    jobs: Jobs,
    cache: Option<&'a Cache>,
    out: &'a Path,
    quiet: bool,
}

impl Session<'_> {
    /// Allocates and builds every MAC for the manifest `file`; returns how many failed.
    fn build_manifest(&self, file: &Path) -> miette::Result<usize> {
        let mut failed = 0usize;
        let plan = match manifest::load(file) {
            Ok((plan, warnings)) => {
                if !warnings.errors.is_empty() {
                    eprintln!("{:?}", miette::Report::new(warnings));
                }
                plan
            }
            Err(diags) => {
                eprintln!("{:?}", miette::Report::new(diags));
                return Ok(1);
            }
        };
        let prov = match Provisioner::prepare(&plan, self.store) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{:?}", miette::Report::new(e));
                return Ok(1);
            }
        };
        for w in &prov.warnings {
            tracing::warn!("{}: {w}", file.display());
        }
        for (mac, result) in allocate(&prov, self.store, self.macs, self.station) {
            let alloc = match result {
                Ok(a) => a,
                Err(e) => {
                    eprintln!(
                        "{:?}",
                        miette::Report::new(e).wrap_err(format!("{mac}: left unbuilt"))
                    );
                    failed += 1;
                    continue;
                }
            };
            let device = alloc.device();
            let images = match device_images(&plan, &device, self.jobs, self.cache, &|_| {}) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("{:?}", miette::Report::new(e));
                    failed += 1;
                    continue;
                }
            };
            let dir = self.out.join(&plan.name).join(mac.hex());
            let written = write_device_dir(&dir, &images, &identity_json(&alloc)).map_err(|e| {
                miette::miette!(
                    code = "espfleet::cli::write_failed",
                    "writing {}: {e}",
                    dir.display()
                )
            })?;
            if !self.quiet {
                println!(
                    "built  {}  {}  {}  →  {}  ({} files, {}{})",
                    file.display(),
                    mac,
                    alloc.record.serial,
                    dir.display(),
                    images.len() + 1,
                    if alloc.created {
                        "new identity"
                    } else {
                        "existing identity"
                    },
                    if written { "" } else { ", unchanged" }
                );
            }
        }
        if let Ok(Some((st, low))) = prov.pool_status(self.store) {
            let name = prov.pool_name().unwrap_or_default();
            if low {
                tracing::warn!("pool `{name}`: {} of {} pairs left", st.remaining, st.total);
            } else {
                tracing::info!("pool `{name}`: {} of {} pairs left", st.remaining, st.total);
            }
        }
        Ok(failed)
    }
}

/// Allocates every MAC in one transaction (one durable commit); when the pool cannot serve all
/// of them, board by board, so that those it can serve are built.
fn allocate(
    prov: &Provisioner,
    store: &dyn IdentityStore,
    macs: &[Mac],
    station: &str,
) -> Vec<(Mac, Result<Allocation, StoreError>)> {
    match prov.allocate_many(store, macs, station) {
        Ok(all) => macs.iter().copied().zip(all.into_iter().map(Ok)).collect(),
        Err(StoreError::PoolExhausted { .. } | StoreError::Revoked { .. }) => macs
            .iter()
            .map(|m| (*m, prov.allocate(store, *m, station)))
            .collect(),
        Err(e) => {
            let msg = e.to_string();
            let mut out = vec![(macs[0], Err(e))];
            out.extend(
                macs[1..]
                    .iter()
                    .map(|m| (*m, Err(StoreError::Backend(msg.clone())))),
            );
            out
        }
    }
}

/// The public part of a board's identity, written beside its images (no key).
fn identity_json(a: &Allocation) -> Vec<u8> {
    let r = &a.record;
    let mut s = serde_json::to_string_pretty(&serde_json::json!({
        "mac": r.mac,
        "serial": r.serial,
        "manifest": r.manifest,
        "fingerprint": r.fingerprint,
        "certificate_pem": r.certificate_pem,
        "origin": r.origin,
    }))
    .unwrap_or_default();
    s.push('\n');
    s.into_bytes()
}

/// Whether `dir` holds exactly these files with these bytes (and secret files mode 0600).
fn holds(dir: &Path, files: &[(String, &[u8], bool)]) -> bool {
    let mut on_disk = Vec::new();
    if walk(dir, dir, &mut on_disk).is_err() {
        return false;
    }
    on_disk.sort();
    let mut want: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    want.sort_unstable();
    if on_disk != want {
        return false;
    }
    files.iter().all(|(rel, bytes, secret)| {
        let p = dir.join(rel);
        #[cfg(unix)]
        if *secret {
            use std::os::unix::fs::PermissionsExt as _;
            if std::fs::metadata(&p).map_or(true, |m| m.permissions().mode() & 0o077 != 0) {
                return false;
            }
        }
        let _ = secret;
        std::fs::read(&p).is_ok_and(|b| b == *bytes)
    })
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            walk(root, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Replaces `dir` with the images and `identity.json` as a whole: written into a temporary
/// directory beside it, then swapped in with one rename (Linux `RENAME_EXCHANGE` when `dir`
/// exists). Returns false when `dir` already held exactly these bytes (nothing written).
fn write_device_dir(dir: &Path, images: &[Image], identity: &[u8]) -> std::io::Result<bool> {
    let mut files: Vec<(String, &[u8], bool)> = images
        .iter()
        .map(|i| (i.path.clone(), &i.bytes[..], i.secret))
        .collect();
    files.push(("identity.json".to_owned(), identity, false));
    if holds(dir, &files) {
        return Ok(false);
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs_err::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".espfleet-device-")
        .tempdir_in(parent)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // tempdir makes 0700; a device directory is an ordinary output directory.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    for (rel, bytes, secret) in &files {
        write_atomic(&tmp.path().join(rel), bytes, secret.then_some(0o600))?;
    }
    if dir.exists() {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            tmp.path(),
            rustix::fs::CWD,
            dir,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(std::io::Error::from)?;
        // `tmp` now holds the old directory; dropping it removes it.
    } else {
        let kept = tmp.keep();
        fs_err::rename(&kept, dir)?;
    }
    Ok(true)
}
