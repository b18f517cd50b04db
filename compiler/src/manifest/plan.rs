//! The resolved, validated plan: everything the emit stage needs, nothing it must check again.
//!
//! A [`Plan`] is built by [`super::resolve`] from a manifest, the manifests it extends and the
//! module catalogue. Every file the build will read is listed in [`Plan::inputs`], so the cache
//! can key images by content.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::document::PkiRole;
use super::source::Place;
use crate::device_match::MatchRule;
use crate::release::{Era, NvsPages, Release};
use crate::target::{Chip, FlashSettings};

/// Everything needed to emit a manifest's images.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Manifest name: output directory, journal and log name.
    pub name: String,
    /// The manifest file.
    pub manifest: PathBuf,
    /// Chip.
    pub chip: Chip,
    /// Catalogue module.
    pub module: ModuleInfo,
    /// ESP-AT release.
    pub release: Release,
    /// Storage era of the release.
    pub era: Era,
    /// Trailing-page form of the mfg_nvs image (era B).
    pub nvs_pages: NvsPages,
    /// Flash settings.
    pub flash: FlashSettings,
    /// Factory parameters (era A `factory_param.bin`, era B `factory_param` namespace).
    pub factory: FactoryParams,
    /// Enabled Kconfig symbols of the firmware build (dependency-file names, no `CONFIG_`).
    pub features: BTreeSet<String>,
    /// The primary partition table.
    pub partition_table: TablePlan,
    /// The at_customize table.
    pub at_customize: TablePlan,
    /// PKI items in the order ESP-AT's dependency file lists their roles.
    pub pki: Vec<PkiPlan>,
    /// GATTS table, when the manifest has BLE services (and the firmware BLE).
    pub ble: Option<BlePlan>,
    /// Firmware parts to flash besides the generated images.
    pub firmware: Vec<PartPlan>,
    /// Daemon match rules.
    pub matches: Vec<MatchRule>,
    /// Every file the build reads (manifests, certificates, CSVs, firmware) with its bytes,
    /// read once while resolving so that emitting is pure and cache keys hash contents.
    pub files: InputFiles,
    /// Per-device identity (`identity` section): applied per board by
    /// [`crate::identity::personalize`].
    pub identity: Option<super::identity::IdentityPlan>,
}

/// Files read while resolving, by path. Its `Debug` shows each file's size and blake3, never
/// its bytes: key files are inputs too.
#[derive(Clone, Default)]
pub struct InputFiles(pub std::collections::BTreeMap<PathBuf, std::sync::Arc<[u8]>>);

impl std::fmt::Debug for InputFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(path, bytes)| {
                (
                    path,
                    format!(
                        "{} bytes, blake3 {}",
                        bytes.len(),
                        blake3::hash(bytes).to_hex()
                    ),
                )
            }))
            .finish()
    }
}

impl InputFiles {
    /// The bytes of a file the plan names. Every path in a plan is in here.
    pub fn get(&self, path: &std::path::Path) -> Option<&std::sync::Arc<[u8]>> {
        self.0.get(path)
    }
}

impl Serialize for InputFiles {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (path, bytes) in &self.0 {
            m.serialize_entry(
                &path.display().to_string(),
                &blake3::hash(bytes).to_hex().to_string(),
            )?;
        }
        m.end()
    }
}

/// The catalogue module a plan uses.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    /// Module name as ESP-AT spells it (`WROOM-32`).
    pub name: String,
    /// ESP-AT platform string (`PLATFORM_ESP32`).
    pub platform: String,
    /// module_config directory.
    pub config_dir: String,
    /// Description.
    pub description: String,
}

/// Factory parameters; -1 means unset/none, as ESP-AT writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactoryParams {
    /// Module name written into the parameters.
    pub module_name: String,
    /// Platform string.
    pub platform: String,
    /// UART number.
    pub uart_port: i32,
    /// Baud rate.
    pub uart_baudrate: i32,
    /// TX GPIO.
    pub uart_tx_pin: i32,
    /// RX GPIO.
    pub uart_rx_pin: i32,
    /// CTS GPIO.
    pub uart_cts_pin: i32,
    /// RTS GPIO.
    pub uart_rts_pin: i32,
    /// Country code.
    pub country_code: String,
    /// First Wi-Fi channel.
    pub start_channel: u8,
    /// Channel count.
    pub channel_num: u8,
    /// Max TX power (0.25 dBm).
    pub max_tx_power: u8,
    /// Default AT+SYSSTORE mode; written only for releases that have it.
    pub sys_store: Option<u8>,
}

/// One row of a partition table, as CSV text (offsets and sizes keep their text so flash
/// arguments print them as ESP-AT does).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableRow {
    /// Name.
    pub name: String,
    /// Type text (`data`, `app`, `0x40`).
    pub ty: String,
    /// Subtype text.
    pub subtype: String,
    /// Offset text; empty = automatic.
    pub offset: String,
    /// Size text.
    pub size: String,
    /// Flags text.
    pub flags: String,
    /// Contents to flash into the partition (user partitions).
    pub file: Option<PathBuf>,
    /// Where the manifest wrote this row; `None` for catalogue rows.
    #[serde(skip)]
    pub place: Option<Place>,
}

/// A partition table and where it goes.
#[derive(Debug, Clone, Serialize)]
pub struct TablePlan {
    /// Flash offset of the table.
    pub offset: u32,
    /// Catalogue file the rows started from (`None` when replaced).
    pub source: Option<String>,
    /// Rows in table order.
    pub rows: Vec<TableRow>,
    /// The rows laid out and verified as gen_esp32part.py does (offsets placed); `None` only
    /// while resolving or when the table has errors.
    #[serde(skip)]
    pub layout: Option<crate::partition_table::PartitionTable>,
}

impl TablePlan {
    /// The rows as CSV text in gen_esp32part's dialect.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("# Name, Type, SubType, Offset, Size, Flags\n");
        for r in &self.rows {
            s.push_str(&format!(
                "{},{},{},{},{},{}\n",
                r.name, r.ty, r.subtype, r.offset, r.size, r.flags
            ));
        }
        s
    }

    /// The row called `name`.
    pub fn row(&self, name: &str) -> Option<&TableRow> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The laid-out partition called `name`.
    pub fn partition(&self, name: &str) -> Option<&crate::partition_table::Partition> {
        self.layout
            .as_ref()?
            .partitions()
            .iter()
            .find(|p| p.name == name)
    }
}

/// The PKI files of one role.
#[derive(Debug, Clone, Serialize)]
pub struct PkiPlan {
    /// Role.
    pub role: PkiRole,
    /// ESP-AT's name for it (`server_cert`, `wpa2_ca` / `wpa_ent_ca`): the era-A partition or
    /// era-B namespace.
    pub name: String,
    /// Files in order (IDs 0, 1, ...).
    pub files: Vec<PathBuf>,
    /// A CA certificate that must have signed the certificates (checked, not flashed).
    pub issuer: Option<PathBuf>,
    /// Where the manifest names them.
    #[serde(skip)]
    pub place: Option<Place>,
}

/// The GATTS table in the two forms ESP-AT's generators read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlePlan {
    /// Era B: the attribute rows, each becoming a `cfgN` string of `ble_data`.
    pub rows: Vec<crate::esp_at::ble_data::GattRow>,
    /// Era A: the table as `BLEService.py` reads it (header columns + rows), for `ble_data.bin`.
    pub table: crate::esp_at::ble_data::GattCsv,
}

impl Serialize for BlePlan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.rows.iter().map(|r| r.fields().join(",")))
    }
}

/// A firmware part to flash.
#[derive(Debug, Clone, Serialize)]
pub struct PartPlan {
    /// Image name (`bootloader`, `app`, ...).
    pub name: String,
    /// Flash offset.
    pub offset: u32,
    /// The binary.
    pub file: PathBuf,
}
