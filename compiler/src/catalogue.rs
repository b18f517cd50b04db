//! The module catalogue: every ESP32 and ESP32-C3 module ESP-AT ships, as data.
//!
//! The data lives in `manifests/modules/` (KDL files plus the partition CSVs copied from ESP-AT's
//! `module_config`); it is compiled into the binary so that an installed `espfleet` needs no data
//! directory. `manifests/README.md` says where each value comes from, and the tests check the
//! tables against the ESP-AT reference copies.

use std::sync::OnceLock;

use kdl::KdlDocument;

use crate::manifest::error::{ErrorKind, ManifestError};
use crate::manifest::reader::{NodeReader, Problems, value};
use crate::manifest::source::SourceFile;
use crate::release::Release;
use crate::target::{Chip, FlashFreq, FlashMode, FlashSettings, FlashSize};

/// Catalogue files compiled in: (name, text).
const FILES: &[(&str, &str)] = &[
    (
        "manifests/modules/esp32.kdl",
        include_str!("../../manifests/modules/esp32.kdl"),
    ),
    (
        "manifests/modules/esp32c3.kdl",
        include_str!("../../manifests/modules/esp32c3.kdl"),
    ),
];

macro_rules! tables {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../manifests/modules/tables/", $name)))),*]
    };
}

/// Partition CSVs compiled in: (file name under `tables/`, text).
const TABLES: &[(&str, &str)] = tables![
    "esp32-4mb.csv",
    "esp32-d2wd-2mb.csv",
    "c3-4mb.csv",
    "c3-rainmaker-4mb.csv",
    "esp32-atc-era-a.csv",
    "esp32-d2wd-atc-era-a.csv",
    "esp32-qcloud-atc-era-a.csv",
    "qcloud-atc-v2.2.csv",
    "c3-atc-era-a.csv",
    "c3-qcloud-atc-era-a.csv",
    "c3-rainmaker-atc-v3.0.csv",
    "esp32-atc-era-b.csv",
    "esp32-atc-master.csv",
    "esp32-d2wd-atc-era-b.csv",
    "c3-atc-era-b.csv",
    "c3-atc-master.csv",
    "c3-rainmaker-atc-era-b.csv",
    "c3-rainmaker-atc-master.csv",
];

/// GPIO facts of a chip, for checking UART pins.
#[derive(Debug, Clone)]
pub struct ChipInfo {
    /// The chip.
    pub chip: Chip,
    /// GPIOs are numbered 0..gpio_count.
    pub gpio_count: u8,
    /// Pins that cannot drive an output (TX and RTS cannot use them).
    pub input_only: Vec<u8>,
    /// Pins taken by the SPI flash on every module of this chip.
    pub reserved: Vec<u8>,
}

/// A partition CSV from the catalogue and where it is flashed.
#[derive(Debug, Clone)]
pub struct TableSource {
    /// File name under `manifests/modules/`.
    pub file: String,
    /// The CSV text, exactly as ESP-AT ships it.
    pub csv: &'static str,
    /// Flash offset of the table.
    pub offset: u32,
}

/// Flash settings and tables of a module_config directory for a range of releases.
#[derive(Debug, Clone)]
pub struct Layout {
    /// First release (inclusive).
    pub from: Release,
    /// Last release (inclusive); `None` = up to master.
    pub until: Option<Release>,
    /// Flash settings (`sdkconfig.defaults`).
    pub flash: FlashSettings,
    /// The primary table (`partitions_at.csv`).
    pub partition_table: TableSource,
    /// The at_customize table.
    pub at_customize: TableSource,
}

impl Layout {
    /// Whether this layout applies to `release`.
    pub fn covers(&self, release: Release) -> bool {
        release >= self.from && self.until.is_none_or(|u| release <= u)
    }
}

/// An ESP-AT `module_config/<dir>`.
#[derive(Debug, Clone)]
pub struct ModuleConfig {
    /// Directory name (`module_esp32_default`).
    pub dir: String,
    /// The chip.
    pub chip: Chip,
    /// Layouts by release range.
    pub layouts: Vec<Layout>,
}

/// Factory UART defaults; -1 = unset/none, as ESP-AT writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UartDefaults {
    /// UART number.
    pub port: i32,
    /// Baud rate.
    pub baud: i32,
    /// TX GPIO.
    pub tx: i32,
    /// RX GPIO.
    pub rx: i32,
    /// CTS GPIO.
    pub cts: i32,
    /// RTS GPIO.
    pub rts: i32,
}

/// Factory Wi-Fi defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WifiDefaults {
    /// Country code.
    pub country: String,
    /// First channel.
    pub start_channel: u8,
    /// Channel count.
    pub channel_count: u8,
    /// Max TX power, 0.25 dBm units.
    pub max_tx_power: u8,
}

/// A module as ESP-AT's `factory_param_data.csv` lists it.
#[derive(Debug, Clone)]
pub struct Module {
    /// Name as ESP-AT spells it.
    pub name: String,
    /// Chip.
    pub chip: Chip,
    /// Its module_config directory.
    pub config: String,
    /// Last release that ships it; `None` = still shipped.
    pub until: Option<Release>,
    /// ESP-AT's description.
    pub description: String,
    /// Factory UART settings.
    pub uart: UartDefaults,
    /// Factory Wi-Fi settings.
    pub wifi: WifiDefaults,
    /// Pins the module uses internally besides the chip's reserved ones.
    pub reserved: Vec<u8>,
}

/// The whole catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// Chips.
    pub chips: Vec<ChipInfo>,
    /// module_config directories.
    pub configs: Vec<ModuleConfig>,
    /// Modules.
    pub modules: Vec<Module>,
}

impl Catalogue {
    /// The catalogue compiled into this binary. Its data is checked by the test suite, so a
    /// failure to load is a build defect and panics with the diagnostics.
    pub fn builtin() -> &'static Catalogue {
        static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        CATALOGUE.get_or_init(|| match Catalogue::load(FILES, TABLES) {
            Ok(c) => c,
            Err(errors) => panic!("the built-in module catalogue is invalid: {errors:?}"),
        })
    }

    /// Loads a catalogue from KDL files and partition CSVs given as (name, text) pairs.
    pub fn load(
        files: &[(&str, &str)],
        tables: &[(&str, &'static str)],
    ) -> Result<Catalogue, Vec<ManifestError>> {
        let mut problems = Problems::default();
        let mut cat = Catalogue {
            chips: Vec::new(),
            configs: Vec::new(),
            modules: Vec::new(),
        };
        for (name, text) in files {
            let file = SourceFile::new(*name, (*text).to_owned());
            let doc = match text.parse::<KdlDocument>() {
                Ok(d) => d,
                Err(e) => {
                    problems.push(ManifestError::new(
                        ErrorKind::SyntaxInvalid,
                        format!("{name}: {e:?}"),
                    ));
                    continue;
                }
            };
            for node in doc.nodes() {
                let r = NodeReader::new(node, &file);
                match r.name() {
                    "chip" => cat.chips.push(read_chip(&r, &mut problems)),
                    "config" => cat.configs.push(read_config(&r, tables, &mut problems)),
                    "module" => cat.modules.push(read_module(&r, &mut problems)),
                    _ => problems.push(crate::manifest::reader::unknown_node(
                        &r,
                        "the catalogue",
                        &["chip", "config", "module"],
                    )),
                }
            }
        }
        for m in &cat.modules {
            if !cat
                .configs
                .iter()
                .any(|c| c.dir == m.config && c.chip == m.chip)
            {
                problems.push(ManifestError::new(
                    ErrorKind::ModuleUnknown,
                    format!(
                        "catalogue: module {} names config {} which is not defined for {}",
                        m.name, m.config, m.chip
                    ),
                ));
            }
        }
        if problems.0.is_empty() {
            Ok(cat)
        } else {
            Err(problems.0)
        }
    }

    /// Facts about `chip`.
    pub fn chip(&self, chip: Chip) -> Option<&ChipInfo> {
        self.chips.iter().find(|c| c.chip == chip)
    }

    /// Modules called `name` (case-insensitive), optionally of one chip.
    pub fn find(&self, name: &str, chip: Option<Chip>) -> Vec<&Module> {
        self.modules
            .iter()
            .filter(|m| m.name.eq_ignore_ascii_case(name) && chip.is_none_or(|c| c == m.chip))
            .collect()
    }

    /// The module_config of a module.
    pub fn config(&self, module: &Module) -> Option<&ModuleConfig> {
        self.configs
            .iter()
            .find(|c| c.dir == module.config && c.chip == module.chip)
    }

    /// The layout a module has in `release`, if the release ships it.
    pub fn layout(&self, module: &Module, release: Release) -> Option<&Layout> {
        if module.until.is_some_and(|u| release > u) {
            return None;
        }
        self.config(module)?
            .layouts
            .iter()
            .find(|l| l.covers(release))
    }

    /// Releases that ship `module` (for "available in" hints).
    pub fn releases_of(&self, module: &Module) -> Vec<Release> {
        crate::release::KNOWN
            .iter()
            .filter_map(|t| t.parse::<Release>().ok())
            .filter(|r| self.layout(module, *r).is_some())
            .collect()
    }
}

fn int_list(r: &NodeReader<'_>, problems: &mut Problems) -> Vec<u8> {
    r.args()
        .iter()
        .filter_map(|a| value::int(a, 0, 255).map_err(|e| problems.push(e)).ok())
        .filter_map(|n| u8::try_from(n.value).ok())
        .collect()
}

fn chip_prop(r: &NodeReader<'_>, key_or_arg: Option<&str>, problems: &mut Problems) -> Chip {
    let v = match key_or_arg {
        Some(k) => r.prop(k),
        None => r.arg(0),
    };
    let Some(v) = v else {
        problems.push(
            ManifestError::new(ErrorKind::ArgumentMissing, "chip missing").at(&r.place(), "here"),
        );
        return Chip::Esp32;
    };
    if let Ok(Ok(c)) = value::string(&v).map(|s| s.value.parse::<Chip>()) {
        c
    } else {
        problems
            .push(ManifestError::new(ErrorKind::ValueInvalid, "unknown chip").at(&v.place, "here"));
        Chip::Esp32
    }
}

fn read_chip(r: &NodeReader<'_>, problems: &mut Problems) -> ChipInfo {
    let chip = chip_prop(r, None, problems);
    let mut info = ChipInfo {
        chip,
        gpio_count: 0,
        input_only: Vec::new(),
        reserved: Vec::new(),
    };
    for child in r.children().map(KdlDocument::nodes).unwrap_or_default() {
        let c = NodeReader::new(child, r.file());
        match c.name() {
            "gpio-count" => info.gpio_count = int_list(&c, problems).first().copied().unwrap_or(0),
            "input-only" => info.input_only = int_list(&c, problems),
            "reserved" => info.reserved = int_list(&c, problems),
            _ => problems.push(crate::manifest::reader::unknown_node(
                &c,
                "`chip`",
                &["gpio-count", "input-only", "reserved"],
            )),
        }
        c.finish(&[], false, problems);
    }
    r.finish(&[], true, problems);
    info
}

fn release_prop(r: &NodeReader<'_>, key: &str, problems: &mut Problems) -> Option<Release> {
    let v = r.prop(key)?;
    let s = value::string(&v).map_err(|e| problems.push(e)).ok()?;
    s.value
        .parse::<Release>()
        .map_err(|e| {
            problems.push(
                ManifestError::new(ErrorKind::ReleaseUnknown, e.to_string()).at(&s.place, "here"),
            );
        })
        .ok()
}

fn read_table(
    c: &NodeReader<'_>,
    tables: &[(&str, &'static str)],
    problems: &mut Problems,
) -> TableSource {
    let file = c
        .arg(0)
        .and_then(|v| value::string(&v).map_err(|e| problems.push(e)).ok());
    let offset = c
        .prop("offset")
        .and_then(|v| {
            value::int(&v, 0, i128::from(u32::MAX))
                .map_err(|e| problems.push(e))
                .ok()
        })
        .and_then(|n| u32::try_from(n.value).ok())
        .unwrap_or(0);
    let mut src = TableSource {
        file: String::new(),
        csv: "",
        offset,
    };
    if let Some(file) = file {
        let key = file.value.trim_start_matches("tables/");
        match tables.iter().find(|(n, _)| *n == key) {
            Some((_, csv)) => src.csv = csv,
            None => problems.push(
                ManifestError::new(
                    ErrorKind::FileMissing,
                    format!("catalogue table {} is not compiled in", file.value),
                )
                .at(&file.place, "unknown table"),
            ),
        }
        src.file = file.value;
    }
    c.finish(&["offset"], false, problems);
    src
}

fn read_config(
    r: &NodeReader<'_>,
    tables: &[(&str, &'static str)],
    problems: &mut Problems,
) -> ModuleConfig {
    let dir = r
        .arg(0)
        .and_then(|v| value::string(&v).map_err(|e| problems.push(e)).ok())
        .map(|s| s.value)
        .unwrap_or_default();
    let chip = chip_prop(r, Some("chip"), problems);
    let mut cfg = ModuleConfig {
        dir,
        chip,
        layouts: Vec::new(),
    };
    r.finish(&["chip"], true, problems);
    for child in r.children().map(KdlDocument::nodes).unwrap_or_default() {
        let l = NodeReader::new(child, r.file());
        let from = release_prop(&l, "from", problems)
            .unwrap_or_else(|| "v2.2.0.0".parse().unwrap_or_else(|_| unreachable!()));
        let until = release_prop(&l, "until", problems);
        l.finish(&["from", "until"], true, problems);
        let mut flash = None;
        let mut pt = None;
        let mut atc = None;
        for n in l.children().map(KdlDocument::nodes).unwrap_or_default() {
            let c = NodeReader::new(n, r.file());
            match c.name() {
                "flash" => {
                    let get = |k: &str| {
                        c.prop(k)
                            .and_then(|v| value::string(&v).ok())
                            .map(|s| s.value)
                            .unwrap_or_default()
                    };
                    let mode = FlashMode::parse(&get("mode"));
                    let freq = FlashFreq::parse(&get("freq"));
                    let size = FlashSize::parse(&get("size"));
                    match (mode, freq, size) {
                        (Some(mode), Some(freq), Some(size)) => {
                            flash = Some(FlashSettings { mode, freq, size });
                        }
                        _ => problems.push(
                            ManifestError::new(ErrorKind::ValueInvalid, "bad flash settings")
                                .at(&c.place(), "here"),
                        ),
                    }
                    c.finish(&["mode", "freq", "size"], false, problems);
                }
                "partition-table" => pt = Some(read_table(&c, tables, problems)),
                "at-customize" => atc = Some(read_table(&c, tables, problems)),
                _ => problems.push(crate::manifest::reader::unknown_node(
                    &c,
                    "`layout`",
                    &["flash", "partition-table", "at-customize"],
                )),
            }
        }
        match (flash, pt, atc) {
            (Some(flash), Some(partition_table), Some(at_customize)) => {
                cfg.layouts.push(Layout {
                    from,
                    until,
                    flash,
                    partition_table,
                    at_customize,
                });
            }
            _ => problems.push(
                ManifestError::new(
                    ErrorKind::NodeMissing,
                    "a layout needs flash, partition-table and at-customize",
                )
                .at(&l.place(), "here"),
            ),
        }
    }
    cfg
}

fn read_module(r: &NodeReader<'_>, problems: &mut Problems) -> Module {
    let name = r
        .arg(0)
        .and_then(|v| value::string(&v).map_err(|e| problems.push(e)).ok())
        .map(|s| s.value)
        .unwrap_or_default();
    let chip = chip_prop(r, Some("chip"), problems);
    let config = r
        .prop("config")
        .and_then(|v| value::string(&v).ok())
        .map(|s| s.value)
        .unwrap_or_default();
    let until = release_prop(r, "until", problems);
    r.finish(&["chip", "config", "until"], true, problems);
    let mut m = Module {
        name,
        chip,
        config,
        until,
        description: String::new(),
        uart: UartDefaults {
            port: -1,
            baud: -1,
            tx: -1,
            rx: -1,
            cts: -1,
            rts: -1,
        },
        wifi: WifiDefaults {
            country: String::from("CN"),
            start_channel: 1,
            channel_count: 13,
            max_tx_power: 78,
        },
        reserved: Vec::new(),
    };
    for child in r.children().map(KdlDocument::nodes).unwrap_or_default() {
        let c = NodeReader::new(child, r.file());
        let int = |k: &str, problems: &mut Problems| -> Option<i32> {
            c.prop(k)
                .and_then(|v| {
                    value::int(&v, -1, 5_000_000)
                        .map_err(|e| problems.push(e))
                        .ok()
                })
                .and_then(|n| i32::try_from(n.value).ok())
        };
        match c.name() {
            "description" => {
                m.description = c
                    .arg(0)
                    .and_then(|v| value::string(&v).ok())
                    .map(|s| s.value)
                    .unwrap_or_default();
                c.finish(&[], false, problems);
            }
            "uart" => {
                let u = &mut m.uart;
                for (k, slot) in [
                    ("port", &mut u.port),
                    ("baud", &mut u.baud),
                    ("tx", &mut u.tx),
                    ("rx", &mut u.rx),
                    ("cts", &mut u.cts),
                    ("rts", &mut u.rts),
                ] {
                    if let Some(v) = int(k, problems) {
                        *slot = v;
                    }
                }
                c.finish(&["port", "baud", "tx", "rx", "cts", "rts"], false, problems);
            }
            "wifi" => {
                if let Some(s) = c.prop("country").and_then(|v| value::string(&v).ok()) {
                    m.wifi.country = s.value;
                }
                let w = &mut m.wifi;
                for (k, slot) in [
                    ("start-channel", &mut w.start_channel),
                    ("channel-count", &mut w.channel_count),
                    ("max-tx-power", &mut w.max_tx_power),
                ] {
                    if let Some(v) = int(k, problems).and_then(|v| u8::try_from(v).ok()) {
                        *slot = v;
                    }
                }
                c.finish(
                    &["country", "start-channel", "channel-count", "max-tx-power"],
                    false,
                    problems,
                );
            }
            "reserved" => {
                m.reserved = int_list(&c, problems);
                c.finish(&[], false, problems);
            }
            _ => problems.push(crate::manifest::reader::unknown_node(
                &c,
                "`module`",
                &["description", "uart", "wifi", "reserved"],
            )),
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_loads_and_has_every_issue_module() {
        let cat = Catalogue::builtin();
        for (chip, names) in [
            (
                Chip::Esp32,
                &[
                    "WROOM-32",
                    "WROVER-32",
                    "PICO-D4",
                    "SOLO-1",
                    "MINI-1",
                    "ESP32-D2WD",
                    "ESP32-SDIO",
                    "ESP32_QCLOUD",
                ][..],
            ),
            (
                Chip::Esp32c3,
                &[
                    "MINI-1",
                    "ESP32C3-SPI",
                    "ESP32C3_QCLOUD",
                    "ESP32C3_RAINMAKER",
                ][..],
            ),
        ] {
            for name in names {
                let found = cat.find(name, Some(chip));
                assert_eq!(found.len(), 1, "{name} on {chip}");
                assert!(
                    !cat.releases_of(found[0]).is_empty(),
                    "{name} ships in no release"
                );
            }
        }
        assert_eq!(cat.find("mini-1", None).len(), 2);
    }
}
