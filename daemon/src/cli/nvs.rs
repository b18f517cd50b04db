//! `espfleet nvs …`: a drop-in for `python -m esp_idf_nvs_partition_gen` (same arguments,
//! same CSV dialect, same bytes) plus `dump`, which prints an image as a CSV that regenerates it.
//!
//! Differences from the Python tool: exit status 1 on every failure (Python uses 254 for input
//! errors, 1 for crashes and 0 for an unparsable SIZE); keys come from the OS CSPRNG; the default
//! keys file name uses UTC; nothing is written on error.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use espfleet_compiler::nvs::csv::{CsvGenerator, CsvInput, generate, parse_size};
use espfleet_compiler::nvs::encrypt::{
    NvsKey, decrypt_image, decrypt_written_slots, encrypt_image, generate_hmac_key,
};
use espfleet_compiler::nvs::{Options, TrailingPages, Version, decode};
use espfleet_compiler::output::write_atomic;
use miette::{IntoDiagnostic as _, WrapErr as _, miette};

use super::GlobalOpts;

/// Arguments of `espfleet nvs`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The same subcommands, arguments and CSV dialect as `python -m esp_idf_nvs_partition_gen` 0.3.0,
byte for byte (docs/formats/nvs.md); `dump` is espfleet's own. `espfleet nvs SUBCOMMAND --help`
shows more examples.

Examples:
  espfleet nvs generate settings.csv settings.bin 0x6000
  espfleet nvs dump settings.bin

Exit status: 0 done; 1 the input is invalid or a file cannot be read or written (the Python
tool uses 1 and 254); 2 bad arguments.")]
pub struct NvsArgs {
    #[command(subcommand)]
    command: NvsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum NvsCommand {
    /// Generate an NVS partition image from CSV files.
    #[command(
        disable_version_flag = true,
        after_help = "\
Examples:
  espfleet nvs generate settings.csv settings.bin 0x6000
  espfleet nvs generate factory.csv wifi.csv nvs.bin 24576 --version 2 --outdir out/
  # ESP-AT v3.1–v4.0 builds (legacy trailing pages, as ESP-IDF <= 5.1 wrote them):
  espfleet nvs generate mfg_nvs.csv mfg_nvs.bin 0x1C000 --legacy-pages

The CSV has the columns key,type,encoding,value; `file` rows read paths relative to the current
directory, as the Python tool does."
    )]
    Generate(GenerateArgs),
    /// Generate an encrypted NVS partition image (XTS-AES) from CSV files.
    #[command(
        disable_version_flag = true,
        after_help = "\
Examples:
  espfleet nvs encrypt settings.csv settings-enc.bin 0x6000 --inputkey keys/nvs-keys.bin
  espfleet nvs encrypt settings.csv settings-enc.bin 0x6000 --keygen --keyfile nvs-keys.bin
  espfleet nvs encrypt settings.csv settings-enc.bin 0x6000 --keygen --key_protect_hmac --kp_hmac_keygen

Keys files are secrets: they are written with mode 0600 and never printed."
    )]
    Encrypt(EncryptArgs),
    /// Decrypt an encrypted NVS partition image.
    #[command(after_help = "\
Example:
  espfleet nvs decrypt settings-enc.bin keys/nvs-keys.bin settings.bin")]
    Decrypt(DecryptArgs),
    /// Generate a keys file for NVS encryption.
    #[command(
        name = "generate-key",
        after_help = "\
Examples:
  espfleet nvs generate-key --keyfile nvs-keys.bin              # writes keys/nvs-keys.bin
  espfleet nvs generate-key --key_protect_hmac --kp_hmac_inputkey hmac-key.bin --outdir out/"
    )]
    GenerateKey(GenerateKeyArgs),
    /// Print every entry of an image, as a CSV that `generate` turns back into the same bytes, or as JSON.
    #[command(after_help = "\
Examples:
  espfleet nvs dump out/wroom-32/customized_partitions/mfg_nvs.bin
  espfleet nvs dump settings.bin > settings.csv && espfleet nvs generate settings.csv same.bin 0x6000
  espfleet nvs dump settings-enc.bin --key keys/nvs-keys.bin --format json")]
    Dump(DumpArgs),
}

/// Positional arguments shared by generate and encrypt: INPUT.csv… OUTPUT.bin SIZE.
#[derive(Debug, clap::Args)]
struct ImageArgs {
    /// INPUT.csv [MORE.csv …] OUTPUT.bin SIZE — CSV files in order, the output image (must end
    /// in .bin; relative paths go under --outdir) and the partition size (e.g. 0x6000).
    #[arg(required = true, num_args = 3.., value_name = "INPUT.csv… OUTPUT.bin SIZE")]
    args: Vec<String>,
    /// Format version: 1 disables multipage blobs, 2 (default) enables them.
    #[arg(long = "version", id = "format_version", default_value = "2", value_parser = ["1", "2"])]
    format_version: String,
    /// Directory for relative output paths (default: the current directory).
    #[arg(long, value_name = "DIR")]
    outdir: Option<PathBuf>,
    /// Legacy trailing pages (generator ≤ 0.1.6, ESP-IDF ≤ 5.1, ESP-AT v3.1–v4.0): every
    /// non-reserved page gets a FULL header instead of staying erased.
    #[arg(long)]
    legacy_pages: bool,
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    #[command(flatten)]
    image: ImageArgs,
}

#[derive(Debug, clap::Args)]
struct HmacArgs {
    /// Derive the keys from an HMAC key (the HMAC-peripheral protection scheme).
    #[arg(long = "key_protect_hmac", alias = "key-protect-hmac")]
    key_protect_hmac: bool,
    /// Generate a random HMAC key (written next to the keys file).
    #[arg(long = "kp_hmac_keygen", alias = "kp-hmac-keygen")]
    kp_hmac_keygen: bool,
    /// Output file name for the generated HMAC key (default hmac-<keyfile>).
    #[arg(
        long = "kp_hmac_keyfile",
        alias = "kp-hmac-keyfile",
        value_name = "FILE"
    )]
    kp_hmac_keyfile: Option<String>,
    /// File holding the HMAC key to derive the keys from.
    #[arg(
        long = "kp_hmac_inputkey",
        alias = "kp-hmac-inputkey",
        value_name = "FILE"
    )]
    kp_hmac_inputkey: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct EncryptArgs {
    #[command(flatten)]
    image: ImageArgs,
    /// Generate a fresh key and write it to <outdir>/keys/<keyfile>.
    #[arg(long, conflicts_with = "inputkey")]
    keygen: bool,
    /// Keys file (.bin) whose first 64 bytes are the XTS key.
    #[arg(long, value_name = "KEYS.bin")]
    inputkey: Option<PathBuf>,
    /// Name of the keys file --keygen writes (default keys-<MM-DD_HH-MM>.bin, UTC).
    #[arg(long, value_name = "NAME.bin")]
    keyfile: Option<String>,
    #[command(flatten)]
    hmac: HmacArgs,
}

#[derive(Debug, clap::Args)]
struct DecryptArgs {
    /// Encrypted image (.bin).
    input: PathBuf,
    /// Keys file (.bin).
    key: PathBuf,
    /// Output image (.bin), relative to --outdir.
    output: String,
    /// Directory for a relative OUTPUT (default: the current directory).
    #[arg(long, value_name = "DIR")]
    outdir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct GenerateKeyArgs {
    /// Name of the keys file, written to <outdir>/keys/ (default keys-<MM-DD_HH-MM>.bin, UTC).
    #[arg(long, value_name = "NAME.bin")]
    keyfile: Option<String>,
    #[command(flatten)]
    hmac: HmacArgs,
    /// Output directory (default: the current directory).
    #[arg(long, value_name = "DIR")]
    outdir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DumpFormat {
    /// The generator's CSV (blobs inline as base64).
    Csv,
    /// Pages and entries as JSON.
    Json,
}

#[derive(Debug, clap::Args)]
struct DumpArgs {
    /// The NVS image.
    image: PathBuf,
    /// Keys file, for encrypted images.
    #[arg(long, value_name = "KEYS.bin")]
    key: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DumpFormat::Csv)]
    format: DumpFormat,
}

/// Runs `espfleet nvs`.
pub fn run(args: NvsArgs, global: &GlobalOpts) -> miette::Result<ExitCode> {
    match args.command {
        NvsCommand::Generate(a) => {
            let (out, image) = build_image(&a.image)?;
            write_atomic(&out, &image, None)
                .into_diagnostic()
                .wrap_err_with(|| format!("writing {}", out.display()))?;
            say(
                global,
                &format!("Created NVS binary: ===> {}", out.display()),
            );
        }
        NvsCommand::Encrypt(a) => encrypt(&a, global)?,
        NvsCommand::Decrypt(a) => {
            for p in [&a.input, &a.key] {
                check_bin_ext(&p.to_string_lossy())?;
            }
            let out = target_path(a.outdir.as_deref(), &a.output)?;
            let image = read_image(&a.input)?;
            let key = NvsKey::from_keys_file(&read_image(&a.key)?)?;
            let plain = decrypt_image(&image, &key)?;
            write_atomic(&out, &plain, None)
                .into_diagnostic()
                .wrap_err_with(|| format!("writing {}", out.display()))?;
            say(
                global,
                &format!("Created NVS decrypted binary: ===> {}", out.display()),
            );
        }
        NvsCommand::GenerateKey(a) => {
            let outdir = a.outdir.clone().unwrap_or_else(|| PathBuf::from("."));
            let path = write_keys(&outdir, a.keyfile.as_deref(), &a.hmac)?.0;
            say(
                global,
                &format!("Created encryption keys: ===> {}", path.display()),
            );
        }
        NvsCommand::Dump(a) => dump(&a)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn say(global: &GlobalOpts, line: &str) {
    if !global.quiet {
        println!("{line}");
    }
}

/// Parses the positional list and options, reads the CSVs and generates the plaintext image.
fn build_image(a: &ImageArgs) -> miette::Result<(PathBuf, Vec<u8>)> {
    let n = a.args.len();
    let (inputs, output, size) = (&a.args[..n - 2], &a.args[n - 2], &a.args[n - 1]);
    let size = parse_size(size)?;
    check_bin_ext(output)?;
    let out = target_path(a.outdir.as_deref(), output)?;
    let options = Options {
        version: if a.format_version == "1" {
            Version::V1
        } else {
            Version::V2
        },
        size,
        trailing: if a.legacy_pages {
            TrailingPages::Legacy
        } else {
            TrailingPages::Erased
        },
    };
    let inputs = inputs
        .iter()
        .map(|p| CsvInput::read(Path::new(p)))
        .collect::<Result<Vec<_>, _>>()?;
    let image = generate(&inputs, &options, Path::new("."))?;
    Ok((out, image))
}

fn encrypt(a: &EncryptArgs, global: &GlobalOpts) -> miette::Result<()> {
    if !a.keygen && a.inputkey.is_none() {
        return Err(miette!(
            code = "espfleet::nvs::key_missing",
            help = "pass --inputkey KEYS.bin or --keygen",
            "no encryption key given"
        ));
    }
    let key = if let Some(path) = &a.inputkey {
        check_bin_ext(&path.to_string_lossy())?;
        Some(NvsKey::from_keys_file(&read_image(path)?)?)
    } else {
        None
    };
    let (out, mut image) = build_image(&a.image)?;
    let key = if let Some(k) = key {
        k
    } else {
        {
            // Like the generator: keys go to <outdir>/keys/, where outdir is dropped for an
            // absolute OUTPUT path.
            let outdir = if Path::new(&a.image.args[a.image.args.len() - 2]).is_absolute() {
                PathBuf::from(".")
            } else {
                a.image.outdir.clone().unwrap_or_else(|| PathBuf::from("."))
            };
            let (path, key) = write_keys(&outdir, a.keyfile.as_deref(), &a.hmac)?;
            say(
                global,
                &format!("Created encryption keys: ===> {}", path.display()),
            );
            key
        }
    };
    encrypt_image(&mut image, &key)?;
    write_atomic(&out, &image, None)
        .into_diagnostic()
        .wrap_err_with(|| format!("writing {}", out.display()))?;
    say(
        global,
        &format!("Created NVS binary: ===> {}", out.display()),
    );
    Ok(())
}

/// Writes a keys file (and an HMAC key file when asked) under `<outdir>/keys/`.
fn write_keys(
    outdir: &Path,
    keyfile: Option<&str>,
    hmac: &HmacArgs,
) -> miette::Result<(PathBuf, NvsKey)> {
    let keys_dir = outdir.join("keys");
    let name = keyfile.map_or_else(default_keyfile_name, str::to_owned);
    let path = target_path(Some(&keys_dir), &name)?;
    let key = if hmac.key_protect_hmac {
        let hmac_key: Vec<u8> = if hmac.kp_hmac_keygen {
            let k = generate_hmac_key()?;
            let hmac_name = hmac
                .kp_hmac_keyfile
                .clone()
                .unwrap_or_else(|| format!("hmac-{name}"));
            let hmac_path = target_path(Some(&keys_dir), &hmac_name)?;
            write_atomic(&hmac_path, &k, Some(0o600)).into_diagnostic()?;
            k.to_vec()
        } else {
            let Some(p) = &hmac.kp_hmac_inputkey else {
                return Err(miette!(
                    code = "espfleet::nvs::hmac_key_missing",
                    help = "pass --kp_hmac_inputkey FILE or --kp_hmac_keygen",
                    "HMAC key input file (HMAC-based encryption scheme) missing"
                ));
            };
            read_image(p)?
        };
        NvsKey::from_hmac_key(&hmac_key)
    } else {
        NvsKey::generate()?
    };
    write_atomic(&path, &key.to_keys_file(), Some(0o600)).into_diagnostic()?;
    Ok((path, key))
}

fn default_keyfile_name() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (_, month, day) = civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "keys-{month:02}-{day:02}_{:02}-{:02}.bin",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The generator accepts only names whose extension contains `.bin`.
fn check_bin_ext(name: &str) -> miette::Result<()> {
    let ext = Path::new(name)
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()));
    match ext {
        Some(e) if e.contains(".bin") => Ok(()),
        _ => Err(miette!(
            code = "espfleet::nvs::not_bin",
            help = "name image and key files *.bin, as the generator requires",
            "`{name}`: only the `.bin` extension is allowed"
        )),
    }
}

/// `<outdir>/<file>` (`.bin` appended when there is no extension); absolute files ignore outdir.
fn target_path(outdir: Option<&Path>, file: &str) -> miette::Result<PathBuf> {
    let mut file = PathBuf::from(file);
    if file.extension().is_none() {
        file.set_extension("bin");
    }
    check_bin_ext(&file.to_string_lossy())?;
    Ok(match outdir {
        Some(dir) if !file.is_absolute() => dir.join(file),
        _ => file,
    })
}

/// Reads an image or keys file, bounded (`espfleet_compiler::input`).
fn read_image(path: &std::path::Path) -> miette::Result<Vec<u8>> {
    Ok(espfleet_compiler::input::read(
        path,
        espfleet_compiler::input::InputKind::IMAGE,
    )?)
}

fn dump(a: &DumpArgs) -> miette::Result<()> {
    let mut image = read_image(&a.image)?;
    if let Some(k) = &a.key {
        let key = NvsKey::from_keys_file(&read_image(k)?)?;
        image = decrypt_written_slots(&image, &key)?;
    }
    let decoded = decode(&image);
    for issue in &decoded.issues {
        tracing::warn!("{}: {issue}", a.image.display());
    }
    let mut stdout = std::io::stdout().lock();
    match a.format {
        DumpFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, &decoded.to_json()).into_diagnostic()?;
            writeln!(stdout).into_diagnostic()?;
        }
        DumpFormat::Csv => {
            let name = a
                .image
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let (csv, warnings) = decoded.to_csv(&name);
            for w in &warnings {
                tracing::warn!("{w}");
            }
            // Check the promise: this CSV regenerates the same bytes.
            let options = Options {
                version: decoded.version.unwrap_or_default(),
                size: image.len() as u64,
                trailing: decoded.trailing,
            };
            let mut g = CsvGenerator::new(options, "/nonexistent")?;
            let exact = g
                .add_csv(&CsvInput {
                    name: "dump".into(),
                    text: csv.clone(),
                })
                .is_ok()
                && g.finish() == image;
            if !exact {
                tracing::warn!(
                    "this image is not exactly what the generator would write for the dumped CSV; regenerating will not give identical bytes"
                );
            }
            stdout.write_all(csv.as_bytes()).into_diagnostic()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: NvsCommand,
    }

    fn run_args(args: &[&str]) -> miette::Result<ExitCode> {
        let cli = TestCli::try_parse_from(std::iter::once("nvs").chain(args.iter().copied()))
            .map_err(|e| miette!("{e}"))?;
        let global = GlobalOpts {
            quiet: true,
            verbose: 0,
            deny_warnings: false,
            color: super::super::ColorChoice::Never,
        };
        run(
            NvsArgs {
                command: cli.command,
            },
            &global,
        )
    }

    #[test]
    fn nothing_is_written_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("in.csv");
        std::fs::write(
            &csv,
            "key,type,encoding,value\nns,namespace,,\nk,data,u8,300\n",
        )
        .unwrap();
        let out = dir.path().join("out.bin");
        let err = run_args(&[
            "generate",
            csv.to_str().unwrap(),
            out.to_str().unwrap(),
            "0x3000",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        assert!(!out.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary files left"
        );
    }

    #[test]
    fn encrypt_with_inputkey_decrypt_and_dump() {
        let dir = tempfile::tempdir().unwrap();
        let d = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
        std::fs::write(
            d("in.csv"),
            "key,type,encoding,value\nns,namespace,,\ns,data,string,hello\nb,data,hex2bin,00ff\n",
        )
        .unwrap();
        run_args(&["generate-key", "--keyfile", "k.bin", "--outdir", &d("")]).unwrap();
        let keys = std::fs::read(d("keys/k.bin")).unwrap();
        assert_eq!(keys.len(), 4096);
        assert_eq!(
            &keys[64..68],
            &espfleet_compiler::nvs::crc::crc32(&keys[..64]).to_le_bytes()
        );
        run_args(&["generate", &d("in.csv"), &d("plain.bin"), "0x3000"]).unwrap();
        run_args(&[
            "encrypt",
            &d("in.csv"),
            &d("enc.bin"),
            "0x3000",
            "--inputkey",
            &d("keys/k.bin"),
        ])
        .unwrap();
        run_args(&["decrypt", &d("enc.bin"), &d("keys/k.bin"), &d("dec.bin")]).unwrap();
        let plain = std::fs::read(d("plain.bin")).unwrap();
        assert_ne!(std::fs::read(d("enc.bin")).unwrap(), plain);
        assert_eq!(std::fs::read(d("dec.bin")).unwrap(), plain);
    }

    #[test]
    fn output_paths_follow_the_generator() {
        assert_eq!(
            target_path(Some(Path::new("out")), "x").unwrap(),
            PathBuf::from("out/x.bin")
        );
        assert_eq!(
            target_path(Some(Path::new("out")), "/abs/x.bin").unwrap(),
            PathBuf::from("/abs/x.bin")
        );
        assert!(target_path(None, "x.txt").is_err());
        assert!(check_bin_ext("image").is_err());
    }

    #[test]
    fn default_keyfile_name_has_the_generator_shape() {
        let n = default_keyfile_name();
        assert_eq!(n.len(), "keys-MM-DD_HH-MM.bin".len(), "{n}");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
    }
}
