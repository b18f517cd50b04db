//! `espfleet build MANIFEST|DIR... --out DIR`: compile manifests — one device or a whole fleet —
//! into the images ESP-AT reads, through the content-addressed cache, in parallel, and check or
//! record every output hash in `espfleet.lock`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use espfleet_compiler::build::{self, Image, Jobs};
use espfleet_compiler::cache::{
    Cache, FileMeta, FileStamp, ImageMeta, JobEvent, Outcome, OutputStamp, Record,
};
use espfleet_compiler::manifest::{self, Plan};
use espfleet_compiler::output::write_atomic;
use rayon::prelude::*;

use super::GlobalOpts;

/// Arguments of `espfleet build`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each manifest's images go to OUT/<manifest name>/, laid out as ESP-AT's build \
folder (partition_table/partition-table.bin, at_customize.bin, customized_partitions/*.bin, \
flasher_args.json, download.config, factory/factory_<MODULE>.bin). Every file is written \
atomically (files holding private keys get mode 0600); files whose bytes did not change are \
left alone.\n\
A directory builds every *.kdl below it. A manifest that another manifest of the build extends \
is a base: it is checked through the manifests that extend it and not built on its own.\n\
Images come from the content-addressed cache when their inputs did not change (see \
`espfleet cache`).\n\
Lock file: building one directory (or with --lock FILE) records every output's blake3 in \
DIR/espfleet.lock (JSON, sorted). --locked refuses to write anything when a rebuild differs \
from the lock and prints the differences.\n\
Per-device builds (manifests with an identity section): --for-mac MAC... (or --macs-from FILE) \
allocates each board's identity from the identity store, the one espfleetd uses (a MAC that has \
one gets it back), and writes the images the daemon would flash on that board to \
OUT/<manifest name>/<mac hex>/ with identity.json (certificate, no key); see docs/identity.md.\n\
Examples:\n  espfleet build manifests/examples/wroom-32.kdl --out out/\n  \
espfleet build manifests/examples/fleet --out out/ --report out/report.json\n  \
espfleet build manifests/examples/fleet --locked\n  \
espfleet build fleet/sensor.kdl --for-mac 24:0a:c4:12:34:56 24:0a:c4:12:34:57 --out out/\n  \
espfleet build fleet/sensor.kdl --macs-from macs.csv --store /var/lib/espfleet/identity.sqlite"
)]
#[allow(clippy::struct_excessive_bools)] // independent switches, as clap defines them
pub struct BuildArgs {
    /// Manifest files (`.kdl`), or directories to search for them.
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifests: Vec<PathBuf>,
    /// Output directory; each manifest gets a subdirectory named after it.
    #[arg(long, short, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Parallel jobs (1 = build everything on one thread, in order). Default: one per CPU.
    #[arg(long, short, value_name = "N")]
    pub jobs: Option<usize>,
    /// Cache directory [default: $XDG_CACHE_HOME/espfleet or ~/.cache/espfleet].
    #[arg(long, value_name = "DIR", env = "ESPFLEET_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Build without reading or writing the cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Write a JSON report: per manifest, each image's path, offset, size and blake3.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Lock file [default: DIR/espfleet.lock when building one directory].
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
    /// Fail (writing nothing) when the outputs differ from the lock file, or it is missing.
    #[arg(long, conflicts_with = "no_lock")]
    pub locked: bool,
    /// Neither read nor write a lock file.
    #[arg(long)]
    pub no_lock: bool,
    /// Per-device builds (`--for-mac`), see `super::build_for_mac`.
    #[command(flatten)]
    pub device: super::build_for_mac::DeviceArgs,
}

/// One built manifest.
struct Built {
    file: PathBuf,
    name: String,
    /// What each image is, in output order.
    metas: Vec<ImageMeta>,
    /// The images' bytes: from the build, or `None` for a manifest taken from its record
    /// (then read from the cache only if its output directory needs writing).
    images: Option<Vec<Image>>,
    /// The record the images came from, when they did.
    record: Option<Record>,
}

/// A manifest after the first stage: up to date (its record), or resolved.
enum Loaded {
    /// Every input unchanged since the recorded build: the record, and the files read.
    Current {
        inputs: Vec<PathBuf>,
        record: Record,
    },
    /// Resolved (or failed to).
    Resolved(Result<(Plan, manifest::Diagnostics), manifest::Diagnostics>),
}

impl Loaded {
    fn inputs(&self) -> Vec<&Path> {
        match self {
            Loaded::Current { inputs, .. } => inputs.iter().map(PathBuf::as_path).collect(),
            Loaded::Resolved(Ok((plan, _))) => plan.files.0.keys().map(PathBuf::as_path).collect(),
            Loaded::Resolved(Err(_)) => Vec::new(),
        }
    }
}

/// Cache outcome counters, shared by the build threads.
#[derive(Default)]
struct Counters {
    hit: AtomicU64,
    miss: AtomicU64,
    corrupt: AtomicU64,
    uncached: AtomicU64,
    /// Manifests taken whole from their record.
    current: AtomicU64,
}

impl Counters {
    fn count(&self, e: &JobEvent) {
        let c = match e.outcome {
            Outcome::Hit => &self.hit,
            Outcome::Miss => &self.miss,
            Outcome::Corrupt => &self.corrupt,
            Outcome::Uncached => &self.uncached,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Builds every manifest; prints one line per manifest, diagnostics on stderr.
pub fn run(args: BuildArgs, global: &GlobalOpts) -> miette::Result<ExitCode> {
    if args.device.wanted() {
        return super::build_for_mac::run(&args, global);
    }
    let files = manifest::discover::discover(&args.manifests)
        .map_err(|e| miette::miette!(code = "espfleet::cli::path_unreadable", "{e}"))?;
    if files.is_empty() {
        return Err(miette::miette!(
            code = "espfleet::cli::no_manifests",
            help = "manifests are files ending in .kdl",
            "no manifests found"
        ));
    }
    let cache = if args.no_cache {
        None
    } else {
        let dir = args
            .cache_dir
            .clone()
            .or_else(Cache::default_dir)
            .ok_or_else(|| {
                miette::miette!(
                    code = "espfleet::cli::no_cache_dir",
                    help = "set HOME or XDG_CACHE_HOME, pass --cache-dir DIR, or build with --no-cache",
                    "no cache directory"
                )
            })?;
        Some(Cache::open(&dir)?)
    };
    let lock_path = if args.no_lock {
        None
    } else {
        args.lock
            .clone()
            .or_else(|| match args.manifests.as_slice() {
                [one] if one.is_dir() => Some(one.join("espfleet.lock")),
                _ => None,
            })
    };
    if args.locked && lock_path.is_none() {
        return Err(miette::miette!(
            code = "espfleet::cli::no_lock_file",
            help = "build one directory, or name the lock file with --lock FILE",
            "--locked needs a lock file"
        ));
    }
    let jobs = if args.jobs == Some(1) {
        Jobs::Sequential
    } else {
        Jobs::Parallel
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.unwrap_or(0))
        .build()
        .map_err(|e| miette::miette!(code = "espfleet::cli::threads", "{e}"))?;

    let progress = Progress::new(files.len() as u64, global.quiet);
    let counters = Counters::default();
    let on_event = |e: JobEvent| counters.count(&e);

    // Resolve every manifest (or take its images when nothing it read changed), then drop the
    // bases: files another manifest of the build extends.
    let load = |path: &PathBuf| {
        // A record does not keep warnings (an expired certificate is one as time passes):
        // --deny-warnings resolves every manifest.
        if let Some(c) = cache.as_ref().filter(|_| !global.deny_warnings) {
            if let Some(r) = c.record(path) {
                return Loaded::Current {
                    inputs: r.inputs.iter().map(|(p, _)| p.clone()).collect(),
                    record: r,
                };
            }
        }
        Loaded::Resolved(manifest::Diagnostics::deny_warnings(
            manifest::load(path),
            global.deny_warnings,
        ))
    };
    let loaded: Vec<_> = pool.install(|| match jobs {
        Jobs::Parallel => files.par_iter().map(load).collect(),
        Jobs::Sequential => files.iter().map(load).collect(),
    });
    let bases = bases(&files, &loaded);
    let mut failed = 0usize;
    let mut todo = Vec::new();
    let mut done = Vec::new();
    for (file, r) in files.iter().zip(loaded) {
        if bases.contains(file) {
            progress.inc();
            continue;
        }
        let r = match r {
            Loaded::Current { inputs: _, record } => {
                progress.inc();
                counters.current.fetch_add(1, Ordering::Relaxed);
                done.push(Built {
                    file: file.clone(),
                    name: record.name.clone(),
                    metas: record.images.clone(),
                    images: None,
                    record: Some(record),
                });
                continue;
            }
            Loaded::Resolved(r) => r,
        };
        match r {
            Ok((plan, warnings)) => {
                let clean = warnings.errors.is_empty();
                if !clean {
                    progress.suspend(|| eprintln!("{:?}", miette::Report::new(warnings)));
                }
                todo.push((file.clone(), plan, clean));
            }
            Err(diags) => {
                failed += 1;
                progress.suspend(|| eprintln!("{:?}", miette::Report::new(diags)));
                progress.inc();
            }
        }
    }

    let emit = |(file, plan, clean): (PathBuf, Plan, bool)| {
        let r = build::emit_keyed(&plan, jobs, cache.as_ref(), &on_event);
        progress.inc();
        r.map(|(images, keys)| {
            let record = Record::new(&plan.name, &plan.files, &keys, &images);
            // Warnings are not recorded: a manifest that has them resolves again next time.
            if let (Some(c), true) = (&cache, clean) {
                c.put_record(&file, &record);
            }
            Built {
                file,
                name: plan.name,
                metas: record.images,
                images: Some(images),
                record: None,
            }
        })
    };
    let results: Vec<_> = pool.install(|| match jobs {
        Jobs::Parallel => todo.into_par_iter().map(emit).collect(),
        Jobs::Sequential => todo.into_iter().map(emit).collect(),
    });
    progress.finish();
    let mut built = done;
    for r in results {
        match r {
            Ok(b) => built.push(b),
            Err(diags) => {
                failed += 1;
                eprintln!("{:?}", miette::Report::new(diags));
            }
        }
    }
    // Discovery order, whichever path a manifest took.
    let order: BTreeMap<&PathBuf, usize> = files.iter().enumerate().map(|(i, f)| (f, i)).collect();
    built.sort_by_key(|b| order[&b.file]);
    let mut names: BTreeMap<&str, &Path> = BTreeMap::new();
    for b in &built {
        if let Some(other) = names.insert(&b.name, &b.file) {
            eprintln!(
                "error: {} and {} are both named `{}` and would write the same directory",
                other.display(),
                b.file.display(),
                b.name
            );
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} manifest(s) failed",
            files.len() - bases.len()
        );
        return Ok(ExitCode::FAILURE);
    }

    let lock = Lock::of(&built);
    if args.locked {
        let path = lock_path.as_deref().expect("checked above");
        let old = Lock::read(path)?;
        let diff = old.diff(&lock);
        if !diff.is_empty() {
            eprintln!(
                "error: the build differs from {} ({} change(s)); nothing was written:",
                path.display(),
                diff.len()
            );
            for line in &diff {
                eprintln!("  {line}");
            }
            eprintln!(
                "help: if the change is intended, rebuild without --locked to update the lock file"
            );
            return Ok(ExitCode::FAILURE);
        }
    }

    let write_all = |b: &Built| write_changed(&args.out.join(&b.name), b, cache.as_ref());
    let written: Vec<std::io::Result<usize>> = pool.install(|| match jobs {
        Jobs::Parallel => built.par_iter().map(write_all).collect(),
        Jobs::Sequential => built.iter().map(write_all).collect(),
    });
    let mut changed_files = 0;
    for (b, w) in built.iter().zip(written) {
        let n = w.map_err(|e| {
            miette::miette!(
                code = "espfleet::cli::write_failed",
                "writing {}: {e}",
                args.out.join(&b.name).display()
            )
        })?;
        changed_files += n;
        if !global.quiet && built.len() <= 20 {
            println!(
                "built  {}  →  {}  ({} files)",
                b.file.display(),
                args.out.join(&b.name).display(),
                b.metas.len()
            );
        }
    }
    if let Some(report) = &args.report {
        write_atomic(report, report_json(&args.out, &built).as_bytes(), None).map_err(|e| {
            miette::miette!(
                code = "espfleet::cli::write_failed",
                "writing {}: {e}",
                report.display()
            )
        })?;
    }
    if let (Some(path), false) = (&lock_path, args.locked) {
        let old = Lock::read(path).ok();
        if old.as_ref() != Some(&lock) {
            if let Some(old) = &old {
                if !global.quiet {
                    eprintln!(
                        "{}: {} change(s) recorded",
                        path.display(),
                        old.diff(&lock).len()
                    );
                }
            }
            write_atomic(path, lock.to_json().as_bytes(), None).map_err(|e| {
                miette::miette!(
                    code = "espfleet::cli::write_failed",
                    "writing {}: {e}",
                    path.display()
                )
            })?;
        }
    }
    if !global.quiet {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut line = format!(
            "{} manifest(s) ({} unchanged), {} image(s): {} job(s) from cache, {} built",
            built.len(),
            load(&counters.current),
            built.iter().map(|b| b.metas.len()).sum::<usize>(),
            load(&counters.hit),
            load(&counters.miss) + load(&counters.corrupt) + load(&counters.uncached),
        );
        if load(&counters.corrupt) > 0 {
            line += &format!(
                " ({} corrupt cache entr(ies) discarded and rebuilt)",
                load(&counters.corrupt)
            );
        }
        eprintln!("{line}; {changed_files} file(s) written");
    }
    Ok(ExitCode::SUCCESS)
}

/// Discovered manifests that another successfully loaded manifest of the build extends (its
/// plan read the file).
fn bases(files: &[PathBuf], loaded: &[Loaded]) -> BTreeSet<PathBuf> {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut extended = BTreeSet::new();
    for (file, l) in files.iter().zip(loaded) {
        let own = canon(file);
        for path in l.inputs() {
            if path.extension().is_some_and(|e| e == "kdl") {
                let c = canon(path);
                if c != own {
                    extended.insert(c);
                }
            }
        }
    }
    files
        .iter()
        .filter(|f| extended.contains(&canon(f)))
        .cloned()
        .collect()
}

/// Brings output directory `dir` up to date with `b`'s images: writes the files that are
/// missing or differ (bytes or 0600 mode) and returns how many. With a cache, the directory's
/// stamp says which files are known to hold the right bytes without reading them; when every
/// file is, nothing is read at all (not even the cache entries of a manifest taken from its
/// record).
fn write_changed(dir: &Path, b: &Built, cache: Option<&Cache>) -> std::io::Result<usize> {
    let stamp = cache.and_then(|c| c.output_stamp(dir)).unwrap_or_default();
    let known = |m: &ImageMeta| {
        stamp.files.get(&m.path).is_some_and(|f| {
            f.blake3 == m.blake3
                && FileMeta::of(&dir.join(&m.path))
                    .is_some_and(|now| now == f.meta && (!m.secret || now.mode & 0o077 == 0))
        })
    };
    let stale: Vec<bool> = b.metas.iter().map(|m| !known(m)).collect();
    if !stale.contains(&true) {
        return Ok(0);
    }
    let loaded;
    let images: &[Image] = match (&b.images, &b.record, cache) {
        (Some(images), _, _) => images,
        (None, Some(record), Some(c)) => {
            // Entries removed since the record was made (`cache gc`, `cache clean`): build
            // the manifest again; its record is current, so the result is the same bytes.
            loaded = match c.record_images(record) {
                Some(images) => images,
                None => rebuild(&b.file, c)?,
            };
            &loaded
        }
        _ => unreachable!("images without bytes come from a record in a cache"),
    };
    let mut n = 0;
    let mut files = std::collections::BTreeMap::new();
    for ((img, meta), stale) in images.iter().zip(&b.metas).zip(stale) {
        let path = dir.join(&img.path);
        if stale && !same_file(&path, img) {
            write_atomic(&path, &img.bytes, img.secret.then_some(0o600))?;
            n += 1;
        }
        if let Some(now) = FileMeta::of(&path) {
            files.insert(
                img.path.clone(),
                FileStamp {
                    blake3: meta.blake3.clone(),
                    meta: now,
                },
            );
        }
    }
    if let Some(c) = cache {
        c.put_output_stamp(dir, &OutputStamp { files });
    }
    Ok(n)
}

/// Resolves and emits `file` again through `cache` (storing a fresh record).
fn rebuild(file: &Path, cache: &Cache) -> std::io::Result<Vec<Image>> {
    let failed =
        |d: manifest::Diagnostics| std::io::Error::other(format!("{:?}", miette::Report::new(d)));
    let (plan, warnings) = manifest::load(file).map_err(failed)?;
    let (images, keys) =
        build::emit_keyed(&plan, Jobs::Sequential, Some(cache), &|_| {}).map_err(failed)?;
    if warnings.errors.is_empty() {
        cache.put_record(file, &Record::new(&plan.name, &plan.files, &keys, &images));
    }
    Ok(images)
}

/// Whether `path` holds `img`'s bytes (and, for secrets, no group or other permissions).
fn same_file(path: &Path, img: &Image) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.len() != img.bytes.len() as u64 {
        return false;
    }
    #[cfg(unix)]
    if img.secret {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            return false;
        }
    }
    espfleet_compiler::input::read(path, espfleet_compiler::input::InputKind::IMAGE)
        .is_ok_and(|b| *b == *img.bytes)
}

fn report_json(out: &Path, built: &[Built]) -> String {
    let manifests: Vec<serde_json::Value> = built
        .iter()
        .map(|b| {
            let images: Vec<serde_json::Value> = b
                .metas
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "name": i.name,
                        "path": i.path,
                        "offset": i.offset,
                        "size": i.size,
                        "blake3": i.blake3,
                    })
                })
                .collect();
            serde_json::json!({
                "name": b.name,
                "manifest": b.file.display().to_string().replace('\\', "/"),
                "dir": out.join(&b.name).display().to_string().replace('\\', "/"),
                "images": images,
            })
        })
        .collect();
    let mut s =
        serde_json::to_string_pretty(&serde_json::json!({ "manifests": manifests })).expect("JSON");
    s.push('\n');
    s
}

/// `espfleet.lock`: the blake3 of every output file, by manifest name and image path.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Lock {
    /// Lock format version.
    version: u32,
    /// Manifest name → image path → blake3 hex.
    manifests: BTreeMap<String, BTreeMap<String, String>>,
}

impl Lock {
    fn of(built: &[Built]) -> Lock {
        Lock {
            version: 1,
            manifests: built
                .iter()
                .map(|b| {
                    let images = b
                        .metas
                        .iter()
                        .map(|i| (i.path.clone(), i.blake3.clone()))
                        .collect();
                    (b.name.clone(), images)
                })
                .collect(),
        }
    }

    fn read(path: &Path) -> miette::Result<Lock> {
        let bytes = espfleet_compiler::input::read(path, espfleet_compiler::input::InputKind::LOCK)
            .map_err(|e| {
                miette::miette!(
                    code = "espfleet::cli::lock_unreadable",
                    help = "build once without --locked to create it",
                    "{e}"
                )
            })?;
        let text = String::from_utf8_lossy(&bytes);
        serde_json::from_str(&text).map_err(|e| {
            miette::miette!(
                code = "espfleet::cli::lock_invalid",
                help = "restore it from version control, or delete it and build without --locked",
                "{}: {e}",
                path.display()
            )
        })
    }

    fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("JSON");
        s.push('\n');
        s
    }

    /// Readable differences from `self` (the lock) to `new` (this build), sorted.
    fn diff(&self, new: &Lock) -> Vec<String> {
        let mut out = Vec::new();
        let empty = BTreeMap::new();
        let names: BTreeSet<&String> = self.manifests.keys().chain(new.manifests.keys()).collect();
        for name in names {
            let (a, b) = (self.manifests.get(name), new.manifests.get(name));
            match (a, b) {
                (Some(_), None) => out.push(format!("- {name}: in the lock, not built")),
                (None, Some(_)) => out.push(format!("+ {name}: built, not in the lock")),
                _ => {}
            }
            let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
            if a.is_empty() || b.is_empty() {
                continue;
            }
            let paths: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for p in paths {
                match (a.get(p), b.get(p)) {
                    (Some(x), Some(y)) if x != y => out.push(format!(
                        "~ {name}/{p}: blake3 {} (lock) → {} (build)",
                        &x[..16.min(x.len())],
                        &y[..16]
                    )),
                    (Some(_), None) => out.push(format!("- {name}/{p}: in the lock, not built")),
                    (None, Some(_)) => out.push(format!("+ {name}/{p}: built, not in the lock")),
                    _ => {}
                }
            }
        }
        out
    }
}

/// A progress bar over manifests, drawn on stderr only when it is a terminal, not `--quiet`,
/// and the build takes more than a moment.
struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn new(len: u64, quiet: bool) -> Progress {
        use std::io::IsTerminal as _;
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(len),
            indicatif::ProgressDrawTarget::hidden(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} building [{bar:30}] {pos}/{len} manifests ({elapsed})",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        if !quiet && std::io::stderr().is_terminal() {
            let shown = bar.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(400));
                if !shown.is_finished() {
                    shown.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    shown.enable_steady_tick(Duration::from_millis(120));
                }
            });
        }
        Progress { bar }
    }

    fn inc(&self) {
        self.bar.inc(1);
    }

    fn suspend(&self, f: impl FnOnce()) {
        self.bar.suspend(f);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
