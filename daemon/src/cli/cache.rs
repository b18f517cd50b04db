//! `espfleet cache stats|gc|clean`: look after the content-addressed image cache.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use espfleet_compiler::cache::Cache;

use super::GlobalOpts;

/// Arguments of `espfleet cache`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The cache holds the images of earlier builds, keyed by the blake3 hash of \
their inputs; it is safe to delete at any time (`espfleet cache clean`). Directory: --cache-dir, \
else $ESPFLEET_CACHE_DIR, else $XDG_CACHE_HOME/espfleet, else ~/.cache/espfleet.

Examples:
  espfleet cache stats
  espfleet cache gc --max-age-days 14 --max-size 2G
  espfleet cache clean --cache-dir /var/cache/espfleet      # the daemon's cache

Exit status: 0 done; 1 the cache could not be read or changed; 2 bad arguments."
)]
pub struct CacheArgs {
    /// Cache directory.
    #[arg(long, global = true, value_name = "DIR", env = "ESPFLEET_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Print the number of entries and bytes.
    Stats,
    /// Remove entries not used for DAYS days, then the least recently used beyond --max-size.
    Gc {
        /// Remove entries not used for this many days.
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        max_age_days: u64,
        /// Then remove the least recently used entries until the cache is at most this big
        /// (bytes; suffixes K, M, G are powers of 1024).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
    },
    /// Remove every entry.
    Clean,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}` is not a size (examples: 500M, 2G, 1048576)"))
}

/// Runs the cache subcommand.
pub fn run(args: CacheArgs, _global: &GlobalOpts) -> miette::Result<ExitCode> {
    let dir = args.cache_dir.or_else(Cache::default_dir).ok_or_else(|| {
        miette::miette!(
            code = "espfleet::cli::no_cache_dir",
            help = "set HOME or XDG_CACHE_HOME, or pass --cache-dir DIR",
            "no cache directory"
        )
    })?;
    let cache = Cache::open(&dir)?;
    match args.action {
        Action::Stats => {
            let s = cache.stats()?;
            println!(
                "{}: {} entries, {} bytes",
                dir.display(),
                s.entries,
                s.bytes
            );
        }
        Action::Gc {
            max_age_days,
            max_size,
        } => {
            let age = Duration::from_secs(max_age_days.saturating_mul(86_400));
            let removed = cache.gc(Some(age), max_size)?;
            let left = cache.stats()?;
            println!(
                "removed {} entries ({} bytes); {} entries, {} bytes left",
                removed.entries, removed.bytes, left.entries, left.bytes
            );
        }
        Action::Clean => {
            let removed = cache.clean()?;
            println!(
                "removed {} entries ({} bytes)",
                removed.entries, removed.bytes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
