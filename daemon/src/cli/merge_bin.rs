//! `espfleet merge-bin`: a drop-in for `esptool --chip CHIP merge-bin` (esptool 5.6.0). The
//! work is `espfleet_compiler::esp_at::merged::merge`; this module reads the files, parses the
//! arguments the way esptool does and writes the output atomically.

use std::path::PathBuf;
use std::process::ExitCode;

use espfleet_compiler::esp_at::firmware::FlashParams;
use espfleet_compiler::esp_at::merged::{self, MergeFormat, MergeOptions};
use espfleet_compiler::image::Segment;
use espfleet_compiler::image::uf2::Uf2Options;
use espfleet_compiler::output::write_atomic;
use espfleet_compiler::partition_table::parse_option_int;
use espfleet_compiler::target::{Chip, FlashFreq, FlashMode, FlashSize};
use miette::{Context as _, IntoDiagnostic as _};

use super::GlobalOpts;

const AFTER_HELP: &str = "\
Arguments are esptool's, so `esptool --chip esp32 merge-bin ARGS` becomes
`espfleet merge-bin --chip esp32 ARGS`. esptool's short forms -fm, -ff and -fs, its old
spellings (merge_bin, --flash_mode, --flash_freq, --flash_size, --fill-flash-size) and @FILE
argument files (each line split like a shell would) work too.

Examples:
  # An ESP-AT factory image, padded to the flash size (what ESP-AT v4.1+ builds):
  espfleet merge-bin --chip esp32 -o factory.bin --flash-mode dio --flash-freq 40m \\
      --flash-size 4MB --pad-to-size 4MB \\
      0x1000 bootloader.bin 0x8000 partition-table.bin 0x10000 ota_data_initial.bin \\
      0x20000 at_customize.bin 0x21000 mfg_nvs.bin 0x100000 esp-at.bin

  # Exactly the parts you name, unpadded, for an ESP32-C3 (its bootloader sits at 0x0):
  espfleet merge-bin --chip esp32c3 -o merged.bin 0x0 bootloader.bin 0x60000 app.bin

  # Intel HEX or UF2 output (absolute addresses, no padding):
  espfleet merge-bin --chip esp32c3 -o merged.hex --format hex 0x0 bootloader.bin 0x60000 app.bin
  espfleet merge-bin --chip esp32 -o merged.uf2 --format uf2 0x1000 bootloader.bin 0x10000 app.bin

  # ESP-AT's own recipe, run in its build/ folder (flash settings and parts from the file):
  espfleet merge-bin --chip esp32 -o factory/factory_WROOM-32.bin --fill-flash-size 4MB @flash_project_args

  # An image to flash at 0x1000 rather than 0:
  espfleet merge-bin --chip esp32 -o from-0x1000.bin --target-offset 0x1000 0x1000 bootloader.bin 0x10000 app.bin

What it does (esptool's rules): parts are sorted by address; two parts in one 4 KiB sector are
an error; raw output starts at --target-offset and fills gaps with 0xFF. If the part at the
chip's bootloader offset (esp32 0x1000, esp32c3 0x0) is a valid image, bytes 2-3 of its header
get the --flash-mode/--flash-freq/--flash-size given (each `keep` by default) and its appended
SHA-256 is recomputed. An input file in Intel HEX is read at its own addresses. The output is
replaced as a whole or not at all.

Differences from esptool: only esp32 and esp32c3; a --flash-freq or --flash-size the chip does
not support is refused even when no bootloader would be patched; the ESPTOOL_FF/FM/FS
environment variables are not read; a raw image may be at most 128 MiB.

Exit codes: 0 written; 1 the merge failed (unreadable file, overlapping parts, a part below the
target offset, a bad Intel HEX input); 2 bad arguments.";

/// Arguments of `espfleet merge-bin` (esptool's, by name).
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct MergeBinArgs {
    /// Target chip: decides the bootloader offset, the header codes and the UF2 family id.
    #[arg(long, short = 'c', value_name = "CHIP", value_parser = ["esp32", "esp32c3"])]
    pub chip: String,
    /// Output file.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Output format: raw binary, Intel HEX or UF2.
    #[arg(long, short = 'f', value_name = "FORMAT", default_value = "raw", value_parser = ["raw", "hex", "uf2"])]
    pub format: String,
    /// UF2 only: payload bytes per 512-byte block, a multiple of 4 (default: the most that fits).
    #[arg(long, value_name = "BYTES")]
    pub chunk_size: Option<String>,
    /// UF2 only: leave the MD5 record out of each block.
    #[arg(long)]
    pub md5_disable: bool,
    /// Raw only: flash address the output will be written to.
    #[arg(long, short = 't', value_name = "ADDRESS", default_value = "0")]
    pub target_offset: String,
    /// Raw only: pad the output with 0xFF up to this flash size.
    #[arg(long, value_name = "SIZE", value_parser = ["256KB", "512KB", "1MB", "2MB", "4MB", "8MB", "16MB", "32MB", "64MB", "128MB"])]
    pub pad_to_size: Option<String>,
    /// Flash mode to write into the bootloader's header.
    #[arg(long, value_name = "MODE", default_value = "keep", value_parser = ["keep", "qio", "qout", "dio", "dout"])]
    pub flash_mode: String,
    /// Flash frequency to write into the bootloader's header (esp32/esp32c3: 80m 40m 26m 20m).
    #[arg(long, value_name = "FREQ", default_value = "keep", value_parser = ["keep", "80m", "64m", "60m", "48m", "40m", "32m", "30m", "26m", "24m", "20m", "16m", "15m", "12m"])]
    pub flash_freq: String,
    /// Flash size to write into the bootloader's header (esp32/esp32c3: 1MB to 128MB).
    #[arg(long, value_name = "SIZE", default_value = "keep", value_parser = ["keep", "256KB", "512KB", "1MB", "2MB", "2MB-c1", "4MB", "4MB-c1", "8MB", "16MB", "32MB", "64MB", "128MB"])]
    pub flash_size: String,
    /// ADDRESS FILE pairs: each file is placed at its flash address (decimal or 0x…).
    #[arg(required = true, num_args = 2.., value_name = "ADDRESS FILE")]
    pub addr_filename: Vec<String>,
}

/// Rewrites a `merge-bin` command line the way esptool 5.6 reads its own before parsing, so
/// that command lines and argument files written for esptool work unchanged:
///
/// * `merge_bin` is accepted for `merge-bin`;
/// * `@FILE` is replaced by the words of FILE, each line split like a shell would (esptool's
///   `expand_file_arguments`; ESP-AT runs `merge_bin … @flash_project_args`);
/// * `--flash_mode`, `--flash_freq`, `--flash_size` and `--fill-flash-size` become
///   `--flash-mode`, `--flash-freq`, `--flash-size` and `--pad-to-size` (esptool's deprecated
///   spellings), and the two-letter short forms `-fm`, `-ff`, `-fs` (which clap cannot declare)
///   the long ones.
///
/// Only arguments after the subcommand are touched; any other command line is returned as is.
/// An argument file that cannot be read or split is an error message.
pub fn expand_esptool_arguments(
    args: Vec<std::ffi::OsString>,
) -> Result<Vec<std::ffi::OsString>, String> {
    let Some(at) = args
        .iter()
        .position(|a| a == "merge-bin" || a == "merge_bin")
    else {
        return Ok(args);
    };
    let mut out: Vec<std::ffi::OsString> = args[..at].to_vec();
    out.push("merge-bin".into());
    let mut words: Vec<std::ffi::OsString> = Vec::new();
    for arg in &args[at + 1..] {
        match arg.to_str().and_then(|a| a.strip_prefix('@')) {
            Some(file) => {
                // Bounded, regular files only (espfleet_compiler::input).
                let bytes = espfleet_compiler::input::read(
                    std::path::Path::new(file),
                    espfleet_compiler::input::InputKind::RECIPE,
                )
                .map_err(|e| e.to_string())?;
                let text =
                    String::from_utf8(bytes).map_err(|_| format!("{file}: not UTF-8 text"))?;
                for line in text.lines() {
                    let split = shlex::split(line)
                        .ok_or_else(|| format!("{file}: cannot split line {line:?}"))?;
                    words.extend(split.into_iter().map(Into::into));
                }
            }
            None => words.push(arg.clone()),
        }
    }
    for word in words {
        let renamed = word.to_str().and_then(|w| {
            let (name, value) = w.split_once('=').map_or((w, None), |(n, v)| (n, Some(v)));
            let new = match name {
                "--flash_mode" | "-fm" => "--flash-mode",
                "--flash_freq" | "-ff" => "--flash-freq",
                "--flash_size" | "-fs" => "--flash-size",
                "--fill-flash-size" => "--pad-to-size",
                _ => return None,
            };
            Some(value.map_or_else(|| new.to_owned(), |v| format!("{new}={v}")))
        });
        out.push(renamed.map_or(word, Into::into));
    }
    Ok(out)
}

/// A usage error: message on stderr, exit status 2.
fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn int_arg(what: &str, text: &str) -> Result<u32, ExitCode> {
    parse_option_int(text)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| usage(&format!("{what} {text:?} is not a 32-bit number")))
}

fn size_bytes(name: &str) -> u32 {
    let (digits, unit) = name.strip_suffix("KB").map_or_else(
        || (name.trim_end_matches("MB"), 1u32 << 20),
        |d| (d, 1 << 10),
    );
    digits.parse::<u32>().unwrap_or(0) * unit
}

/// The flash settings and options, checked; `Err` is a usage error already printed.
fn options(args: &MergeBinArgs, chip: Chip) -> Result<(MergeOptions, MergeFormat), ExitCode> {
    let unsupported =
        |what: &str, value: &str| usage(&format!("{what} {value} is not supported by {chip}"));
    let mode = match args.flash_mode.as_str() {
        "keep" => None,
        m => Some(FlashMode::parse(m).ok_or_else(|| unsupported("flash mode", m))?),
    };
    let freq = match args.flash_freq.as_str() {
        "keep" => None,
        f => Some(FlashFreq::parse(f).ok_or_else(|| unsupported("flash frequency", f))?),
    };
    let size = match args.flash_size.as_str() {
        "keep" => None,
        s => Some(FlashSize::parse(s).ok_or_else(|| unsupported("flash size", s))?),
    };
    let chunk_size = args
        .chunk_size
        .as_deref()
        .map(|c| int_arg("--chunk-size", c))
        .transpose()?;
    if chunk_size.is_some_and(|c| c % 4 != 0) {
        return Err(usage("--chunk-size must be a multiple of 4"));
    }
    let format = match args.format.as_str() {
        "hex" => MergeFormat::IntelHex,
        "uf2" => MergeFormat::Uf2(Uf2Options {
            chunk_size,
            md5: !args.md5_disable,
        }),
        _ => MergeFormat::Raw,
    };
    let opts = MergeOptions {
        chip,
        flash: FlashParams { mode, freq, size },
        pad_to: args.pad_to_size.as_deref().map(size_bytes),
        target_offset: int_arg("--target-offset", &args.target_offset)?,
    };
    Ok((opts, format))
}

/// Runs `espfleet merge-bin`.
#[allow(clippy::needless_pass_by_value)] // the shared dispatch signature
pub fn run(args: MergeBinArgs, global: &GlobalOpts) -> miette::Result<ExitCode> {
    let chip = match args.chip.as_str() {
        "esp32c3" => Chip::Esp32c3,
        _ => Chip::Esp32,
    };
    let (opts, format) = match options(&args, chip) {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    if args.addr_filename.len() % 2 != 0 {
        return Ok(usage(
            "ADDRESS FILE arguments must come in pairs: an address, then the file to place there",
        ));
    }
    let mut addresses = Vec::new();
    for pair in args.addr_filename.chunks(2) {
        match int_arg("address", &pair[0]) {
            Ok(a) => addresses.push((a, &pair[1])),
            Err(code) => return Ok(code),
        }
    }
    let mut parts: Vec<Segment> = Vec::new();
    for (address, file) in addresses {
        let bytes = espfleet_compiler::input::read(
            std::path::Path::new(file),
            espfleet_compiler::input::InputKind::IMAGE,
        )?;
        parts.extend(merged::input_parts(address, file, bytes)?);
    }
    let image = merged::merge(&parts, &opts, format)?;
    write_atomic(&args.output, &image, None)
        .into_diagnostic()
        .wrap_err_with(|| format!("writing {}", args.output.display()))?;
    if !global.quiet {
        println!(
            "Wrote {:#x} bytes to {} ({}, {} part{}).",
            image.len(),
            args.output.display(),
            args.format,
            parts.len(),
            if parts.len() == 1 { "" } else { "s" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
