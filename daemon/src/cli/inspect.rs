//! `espfleet inspect IMAGE`: print what any image espfleet writes holds (text or JSON).

use std::path::PathBuf;
use std::process::ExitCode;

use espfleet_compiler::flash_map::FlashMap;
use espfleet_compiler::inspect::{self, Kind};

use super::GlobalOpts;

/// Output format of `inspect`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Readable text.
    Text,
    /// One JSON document.
    Json,
}

/// Input kinds `--kind` can force.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KindArg {
    /// Binary partition table (primary or at_customize).
    PartitionTable,
    /// NVS partition image (mfg_nvs.bin, ...).
    Nvs,
    /// Era A factory_param.bin.
    FactoryParam,
    /// Era A PKI container (client_cert.bin, ...).
    Pki,
    /// Era A ble_data.bin.
    BleData,
    /// ESP app or bootloader image.
    Firmware,
    /// Merged factory image.
    Merged,
    /// flasher_args.json.
    FlasherArgs,
}

impl KindArg {
    fn kind(self) -> Kind {
        match self {
            KindArg::PartitionTable => Kind::PartitionTable,
            KindArg::Nvs => Kind::Nvs,
            KindArg::FactoryParam => Kind::FactoryParam,
            KindArg::Pki => Kind::Pki,
            KindArg::BleData => Kind::BleData,
            KindArg::Firmware => Kind::Firmware,
            KindArg::Merged => Kind::Merged,
            KindArg::FlasherArgs => Kind::FlasherArgs,
        }
    }
}

/// Arguments of `espfleet inspect`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The kind of input is recognised from its content: partition tables \
(MD5 checked), NVS images (pages, namespaces, entries), era A bins (factory_param, PKI \
containers, ble_data), ESP app/bootloader images (header, segments, checksum and SHA-256 \
validity), merged factory images (walked through their partition tables, each region decoded) \
and flasher_args.json. Certificates and keys are summarised (PEM label, subject, length); key \
material is never printed.\n\
Examples:\n  espfleet inspect out/wroom-32/factory/factory_WROOM-32.bin\n  \
espfleet inspect out/wroom-32/customized_partitions/mfg_nvs.bin --format json\n  \
espfleet inspect dump.bin --kind nvs\n  \
espfleet inspect out/wroom-32/factory/factory_WROOM-32.bin --svg flash-map.svg\n\n\
--svg FILE also draws the flash map of a merged factory image or a partition table to scale \
(partitions, ESP-AT's at_customize table, the parts holding data) as a standalone SVG; the \
daemon's bench page draws the maps of the manifests in force with the same renderer."
)]
pub struct InspectArgs {
    /// The image to read.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Read the input as this kind instead of recognising it.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Also write the flash map (partitions and parts, to scale) as SVG to this file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// Prints the account of one image.
#[allow(clippy::needless_pass_by_value)] // dispatch hands every subcommand its args by value
pub fn run(args: InspectArgs, _global: &GlobalOpts) -> miette::Result<ExitCode> {
    let bytes =
        espfleet_compiler::input::read(&args.image, espfleet_compiler::input::InputKind::IMAGE)?;
    let report = inspect::inspect(&bytes, args.kind.map(KindArg::kind))
        .map_err(|e| miette::Report::new(e).wrap_err(args.image.display().to_string()))?;
    if let Some(svg) = &args.svg {
        let map = FlashMap::of_bytes(&bytes)
            .map_err(|e| miette::Report::new(e).wrap_err(args.image.display().to_string()))?;
        let title = args
            .image
            .file_name()
            .map_or_else(|| "flash map".into(), |n| n.to_string_lossy().into_owned());
        espfleet_compiler::output::write_atomic(svg, map.to_svg(&title).as_bytes(), None)
            .map_err(|e| miette::miette!(code = "espfleet::inspect::svg_write", "{e}"))?;
    }
    let out = match args.format {
        Format::Text => report.text,
        Format::Json => serde_json::to_string_pretty(&report.json).unwrap_or_default() + "\n",
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    Ok(ExitCode::SUCCESS)
}
