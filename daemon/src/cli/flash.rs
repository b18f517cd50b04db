//! `espfleet flash MANIFEST --port PORT` and `espfleet flash --image ADDR=FILE... --chip C --port PORT`

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use espfleet_compiler::image::{FlashImage, Segment};
use espfleet_compiler::target::{Chip, FlashFreq, FlashMode, FlashSettings, FlashSize};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use miette::Diagnostic;

use super::GlobalOpts;
use crate::flasher::{
    self, After, Before, FlashEvent, FlashOptions, FlashReport, MacAddress, PartOutcome, Port,
};

/// Arguments of `espfleet flash`.
#[derive(Debug, clap::Args)]
#[allow(clippy::struct_excessive_bools)] // command-line switches, each its own flag
#[command(
    after_help = "Examples:\n  espfleet flash manifests/examples/wroom-32.kdl --port /dev/ttyUSB0\n  \
espfleet flash --chip esp32c3 --port /dev/ttyACM0 --image 0x0=bootloader.bin --image 0x8000=partition-table.bin \
--image 0x10000=app.bin\n  espfleet flash board-0042.kdl --port /dev/ttyUSB0 --no-stub --after no-reset\n\n\
Parts whose flash region already holds the same bytes are skipped (MD5 compare). A manifest whose \
`match` nodes name MACs is only written to one of those boards (`--ignore-match` overrides).\n\
Exit status: 0 when every part is on the board and verified, 1 when flashing failed (the message \
says what the board holds), 2 for bad arguments."
)]
pub struct FlashArgs {
    /// Manifest to build and flash (its images are built in memory, as `espfleet build` would). Omit it
    /// when giving parts with --image.
    #[arg(
        value_name = "MANIFEST",
        required_unless_present = "image",
        conflicts_with = "image"
    )]
    pub manifest: Option<PathBuf>,
    /// Serial port of the board (`/dev/ttyUSB0`, `/dev/serial/by-id/...`).
    #[arg(long, short, value_name = "PORT", env = "ESPFLEET_PORT")]
    pub port: PathBuf,
    /// Write FILE at flash offset ADDR (hex `0x...` or decimal); repeat for each part.
    #[arg(long, value_name = "ADDR=FILE", value_parser = parse_image_arg, requires = "chip")]
    pub image: Vec<(u32, PathBuf)>,
    /// Chip the --image parts are for (the board must be this chip).
    #[arg(long, value_name = "CHIP")]
    pub chip: Option<Chip>,
    /// Minimum flash size the --image parts need (default: the smallest size that holds them).
    #[arg(long, value_name = "SIZE", value_parser = parse_flash_size, requires = "image")]
    pub flash_size: Option<FlashSize>,
    /// Transfer baud rate (the connect itself runs at 115200).
    #[arg(long, short, default_value_t = 460_800)]
    pub baud: u32,
    /// Write through the ROM loader instead of uploading the flasher stub (slower, uncompressed).
    #[arg(long)]
    pub no_stub: bool,
    /// Reset before connecting. `auto`: DTR/RTS (or USB Serial/JTAG) when the port has modem
    /// lines, none otherwise.
    #[arg(long, value_enum, default_value_t = BeforeArg::Auto)]
    pub before: BeforeArg,
    /// Reset after flashing. `auto`: hard reset when the port has modem lines, else no reset.
    #[arg(long, value_enum, default_value_t = AfterArg::Auto)]
    pub after: AfterArg,
    /// Refuse a board whose factory MAC is not this one.
    #[arg(long, value_name = "MAC")]
    pub expect_mac: Option<MacAddress>,
    /// Flash even if the board's MAC is not one the manifest's `match mac=` names (by default
    /// such a board is refused before anything is written: the images may carry another board's
    /// certificate and key).
    #[arg(long, requires = "manifest")]
    pub ignore_match: bool,
    /// Write every part even if the board already holds it.
    #[arg(long)]
    pub force: bool,
    /// Print exactly one JSON line with the result on stdout (also on failure).
    #[arg(long)]
    pub json: bool,
}

/// `--before` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BeforeArg {
    /// Reset if the port can.
    Auto,
    /// DTR/RTS reset into download mode (USB Serial/JTAG sequence for 303a:1001).
    DefaultReset,
    /// USB Serial/JTAG reset sequence.
    UsbReset,
    /// No reset: the chip is already in download mode.
    NoReset,
}

/// `--after` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AfterArg {
    /// Hard reset if the port can, otherwise stay in the bootloader.
    Auto,
    /// Reset so the new firmware runs.
    HardReset,
    /// Stay in the ROM bootloader.
    NoReset,
    /// Stay in the flasher stub.
    NoResetNoStub,
    /// RTC watchdog reset (ESP32-C3 USB Serial/JTAG).
    WatchdogReset,
}

fn parse_image_arg(s: &str) -> Result<(u32, PathBuf), String> {
    let (addr, file) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected ADDR=FILE, e.g. 0x10000=app.bin"))?;
    let addr = addr.trim();
    let parsed = match addr.strip_prefix("0x").or_else(|| addr.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => addr.parse(),
    };
    let offset = parsed
        .map_err(|_| format!("`{addr}` is not a flash offset (use hex like 0x10000 or decimal)"))?;
    if file.is_empty() {
        return Err(format!("`{s}`: the file name is missing"));
    }
    Ok((offset, PathBuf::from(file)))
}

fn parse_flash_size(s: &str) -> Result<FlashSize, String> {
    FlashSize::parse(s)
        .ok_or_else(|| format!("unknown flash size `{s}` (expected 1MB, 2MB, 4MB, 8MB, 16MB, ...)"))
}

/// Error for `--image` inputs.
#[derive(Debug, thiserror::Error, Diagnostic)]
enum FlashInputError {
    #[error("cannot read part file {}", path.display())]
    #[diagnostic(
        code(espfleet::flash::part_unreadable),
        help("check the path given with --image")
    )]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("part file {} is empty", path.display())]
    #[diagnostic(
        code(espfleet::flash::part_empty),
        help("an empty part writes nothing; drop it from the command")
    )]
    Empty { path: PathBuf },
    #[error("parts {} and {} overlap", first.display(), second.display())]
    #[diagnostic(
        code(espfleet::flash::parts_overlap),
        help("check the ADDR of each --image")
    )]
    Overlap { first: PathBuf, second: PathBuf },
    #[error("the parts end at {end:#x}, beyond the largest flash ({max} bytes)")]
    #[diagnostic(
        code(espfleet::flash::parts_too_large),
        help("check the ADDR of each --image")
    )]
    TooLarge { end: u64, max: u32 },
}

/// Builds the image from `--image` arguments: parts sorted by offset, named after their files.
fn image_from_parts(
    chip: Chip,
    parts: &[(u32, PathBuf)],
    size: Option<FlashSize>,
) -> miette::Result<FlashImage> {
    let mut sorted: Vec<&(u32, PathBuf)> = parts.iter().collect();
    sorted.sort_by_key(|(offset, _)| *offset);
    let mut segments: Vec<Segment> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, (offset, path)) in sorted.iter().enumerate() {
        let data = espfleet_compiler::input::read(path, espfleet_compiler::input::InputKind::IMAGE)
            .map_err(|e| FlashInputError::Unreadable {
                path: path.clone(),
                source: e.into_io_error(),
            })?;
        if data.is_empty() {
            return Err(FlashInputError::Empty { path: path.clone() }.into());
        }
        if let Some(prev) = segments.last()
            && prev.end() > u64::from(*offset)
        {
            return Err(FlashInputError::Overlap {
                first: sorted[i - 1].1.clone(),
                second: path.clone(),
            }
            .into());
        }
        let stem = path
            .file_stem()
            .map_or_else(|| "part".to_owned(), |s| s.to_string_lossy().into_owned());
        let n = names.entry(stem.clone()).or_insert(0);
        *n += 1;
        let name = if *n == 1 { stem } else { format!("{stem}#{n}") };
        segments.push(Segment {
            name,
            offset: *offset,
            data: Arc::from(data),
        });
    }
    let end = segments.last().map_or(0, Segment::end);
    let size = match size {
        Some(s) => s,
        None => FlashSize::KNOWN
            .iter()
            .find(|&&b| u64::from(b) >= end)
            .and_then(|&b| FlashSize::from_bytes(b))
            .ok_or(FlashInputError::TooLarge {
                end,
                max: FlashSize::KNOWN[FlashSize::KNOWN.len() - 1],
            })?,
    };
    // Mode and frequency are not used by the flasher (it writes the bytes as they are).
    Ok(FlashImage {
        chip,
        flash: FlashSettings {
            mode: FlashMode::Dio,
            freq: FlashFreq::F40m,
            size,
        },
        segments,
    })
}

/// The image of a manifest: resolve it and emit its images (as `espfleet build` does), keeping
/// the ones with a flash offset. Warnings are printed; errors stop here, before any port is
/// opened.
fn image_from_manifest(
    path: &Path,
    quiet: bool,
) -> miette::Result<(FlashImage, Vec<espfleet_compiler::device_match::MatchRule>)> {
    let (plan, warnings) = espfleet_compiler::manifest::load(path).map_err(miette::Report::new)?;
    if !warnings.errors.is_empty() && !quiet {
        eprintln!("{:?}", miette::Report::new(warnings));
    }
    let images = espfleet_compiler::build::emit(&plan, espfleet_compiler::build::Jobs::Parallel)
        .map_err(miette::Report::new)?;
    Ok((
        espfleet_compiler::build::flash_image(&plan, &images),
        plan.matches.clone(),
    ))
}

/// Runs `espfleet flash`.
pub fn run(args: FlashArgs, global: &GlobalOpts) -> miette::Result<ExitCode> {
    let image = match (args.manifest, args.chip) {
        (Some(manifest), _) => image_from_manifest(&manifest, global.quiet),
        (None, Some(chip)) => {
            image_from_parts(chip, &args.image, args.flash_size).map(|i| (i, Vec::new()))
        }
        (None, None) => Err(miette::miette!("--chip is required with --image")),
    };
    let (image, match_rules) = match image {
        Ok(image) => image,
        Err(report) => {
            if args.json {
                println!("{}", failure_json(&report, None));
            }
            return Err(report);
        }
    };
    let opts = FlashOptions {
        baud: args.baud,
        use_stub: !args.no_stub,
        before: match args.before {
            BeforeArg::Auto => Before::Auto,
            BeforeArg::DefaultReset => Before::DefaultReset,
            BeforeArg::UsbReset => Before::UsbReset,
            BeforeArg::NoReset => Before::NoReset,
        },
        after: match args.after {
            AfterArg::Auto => After::Auto,
            AfterArg::HardReset => After::HardReset,
            AfterArg::NoReset => After::NoReset,
            AfterArg::NoResetNoStub => After::NoResetNoStub,
            AfterArg::WatchdogReset => After::WatchdogReset,
        },
        expected_mac: args.expect_mac,
        match_rules: if args.ignore_match {
            Vec::new()
        } else {
            match_rules
        },
        skip_unchanged: !args.force,
    };
    let port = Port::new(&args.port);
    let show_bars = !global.quiet && std::io::stderr().is_terminal();
    let mut ui = Bars::new(&image, show_bars);
    let result = flasher::flash(&port, &image, &opts, &mut |ev| ui.event(&ev));
    ui.clear();
    match result {
        Ok(report) => {
            if args.json {
                println!("{}", success_json(&report));
            } else if !global.quiet {
                print_summary(&report);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let state = e.board_state();
            let report = miette::Report::new(e);
            if args.json {
                println!("{}", failure_json(&report, Some(&state)));
            }
            Err(report)
        }
    }
}

fn success_json(r: &FlashReport) -> String {
    let parts: Vec<serde_json::Value> = r
        .parts
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "offset": format!("{:#x}", p.offset),
                "size": p.size,
                "outcome": p.outcome,
            })
        })
        .collect();
    serde_json::json!({
        "ok": true,
        "port": r.port,
        "chip": r.chip,
        "mac": r.mac,
        "flash_size": r.flash_size,
        "stub": r.stub,
        "baud": r.baud,
        "parts": parts,
        "bytes_written": r.bytes_written,
        "bytes_total": r.bytes_total,
        "duration_s": (r.duration.as_secs_f64() * 1000.0).round() / 1000.0,
    })
    .to_string()
}

fn failure_json(report: &miette::Report, state: Option<&flasher::BoardState>) -> String {
    serde_json::json!({
        "ok": false,
        "error": {
            "code": report.code().map(|c| c.to_string()),
            "message": report.to_string(),
            "help": report.help().map(|h| h.to_string()),
        },
        "board": state,
    })
    .to_string()
}

fn print_summary(r: &FlashReport) {
    for p in &r.parts {
        let what = match p.outcome {
            PartOutcome::Written => "written",
            PartOutcome::Skipped => "unchanged, skipped",
        };
        println!(
            "  {:#08x}  {:<20} {:>9} bytes  {what}",
            p.offset, p.name, p.size
        );
    }
    let written = r
        .parts
        .iter()
        .filter(|p| p.outcome == PartOutcome::Written)
        .count();
    println!(
        "flashed {} ({}) on {}: {written} of {} parts written ({} bytes), in {:.1} s",
        r.chip,
        r.mac,
        r.port.display(),
        r.parts.len(),
        r.bytes_written,
        r.duration.as_secs_f64()
    );
}

/// One progress bar per part, on stderr, only when it is a terminal.
struct Bars {
    multi: Option<MultiProgress>,
    names: Vec<String>,
    status: Option<ProgressBar>,
    parts: HashMap<usize, ProgressBar>,
}

impl Bars {
    fn new(image: &FlashImage, show: bool) -> Self {
        let multi = show.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Bars {
            multi,
            names: image
                .segments
                .iter()
                .map(|s| format!("{:#08x} {}", s.offset, s.name))
                .collect(),
            status: None,
            parts: HashMap::new(),
        }
    }

    fn status(&mut self, msg: &str) {
        let Some(multi) = &self.multi else { return };
        let bar = self.status.get_or_insert_with(|| {
            let b = multi.add(ProgressBar::new_spinner());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        bar.set_message(msg.to_owned());
    }

    fn bar(&mut self, index: usize, len: u64) -> Option<&ProgressBar> {
        let multi = self.multi.as_ref()?;
        let name = self.names[index].clone();
        Some(self.parts.entry(index).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(len));
            b.set_style(
                ProgressStyle::with_template("{prefix:<28} [{bar:30}] {pos:>4}/{len:4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_prefix(name);
            b
        }))
    }

    fn event(&mut self, ev: &FlashEvent) {
        match *ev {
            FlashEvent::Connecting => self.status("connecting"),
            FlashEvent::Connected {
                chip,
                ref mac,
                flash_size,
            } => {
                self.status(&format!(
                    "{chip} {mac}, {} MB flash: comparing",
                    flash_size >> 20
                ));
            }
            FlashEvent::LoadingStub => self.status("loading the flasher stub"),
            FlashEvent::PartUnchanged { index } => {
                if let Some(b) = self.bar(index, 1) {
                    b.finish_with_message("unchanged, skipped");
                }
            }
            FlashEvent::PartStarted { index, blocks } => {
                self.status("writing");
                if let Some(b) = self.bar(index, blocks as u64) {
                    b.set_length(blocks as u64);
                    b.set_message("writing");
                }
            }
            FlashEvent::PartProgress { index, done, .. } => {
                if let Some(b) = self.bar(index, 1) {
                    b.set_position(done as u64);
                }
            }
            FlashEvent::PartVerifying { index } => {
                if let Some(b) = self.bar(index, 1) {
                    b.set_message("verifying");
                }
            }
            FlashEvent::PartWritten { index } => {
                if let Some(b) = self.bar(index, 1) {
                    b.finish_with_message("written, verified");
                }
            }
            FlashEvent::Resetting => self.status("resetting"),
        }
    }

    fn clear(&mut self) {
        if let Some(s) = self.status.take() {
            s.finish_and_clear();
        }
        for b in self.parts.values() {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_args_parse() {
        assert_eq!(
            parse_image_arg("0x10000=app.bin").unwrap(),
            (0x10000, PathBuf::from("app.bin"))
        );
        assert_eq!(
            parse_image_arg("4096=b.bin").unwrap(),
            (4096, PathBuf::from("b.bin"))
        );
        assert!(parse_image_arg("0x10000").is_err());
        assert!(parse_image_arg("zz=app.bin").is_err());
        assert!(parse_image_arg("0x1000=").is_err());
    }

    #[test]
    fn parts_are_sorted_named_and_sized() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("app.bin");
        let b = dir.path().join("bootloader.bin");
        std::fs::write(&a, vec![1u8; 5000]).unwrap();
        std::fs::write(&b, vec![2u8; 100]).unwrap();
        let image = image_from_parts(
            Chip::Esp32c3,
            &[(0x10_0000, a.clone()), (0, b.clone())],
            None,
        )
        .unwrap();
        assert_eq!(image.segments[0].name, "bootloader");
        assert_eq!(image.segments[1].name, "app");
        // Ends just past 1 MB: the smallest size that holds it is 2 MB.
        assert_eq!(image.flash.size.bytes(), 2 << 20);
        let err =
            image_from_parts(Chip::Esp32c3, &[(0, a.clone()), (0x1000, b)], None).unwrap_err();
        assert_eq!(
            err.code().unwrap().to_string(),
            "espfleet::flash::parts_overlap"
        );
    }
}
