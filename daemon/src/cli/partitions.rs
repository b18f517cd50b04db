//! `espfleet partitions [OPTIONS] INPUT [OUTPUT]`: a drop-in for ESP-IDF's `gen_esp32part.py` 1.5.
//!
//! The input is read as a binary table when it starts with the bytes `AA 50` (then a CSV is
//! written), as CSV text otherwise (then the 3072-byte binary is written). `-` means stdin for
//! INPUT and stdout for OUTPUT, which is the default. The options have the tool's names and
//! meanings (`--offset/-o`, `--flash-size`, `--disable-md5sum`, `--no-verify`, `--secure [v1|v2]`,
//! `--primary-bootloader-offset`, `--recovery-bootloader-offset`, `--extra-partition-subtypes`,
//! and the global `-q`); errors name the CSV line.
//!
//! Exit codes follow gen_esp32part.py rather than the rest of espfleet, so build scripts can
//! swap one for the other:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | inputs on which the tool crashes with a Python exception: values that do not fit the binary (type > 255, offset ≥ 4 GiB, a negative resolved size), text that is not UTF-8, a bad `--extra-partition-subtypes` value; also failing to write the output |
//! | 2 | invalid input reported as such (CSV syntax, layout, verification, flash size, table too large, corrupt binary), unreadable input, bad options |

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use espfleet_compiler::output::write_atomic;
use espfleet_compiler::partition_table::{
    Keywords, PartitionError, PartitionTable, PartitionWarning, SecureBoot, TableOptions,
    Variables, decode_csv_text, parse_csv, parse_option_int,
};
use miette::Diagnostic as _;

use super::GlobalOpts;

/// Arguments of `espfleet partitions` (gen_esp32part.py's, by name).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
A drop-in for ESP-IDF's gen_esp32part.py 1.5: the direction follows from the input (a binary
starts with AA 50), the options and messages are the tool's. The rules are in
docs/formats/partition-table.md.

Examples:
  espfleet partitions partitions.csv partition-table.bin
  espfleet partitions partition-table.bin                 # binary -> CSV on stdout
  # ESP-AT's primary table: no MD5 record, checked against the flash size:
  espfleet partitions --disable-md5sum --flash-size 4MB partitions_at.csv partition-table.bin
  espfleet partitions --offset 0x10000 big.csv big.bin    # table at 0x10000, parts from 0x11000
  cat partitions.csv | espfleet partitions - - > partition-table.bin

Exit status (gen_esp32part.py's, so build scripts can swap one for the other):
  0  success
  1  inputs on which the Python tool crashes: values that do not fit the binary (type > 255,
     offset >= 4 GiB, a negative resolved size), text that is not UTF-8, a bad
     --extra-partition-subtypes value; also failing to write the output
  2  invalid input reported as such (CSV syntax, layout, verification, flash size, table too
     large, corrupt binary), unreadable input, bad options")]
pub struct PartitionsArgs {
    /// CSV or binary partition table to read; `-` reads stdin.
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// Where to write the converted table; `-` (the default) writes to stdout.
    #[arg(value_name = "OUTPUT", default_value = "-")]
    pub output: PathBuf,
    /// Check that the partitions end within this flash size.
    #[arg(long, value_name = "SIZE", value_parser = ["1MB", "2MB", "4MB", "8MB", "16MB", "32MB", "64MB", "128MB"])]
    pub flash_size: Option<String>,
    /// Write no MD5 record (ESP-AT's primary table); when reading a binary, do not check it.
    #[arg(long)]
    pub disable_md5sum: bool,
    /// Skip the alignment, naming, overlap and otadata checks.
    #[arg(long)]
    pub no_verify: bool,
    /// Accepted for compatibility; verification is on by default.
    #[arg(long, hide = true)]
    pub verify: bool,
    /// Flash address of the partition table (automatic placement starts 0x1000 above it).
    #[arg(long, short = 'o', value_name = "OFFSET", default_value = "0x8000")]
    pub offset: String,
    /// Flash address of the primary bootloader (needed by `bootloader` rows).
    #[arg(long, value_name = "OFFSET")]
    pub primary_bootloader_offset: Option<String>,
    /// Flash address of the recovery bootloader (needed by `bootloader, recovery` rows).
    #[arg(long, value_name = "OFFSET")]
    pub recovery_bootloader_offset: Option<String>,
    /// Require app sizes suitable for secure boot (v1: 64 KiB multiples; v2: 4 KiB).
    #[arg(long, value_name = "VERSION", num_args = 0..=1, default_missing_value = "v1", value_parser = ["v1", "v2"])]
    pub secure: Option<String>,
    /// Extra subtype keywords, each "type,name,value" with the value in hex.
    #[arg(long, value_name = "TYPE,NAME,VALUE", num_args = 1..)]
    pub extra_partition_subtypes: Vec<String>,
}

/// How a failed run ends: the tool's exit status for the first error.
fn fail(err: &mut dyn Write, errors: &[PartitionError]) -> ExitCode {
    for e in errors {
        match e.at() {
            Some(at) => writeln!(err, "Error at {at}: {e}"),
            None => writeln!(err, "{e}"),
        }
        .ok();
        if let Some(help) = e.help() {
            writeln!(err, "  help: {help}").ok();
        }
    }
    if errors.first().is_some_and(PartitionError::is_oracle_crash) {
        ExitCode::from(1)
    } else {
        ExitCode::from(2)
    }
}

fn usage(err: &mut dyn Write, message: &str) -> ExitCode {
    writeln!(err, "error: {message}").ok();
    ExitCode::from(2)
}

fn address(err: &mut dyn Write, option: &str, text: &str) -> Result<u32, ExitCode> {
    parse_option_int(text)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| {
            usage(
                err,
                &format!("{option} {text:?} is not an address (a number such as 0x8000)"),
            )
        })
}

fn warn(err: &mut dyn Write, warnings: &[PartitionWarning]) {
    for w in warnings {
        writeln!(err, "WARNING: {w}").ok();
    }
}

/// Runs `espfleet partitions`. Errors are printed here (with the tool's exit codes), so the
/// `Result` of the common subcommand signature is always `Ok`.
#[allow(clippy::needless_pass_by_value, clippy::unnecessary_wraps)] // the shared dispatch signature
pub fn run(args: PartitionsArgs, global: &GlobalOpts) -> miette::Result<ExitCode> {
    Ok(match convert(&args, global.quiet, &mut std::io::stderr()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    })
}

fn options(err: &mut dyn Write, args: &PartitionsArgs) -> Result<TableOptions, ExitCode> {
    let mut keywords = Keywords::esp_idf();
    for spec in &args.extra_partition_subtypes {
        keywords.add_extra(spec).map_err(|e| fail(err, &[e]))?;
    }
    let table_offset = address(err, "--offset", &args.offset)?;
    let primary_bootloader_offset = match &args.primary_bootloader_offset {
        Some(t) => Some(address(err, "--primary-bootloader-offset", t)?),
        None => None,
    };
    let recovery_bootloader_offset = match &args.recovery_bootloader_offset {
        Some(t) => Some(address(err, "--recovery-bootloader-offset", t)?),
        None => None,
    };
    Ok(TableOptions {
        table_offset,
        md5: !args.disable_md5sum,
        verify: !args.no_verify,
        secure: args.secure.as_deref().map(|s| {
            if s == "v2" {
                SecureBoot::V2
            } else {
                SecureBoot::V1
            }
        }),
        primary_bootloader_offset,
        recovery_bootloader_offset,
        flash_size: args
            .flash_size
            .as_deref()
            .and_then(|s| s.trim_end_matches("MB").parse::<u64>().ok())
            .map(|mb| mb << 20),
        keywords,
        variables: Variables::Process,
    })
}

/// Reads the input table (CSV or binary; a binary table is at most 0xC00 bytes, far below the
/// CSV limit), bounded and only from a regular file or `-` (stdin).
fn read_input(err: &mut dyn Write, path: &Path) -> Result<Vec<u8>, ExitCode> {
    use espfleet_compiler::input::{self, InputKind};
    let read = if path == Path::new("-") {
        input::read_stdin(InputKind::TABLE_CSV)
    } else {
        input::read(path, InputKind::TABLE_CSV)
    };
    read.map_err(|e| usage(err, &e.to_string()))
}

/// The conversion, with status lines, warnings and errors written to `err` (stderr in use).
fn convert(args: &PartitionsArgs, quiet: bool, err: &mut dyn Write) -> Result<(), ExitCode> {
    let status = |err: &mut dyn Write, msg: &str| {
        if !quiet {
            writeln!(err, "{msg}").ok();
        }
    };
    let opts = options(err, args)?;
    if let Some(primary) = opts.primary_bootloader_offset {
        if primary >= opts.table_offset {
            let e = PartitionError::BootloaderAboveTable {
                primary,
                table: opts.table_offset,
            };
            return Err(fail(err, &[e]));
        }
    }
    let input = read_input(err, &args.input)?;
    let output: Vec<u8> = if input.starts_with(&[0xAA, 0x50]) {
        status(err, "Parsing binary partition input...");
        let decoded = PartitionTable::decode(&input, opts.md5).map_err(|e| fail(err, &[e]))?;
        warn(err, &decoded.warnings);
        if opts.verify {
            status(err, "Verifying table...");
        }
        decoded.table.validate(&opts).map_err(|e| fail(err, &e))?;
        if opts.verify {
            warn(err, &decoded.table.warnings(&opts.keywords));
        }
        decoded.table.to_csv_with(&opts.keywords).into_bytes()
    } else {
        status(err, "Parsing CSV input...");
        let text = decode_csv_text(&input).map_err(|e| fail(err, &[e]))?;
        if opts.verify {
            status(err, "Verifying table...");
        }
        let table = parse_csv(&text, &opts).map_err(|e| fail(err, &e))?;
        if opts.verify {
            warn(err, &table.warnings(&opts.keywords));
        }
        table.to_bytes(opts.md5).map_err(|e| fail(err, &[e]))?
    };
    let written = if args.output == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(&output).and_then(|()| out.flush())
    } else {
        write_atomic(&args.output, &output, None)
    };
    written.map_err(|e| {
        writeln!(err, "error: writing {}: {e}", args.output.display()).ok();
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ColorChoice;

    fn golden(name: &str) -> PathBuf {
        // The golden vectors in the repository (see tests/data/golden/README.md).
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/golden/partitions")
            .join(name)
    }

    fn args(input: &Path, output: &Path, extra: &[&str]) -> PartitionsArgs {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: PartitionsArgs,
        }
        let mut argv = vec!["partitions".to_owned()];
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        argv.push(input.display().to_string());
        argv.push(output.display().to_string());
        Wrap::try_parse_from(argv).unwrap().args
    }

    fn quiet() -> GlobalOpts {
        GlobalOpts {
            quiet: true,
            verbose: 0,
            deny_warnings: false,
            color: ColorChoice::Never,
        }
    }

    fn exit(code: ExitCode) -> String {
        format!("{code:?}")
    }

    #[test]
    fn converts_golden_csv_with_options_and_back() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("out/pt.bin");
        let csv = dir.path().join("pt.csv");
        let again = dir.path().join("again.bin");
        let input = golden("pt_07_offset_0x10000.csv");
        let expected = std::fs::read(golden("pt_07_offset_0x10000.bin")).unwrap();
        let opts = ["--offset", "0x10000", "--flash-size", "4MB"];
        let code = run(args(&input, &bin, &opts), &quiet()).unwrap();
        assert_eq!(exit(code), exit(ExitCode::SUCCESS));
        assert!(std::fs::read(&bin).unwrap() == expected);
        run(args(&bin, &csv, &opts), &quiet()).unwrap();
        assert!(
            std::fs::read_to_string(&csv)
                .unwrap()
                .starts_with("# ESP-IDF Partition Table\n")
        );
        run(args(&csv, &again, &opts), &quiet()).unwrap();
        assert!(std::fs::read(&again).unwrap() == expected);
    }

    #[test]
    fn disable_md5sum_matches_golden() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("pt.bin");
        let code = run(
            args(
                &golden("pt_08_disable_md5.csv"),
                &bin,
                &["--disable-md5sum"],
            ),
            &quiet(),
        )
        .unwrap();
        assert_eq!(exit(code), exit(ExitCode::SUCCESS));
        assert!(
            std::fs::read(&bin).unwrap() == std::fs::read(golden("pt_08_disable_md5.bin")).unwrap()
        );
    }

    #[test]
    fn exit_codes_follow_the_tool() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pt.bin");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        // Reported errors: 2, and nothing is written.
        let dup = write(
            "dup.csv",
            "a, data, nvs, , 0x4000\na, data, phy, , 0x1000\n",
        );
        assert_eq!(
            exit(run(args(&dup, &out, &[]), &quiet()).unwrap()),
            exit(ExitCode::from(2))
        );
        assert!(!out.exists());
        let too_small = write("big.csv", "a, app, factory, , 4M\n");
        let code = run(args(&too_small, &out, &["--flash-size", "2MB"]), &quiet()).unwrap();
        assert_eq!(exit(code), exit(ExitCode::from(2)));
        // The tool crashes (struct.error) on a type that does not fit a byte: 1.
        let crash = write("crash.csv", "a, 0x100, 0, , 0x1000\n");
        assert_eq!(
            exit(run(args(&crash, &out, &[]), &quiet()).unwrap()),
            exit(ExitCode::from(1))
        );
        assert!(!out.exists());
        // --no-verify lets the duplicate through.
        let code = run(args(&dup, &out, &["--no-verify"]), &quiet()).unwrap();
        assert_eq!(exit(code), exit(ExitCode::SUCCESS));
        assert_eq!(std::fs::read(&out).unwrap().len(), 0xC00);
    }

    /// What a user sees for a table with several problems: every error with its line and a
    /// help, in the tool's order (expected text written by hand from the messages in `docs/formats/partition-table.md` §3–§6).
    #[test]
    fn errors_name_the_csv_line() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("bad.csv");
        std::fs::write(
            &input,
            "# Name, Type, SubType, Offset, Size\na, data, nvs, , 0x4000\na, data, ota, , 4K\nb, app, factory, 0x18000, 1M\n",
        )
        .unwrap();
        let mut err = Vec::new();
        let code = convert(
            &args(&input, &dir.path().join("out.bin"), &[]),
            false,
            &mut err,
        )
        .unwrap_err();
        assert_eq!(exit(code), exit(ExitCode::from(2)));
        let expected = "\
Parsing CSV input...
Verifying table...
Error at line 4: Partition b invalid: Offset 0x18000 is not aligned to 0x10000
  help: app partitions start on a 64 KiB boundary, all others on a 4 KiB boundary
Error at line 3: Partition names must be unique ('a' is also used at line 2)
  help: rename one of the partitions
Error at line 3: otadata partition must have size = 0x2000
  help: otadata holds two 4 KiB sectors: give it size 0x2000 (8K)
";
        assert_eq!(String::from_utf8(err).unwrap(), expected);
    }
}
