//! The one way both binaries set up logging, with the filter that keeps flashed bytes out of
//! every log.
//!
//! espflash logs every command it writes, payload included, at debug level (`Writing command:
//! FlashData { data: [..] }` in its `Connection::write_command`), so at `-vv` or
//! `ESPFLEET_LOG=debug` the images went to the log byte for byte, private keys in `mfg_nvs`
//! with them, and through the daemon into the journal. [`init`] therefore drops every debug and
//! trace event from espflash, whatever `ESPFLEET_LOG` asks for; espflash's info, warnings and
//! errors still come through. espfleet's own code never logs image or key bytes.

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt as _, FilterFn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// How the log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The CLI: timestamps and targets, colour when stderr is a terminal.
    Cli {
        /// Colour the output.
        ansi: bool,
    },
    /// The daemon under systemd: journald adds timestamps; no colour, no targets.
    Daemon,
}

/// Whether an event may be logged at all: never espflash's debug and trace output, which
/// carries the bytes of every command.
pub fn may_log(meta: &Metadata<'_>) -> bool {
    let from_espflash = meta.target() == "espflash" || meta.target().starts_with("espflash::");
    !(from_espflash && *meta.level() > Level::INFO)
}

/// Installs the global subscriber: `filter` (from `ESPFLEET_LOG` or the verbosity flags) and
/// the [`may_log`] rule on top, lines to stderr. `log` records (espflash's) are routed into it.
pub fn init(filter: EnvFilter, style: Style) {
    let _ = subscriber(filter, style, std::io::stderr).try_init();
}

/// The subscriber [`init`] installs, writing to `writer` (tests capture it).
pub fn subscriber<W>(
    filter: EnvFilter,
    style: Style,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = filter.and(FilterFn::new(may_log));
    let layer = match style {
        Style::Cli { ansi } => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .boxed(),
        Style::Daemon => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .boxed(),
    };
    tracing_subscriber::registry().with(layer.with_filter(filter))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn espflash_debug_and_trace_never_reach_the_log_even_at_trace() {
        let out = Buffer::default();
        let sink = out.clone();
        let subscriber = subscriber(
            EnvFilter::new("trace,espflash=trace"),
            Style::Daemon,
            move || sink.clone(),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "espflash::connection", "Writing command: FlashData {{ data: [2d, 2d] }}");
            tracing::trace!(target: "espflash", "raw bytes");
            tracing::info!(target: "espflash::connection", "Staying in bootloader");
            tracing::debug!(target: "espfleet::flasher", "our own debug line");
            tracing::trace!(target: "espflashy", "a crate that only starts like espflash");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("Writing command"), "{text}");
        assert!(!text.contains("raw bytes"), "{text}");
        assert!(text.contains("Staying in bootloader"), "{text}");
        assert!(text.contains("our own debug line"), "{text}");
        assert!(
            text.contains("a crate that only starts like espflash"),
            "{text}"
        );
    }
}
