//! The parsed manifest: a typed tree that keeps every span (stage 1 of parse → resolve → emit).
//!
//! A [`Document`] is what one file says, nothing more: no catalogue defaults, no base manifests.
//! Its JSON form (every `Spanned<T>` serialises as `T`) is what `schemas/manifest.schema.json`
//! describes.

use std::path::PathBuf;

use kdl::{KdlDocument, KdlValue};
use schemars::JsonSchema;
use serde::Serialize;

use super::error::{ErrorKind, ManifestError};
use super::reader::{NodeReader, Problems, unknown_node, value};
use super::source::{Place, SourceFile, Spanned};
use crate::esp_at::factory_param::{BAUD_MAX, BAUD_MIN};
use crate::target::Chip;

/// The manifest language version this build understands.
pub const LANGUAGE_VERSION: i128 = 1;

/// One manifest file, parsed.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
#[serde(rename_all = "kebab-case")]
#[schemars(
    title = "espfleet manifest",
    description = "The JSON form of an espfleet KDL device manifest (language version 1). See manifests/README.md."
)]
pub struct Document {
    /// `espfleet 1`: the language version. Required, must be 1.
    pub espfleet: Option<Spanned<u32>>,
    /// `extends "base.kdl" ...`: base manifests, relative to this file, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extends: Vec<Spanned<PathBuf>>,
    /// `name "bench-c3-01"`: output directory and log name; defaults to the file stem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Spanned<String>>,
    /// `module "WROOM-32" chip="esp32"`: the catalogue module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<ModuleNode>,
    /// `esp-at "v4.1.1.0"`: the ESP-AT release the firmware comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub esp_at: Option<EspAtNode>,
    /// `flash mode="dio" freq="40m" size="4MB"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash: Option<FlashNode>,
    /// `uart port=1 baud=115200 tx=17 rx=16 cts=15 rts=14`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uart: Option<UartNode>,
    /// `wifi country="CN" start-channel=1 channel-count=13 max-tx-power=78`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wifi: Option<WifiNode>,
    /// `sys-store 1`: default AT+SYSSTORE mode (ESP-AT v4.1.0.0 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sys_store: Option<Spanned<u8>>,
    /// `features { AT_BLE_COMMAND_SUPPORT #true }`: Kconfig switches of the firmware build.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<FeatureNode>,
    /// `partition-table offset=0x8000 { ... }`: edits to the primary partition table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_table: Option<TableNode>,
    /// `at-customize offset=0x20000 { ... }`: edits to ESP-AT's at_customize table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_customize: Option<TableNode>,
    /// `certificates { server-cert "server.crt" ... }`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateNode>,
    /// `ble { ... }`: BLE GATTS services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ble: Option<BleNode>,
    /// `firmware { release "dir" ; part "app" "esp-at.bin" }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareNode>,
    /// `match vid=0x10c4 pid=0xea60 ...`: which boards the daemon flashes with this manifest.
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<MatchNode>,
    /// `identity { serial ... mint ... | pool ... slot ... nvs ... }`: per-device serial,
    /// certificate and NVS values, allocated when a board is plugged in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<super::identity::IdentityNode>,
}

/// `module "NAME" chip="esp32"`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ModuleNode {
    /// Module name as ESP-AT spells it (`WROOM-32`, `MINI-1`, `ESP32C3-SPI`).
    pub name: Spanned<String>,
    /// Chip, needed when the name exists for several chips (`MINI-1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chip: Option<Spanned<Chip>>,
}

/// `esp-at "v4.1.1.0" nvs-pages="legacy"`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct EspAtNode {
    /// Release tag (`v2.4.0.0` … `v5.0.1.0`, or `master`).
    pub release: Spanned<String>,
    /// Trailing-page form of the mfg_nvs image: `legacy` (every page Full) or `active`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^(legacy|active)$"))]
    pub nvs_pages: Option<Spanned<String>>,
}

/// `flash mode= freq= size=`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct FlashNode {
    /// `qio`, `qout`, `dio` or `dout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Spanned<String>>,
    /// `80m`, `40m`, `26m` or `20m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freq: Option<Spanned<String>>,
    /// `1MB` … `16MB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<Spanned<String>>,
}

/// `uart port= baud= tx= rx= cts= rts=`; -1 means "none" / "unset", as ESP-AT writes it.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct UartNode {
    /// UART number (0–2 on ESP32, 0–1 on ESP32-C3), or -1 for SDIO/SPI modules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<Spanned<i32>>,
    /// Default baud rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baud: Option<Spanned<i32>>,
    /// TX GPIO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx: Option<Spanned<i32>>,
    /// RX GPIO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx: Option<Spanned<i32>>,
    /// CTS GPIO, -1 for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cts: Option<Spanned<i32>>,
    /// RTS GPIO, -1 for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rts: Option<Spanned<i32>>,
}

/// `wifi country= start-channel= channel-count= max-tx-power=`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
#[serde(rename_all = "kebab-case")]
pub struct WifiNode {
    /// Two-letter country code (`CN`, `US`, `DE`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<Spanned<String>>,
    /// First channel, 1–14.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_channel: Option<Spanned<u8>>,
    /// Number of channels, 1–14.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_count: Option<Spanned<u8>>,
    /// Maximum TX power in units of 0.25 dBm (40–84 is what ESP-AT accepts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tx_power: Option<Spanned<u8>>,
}

/// `SYMBOL #true|#false` inside `features`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FeatureNode {
    /// Kconfig symbol without `CONFIG_` (`AT_BLE_COMMAND_SUPPORT`).
    pub symbol: Spanned<String>,
    /// Whether the firmware is built with it.
    pub enabled: Spanned<bool>,
}

/// `partition-table` / `at-customize` block.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct TableNode {
    /// Flash offset of the table itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<Spanned<u32>>,
    /// `replace=#true`: start from an empty table instead of the catalogue's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace: Option<Spanned<bool>>,
    /// `partition "name" ...` rows: change a catalogue row of that name, or add one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionNode>,
    /// `remove "name"`: drop a catalogue row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<Spanned<String>>,
}

/// `partition "name" type= subtype= offset= size= flags= file=`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PartitionNode {
    /// Partition name, at most 16 bytes.
    pub name: Spanned<String>,
    /// `app`, `data`, or a number (`0x40`). In at_customize, defaults to 0x40.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<Spanned<String>>,
    /// Subtype keyword (`nvs`, `ota_0`, ...) or number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtype: Option<Spanned<String>>,
    /// Offset, as a number or CSV text; omitted means placed automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<Spanned<String>>,
    /// Size, as a number or CSV text (`"112K"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<Spanned<String>>,
    /// Flags: `encrypted`, `readonly`, separated by `:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<Spanned<String>>,
    /// Contents to flash into it (at_customize user partitions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<Spanned<PathBuf>>,
}

/// The PKI roles ESP-AT reads, each one partition (era A) or NVS namespace (era B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PkiRole {
    /// SSL server certificate.
    ServerCert,
    /// SSL server private key.
    ServerKey,
    /// CA the SSL server uses to verify clients.
    ServerCa,
    /// SSL client certificate(s).
    ClientCert,
    /// SSL client key(s).
    ClientKey,
    /// CA(s) the SSL client uses to verify servers.
    ClientCa,
    /// MQTT client certificate.
    MqttCert,
    /// MQTT client key.
    MqttKey,
    /// MQTT broker CA.
    MqttCa,
    /// HTTPS client certificate(s) (ESP-AT v4.1+).
    HttpsCert,
    /// HTTPS client key(s) (v4.1+).
    HttpsKey,
    /// HTTPS server CA(s) (v4.1+).
    HttpsCa,
    /// WSS client certificate(s) (v4.1+).
    WssCert,
    /// WSS client key(s) (v4.1+).
    WssKey,
    /// WSS server CA(s) (v4.1+).
    WssCa,
    /// WPA2/WPA3-Enterprise client certificate.
    EapCert,
    /// WPA2/WPA3-Enterprise client key.
    EapKey,
    /// WPA2/WPA3-Enterprise CA.
    EapCa,
}

impl PkiRole {
    /// Every role, in the order of ESP-AT's dependency files.
    pub const ALL: [PkiRole; 18] = [
        PkiRole::ServerCert,
        PkiRole::ServerKey,
        PkiRole::ServerCa,
        PkiRole::ClientCert,
        PkiRole::ClientKey,
        PkiRole::ClientCa,
        PkiRole::EapCert,
        PkiRole::EapKey,
        PkiRole::EapCa,
        PkiRole::MqttCert,
        PkiRole::MqttKey,
        PkiRole::MqttCa,
        PkiRole::HttpsCert,
        PkiRole::HttpsKey,
        PkiRole::HttpsCa,
        PkiRole::WssCert,
        PkiRole::WssKey,
        PkiRole::WssCa,
    ];

    /// The manifest node name (`server-cert`).
    pub fn node_name(self) -> &'static str {
        match self {
            PkiRole::ServerCert => "server-cert",
            PkiRole::ServerKey => "server-key",
            PkiRole::ServerCa => "server-ca",
            PkiRole::ClientCert => "client-cert",
            PkiRole::ClientKey => "client-key",
            PkiRole::ClientCa => "client-ca",
            PkiRole::MqttCert => "mqtt-cert",
            PkiRole::MqttKey => "mqtt-key",
            PkiRole::MqttCa => "mqtt-ca",
            PkiRole::HttpsCert => "https-cert",
            PkiRole::HttpsKey => "https-key",
            PkiRole::HttpsCa => "https-ca",
            PkiRole::WssCert => "wss-cert",
            PkiRole::WssKey => "wss-key",
            PkiRole::WssCa => "wss-ca",
            PkiRole::EapCert => "eap-cert",
            PkiRole::EapKey => "eap-key",
            PkiRole::EapCa => "eap-ca",
        }
    }

    /// Parses a node name; `wpa2-*` and `wpa-ent-*` are accepted for the EAP roles.
    pub fn from_node_name(s: &str) -> Option<Self> {
        let s = s.replace("wpa2-", "eap-").replace("wpa-ent-", "eap-");
        PkiRole::ALL.into_iter().find(|r| r.node_name() == s)
    }

    /// What the item is: certificate, key or CA certificate.
    pub fn kind(self) -> PkiKind {
        match self {
            PkiRole::ServerCert
            | PkiRole::ClientCert
            | PkiRole::MqttCert
            | PkiRole::HttpsCert
            | PkiRole::WssCert
            | PkiRole::EapCert => PkiKind::Cert,
            PkiRole::ServerKey
            | PkiRole::ClientKey
            | PkiRole::MqttKey
            | PkiRole::HttpsKey
            | PkiRole::WssKey
            | PkiRole::EapKey => PkiKind::Key,
            PkiRole::ServerCa
            | PkiRole::ClientCa
            | PkiRole::MqttCa
            | PkiRole::HttpsCa
            | PkiRole::WssCa
            | PkiRole::EapCa => PkiKind::Ca,
        }
    }

    /// The certificate role a key role belongs to (`server-key` → `server-cert`).
    pub fn certificate_for_key(self) -> Option<PkiRole> {
        Some(match self {
            PkiRole::ServerKey => PkiRole::ServerCert,
            PkiRole::ClientKey => PkiRole::ClientCert,
            PkiRole::MqttKey => PkiRole::MqttCert,
            PkiRole::HttpsKey => PkiRole::HttpsCert,
            PkiRole::WssKey => PkiRole::WssCert,
            PkiRole::EapKey => PkiRole::EapCert,
            _ => return None,
        })
    }
}

/// Certificate, key, or CA certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PkiKind {
    /// An end-entity certificate.
    Cert,
    /// A private key.
    Key,
    /// A CA certificate.
    Ca,
}

/// `server-cert "a.crt" ["b.crt" ...] issuer="ca.crt"` inside `certificates`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CertificateNode {
    /// Which role.
    pub role: Spanned<PkiRole>,
    /// PEM or DER files, relative to the manifest. Several make a numbered set (`client_cert.0`, `.1`).
    pub files: Vec<Spanned<PathBuf>>,
    /// A CA certificate that must have signed these certificates (checked, not flashed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Spanned<PathBuf>>,
}

/// `ble { gatts "table.csv" | service ... }`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct BleNode {
    /// An ESP-AT GATTS CSV (`gatts_data.csv` / `example.csv` form), used as is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gatts: Option<Spanned<PathBuf>>,
    /// Services, in table order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceNode>,
}

/// A UUID as written: 16-bit number, or 128-bit text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum UuidValue {
    /// A 16-bit UUID such as `0x2800`.
    Short(u16),
    /// A 128-bit UUID, 32 hex digits (dashes allowed).
    Long(String),
}

/// `service UUID perm=0x01 { characteristic ... }`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServiceNode {
    /// Service UUID.
    pub uuid: Spanned<UuidValue>,
    /// Attribute permissions of the declaration row (default 0x01, read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub perm: Option<Spanned<u8>>,
    /// Characteristics in order.
    pub characteristics: Vec<AttributeNode>,
}

/// `characteristic UUID properties="read notify" perm= value= max-len= len= { descriptor ... }`
/// or `descriptor UUID perm= value= max-len= len=`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct AttributeNode {
    /// Attribute UUID.
    pub uuid: Spanned<UuidValue>,
    /// Characteristic properties (`read write write-no-response notify indicate broadcast
    /// auth-signed extended`, or a number). Characteristics only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<Spanned<u8>>,
    /// Attribute permissions (ESP-IDF `ESP_GATT_PERM_*` bits), default 0x01.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub perm: Option<Spanned<u8>>,
    /// Initial value, hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Spanned<String>>,
    /// Maximum value length; default: the value's length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_len: Option<Spanned<u16>>,
    /// Current value length; default: the value's length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub len: Option<Spanned<u16>>,
    /// Descriptors of a characteristic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub descriptors: Vec<AttributeNode>,
}

/// `firmware { release "dir" ; part "name" "file" offset= }`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct FirmwareNode {
    /// An ESP-AT build or release folder holding `flasher_args.json` or `download.config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<Spanned<PathBuf>>,
    /// Parts given one by one (they replace a release part of the same name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartNode>,
}

/// `part "app" "esp-at.bin" offset=0x100000`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PartNode {
    /// Image name: `bootloader`, `app`, `ota_data_initial`, `phy_init`, or a partition name.
    pub name: Spanned<String>,
    /// The binary, relative to the manifest.
    pub file: Spanned<PathBuf>,
    /// Flash offset; defaults to where the image belongs (bootloader offset, app partition, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<Spanned<u32>>,
}

/// `match vid= pid= serial= port= usb-path= chip= mac=`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct MatchNode {
    /// The rule.
    pub rule: Spanned<crate::device_match::MatchRule>,
}

const TOP_LEVEL: &[&str] = &[
    "espfleet",
    "extends",
    "name",
    "module",
    "esp-at",
    "flash",
    "uart",
    "wifi",
    "sys-store",
    "features",
    "partition-table",
    "at-customize",
    "certificates",
    "ble",
    "firmware",
    "match",
    "identity",
];

/// Parses one manifest file. Problems are returned alongside whatever could be read, so that
/// resolving can go on and report its own problems in the same run.
pub fn parse(file: &SourceFile) -> (Document, Vec<ManifestError>) {
    let mut problems = Problems::default();
    let kdl = match super::kdl_guard::parse(file) {
        Ok(d) => d,
        Err(errors) => return (Document::default(), errors),
    };
    let mut doc = Document::default();
    let mut seen: Vec<(&str, Place)> = Vec::new();
    for node in kdl.nodes() {
        let r = NodeReader::new(node, file);
        let name = r.name();
        if !TOP_LEVEL.contains(&name) {
            problems.push(unknown_node(&r, "a manifest", TOP_LEVEL));
            continue;
        }
        if name != "match" {
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                problems.push(
                    ManifestError::new(
                        ErrorKind::NodeDuplicate,
                        format!("`{name}` is given twice"),
                    )
                    .at(&r.place(), "given again here")
                    .note(first, "first given here")
                    .help(format!(
                        "keep one `{name}` node; put all its properties on it"
                    )),
                );
                continue;
            }
            seen.push((name, r.place()));
        }
        parse_top(&r, &mut doc, &mut problems);
    }
    (doc, problems.0)
}

fn take<T>(r: Result<T, ManifestError>, problems: &mut Problems) -> Option<T> {
    r.map_err(|e| problems.push(e)).ok()
}

fn missing_arg(r: &NodeReader<'_>, what: &str, example: &str) -> ManifestError {
    ManifestError::new(
        ErrorKind::ArgumentMissing,
        format!("`{}` needs {what}", r.name()),
    )
    .at(&r.place(), format!("{what} missing"))
    .help(format!("write it like: {example}"))
}

fn first_string(
    r: &NodeReader<'_>,
    what: &str,
    example: &str,
    problems: &mut Problems,
) -> Option<Spanned<String>> {
    if let Some(v) = r.arg(0) {
        take(value::string(&v), problems)
    } else {
        problems.push(missing_arg(r, what, example));
        None
    }
}

fn int_prop<T: TryFrom<i128>>(
    r: &NodeReader<'_>,
    key: &str,
    min: i128,
    max: i128,
    problems: &mut Problems,
) -> Option<Spanned<T>> {
    let v = r.prop(key)?;
    let n = take(value::int(&v, min, max), problems)?;
    // In range by construction, so the conversion cannot fail.
    T::try_from(n.value).ok().map(|t| Spanned::new(t, n.place))
}

fn string_prop(r: &NodeReader<'_>, key: &str, problems: &mut Problems) -> Option<Spanned<String>> {
    let v = r.prop(key)?;
    take(value::string(&v), problems)
}

/// Text form of a number-or-string property (offsets and sizes keep the text for flash args).
fn text_prop(r: &NodeReader<'_>, key: &str, problems: &mut Problems) -> Option<Spanned<String>> {
    let v = r.prop(key)?;
    match v.value {
        KdlValue::Integer(n) if *n >= 0 => Some(Spanned::new(format!("{n:#x}"), v.place)),
        KdlValue::Integer(n) => Some(Spanned::new(n.to_string(), v.place)),
        KdlValue::String(s) => Some(Spanned::new(s.clone(), v.place)),
        _ => {
            problems.push(
                ManifestError::new(
                    ErrorKind::ValueTypeWrong,
                    format!("`{key}` must be a number or a string"),
                )
                .at(&v.place, "expected a number or a string")
                .help("write 0x10000, 65536 or \"64K\""),
            );
            None
        }
    }
}

fn parse_top(r: &NodeReader<'_>, doc: &mut Document, problems: &mut Problems) {
    match r.name() {
        "espfleet" => {
            match r.arg(0) {
                Some(v) => {
                    if let Some(n) = take(value::int(&v, 0, i128::from(u32::MAX)), problems) {
                        if n.value != LANGUAGE_VERSION {
                            problems.push(
                                ManifestError::new(
                                    ErrorKind::LanguageVersionUnsupported,
                                    format!("manifest language version {} is not supported", n.value),
                                )
                                .at(&n.place, "unsupported version")
                                .help(format!("this espfleet reads language version {LANGUAGE_VERSION}: write `espfleet {LANGUAGE_VERSION}`")),
                            );
                        }
                        doc.espfleet = u32::try_from(n.value)
                            .ok()
                            .map(|v| Spanned::new(v, n.place));
                    }
                }
                None => problems.push(missing_arg(r, "the language version", "espfleet 1")),
            }
            r.finish(&[], false, problems);
        }
        "extends" => {
            let args = r.args();
            if args.is_empty() {
                problems.push(missing_arg(
                    r,
                    "at least one base manifest",
                    "extends \"base.kdl\"",
                ));
            }
            for a in &args {
                if let Some(s) = take(value::string(a), problems) {
                    doc.extends.push(s.map(PathBuf::from));
                }
            }
            r.finish(&[], false, problems);
        }
        "name" => {
            if let Some(s) = first_string(r, "a name", "name \"bench-c3-01\"", problems) {
                let ok = !s.value.is_empty()
                    && s.value.len() <= 64
                    && s.value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                    && !s.value.starts_with('.');
                if ok {
                    doc.name = Some(s);
                } else {
                    problems.push(
                        ManifestError::new(ErrorKind::ValueInvalid, format!("`{}` is not a valid manifest name", s.value))
                            .at(&s.place, "invalid name")
                            .help("use 1-64 characters from A-Z a-z 0-9 . _ - (it becomes a directory name), not starting with a dot"),
                    );
                }
            }
            r.finish(&[], false, problems);
        }
        "module" => {
            let name = first_string(
                r,
                "a module name",
                "module \"WROOM-32\" chip=\"esp32\"",
                problems,
            );
            let chip = r.prop("chip").and_then(|v| {
                let s = take(value::string(&v), problems)?;
                match s.value.parse::<Chip>() {
                    Ok(c) => Some(Spanned::new(c, s.place)),
                    Err(e) => {
                        problems.push(
                            ManifestError::new(ErrorKind::ValueInvalid, e.to_string())
                                .at(&s.place, "unknown chip")
                                .help("write chip=\"esp32\" or chip=\"esp32c3\""),
                        );
                        None
                    }
                }
            });
            if let Some(name) = name {
                doc.module = Some(ModuleNode { name, chip });
            }
            r.finish(&["chip"], false, problems);
        }
        "esp-at" => {
            let release = first_string(r, "a release tag", "esp-at \"v4.1.1.0\"", problems);
            let nvs_pages = string_prop(r, "nvs-pages", problems).and_then(|s| {
                if s.value == "legacy" || s.value == "active" {
                    Some(s)
                } else {
                    problems.push(
                        ManifestError::new(ErrorKind::ValueInvalid, format!("unknown nvs-pages form `{}`", s.value))
                            .at(&s.place, "expected legacy or active")
                            .help("nvs-pages=\"legacy\" (every page Full, as ESP-IDF ≤ 5.1 wrote) or \"active\" (last data page Active, newer generators)"),
                    );
                    None
                }
            });
            if let Some(release) = release {
                doc.esp_at = Some(EspAtNode { release, nvs_pages });
            }
            r.finish(&["nvs-pages"], false, problems);
        }
        "flash" => {
            let node = FlashNode {
                mode: string_prop(r, "mode", problems),
                freq: string_prop(r, "freq", problems),
                size: string_prop(r, "size", problems),
            };
            doc.flash = Some(node);
            r.finish(&["mode", "freq", "size"], false, problems);
        }
        "uart" => {
            let baud = int_prop(r, "baud", -1, i128::from(BAUD_MAX), problems).and_then(|b| {
                if b.value == -1 || b.value >= BAUD_MIN {
                    Some(b)
                } else {
                    problems.push(
                        ManifestError::new(ErrorKind::ValueInvalid, format!("baud rate {} is below {BAUD_MIN}", b.value))
                            .at(&b.place, "out of range")
                            .help(format!("ESP-AT's UART runs at {BAUD_MIN} to {BAUD_MAX} baud (AT+UART_DEF); -1 only for modules without an AT UART")),
                    );
                    None
                }
            });
            let node = UartNode {
                port: int_prop(r, "port", -1, 2, problems),
                baud,
                tx: int_prop(r, "tx", -1, 48, problems),
                rx: int_prop(r, "rx", -1, 48, problems),
                cts: int_prop(r, "cts", -1, 48, problems),
                rts: int_prop(r, "rts", -1, 48, problems),
            };
            doc.uart = Some(node);
            r.finish(&["port", "baud", "tx", "rx", "cts", "rts"], false, problems);
        }
        "wifi" => {
            let node = WifiNode {
                country: string_prop(r, "country", problems),
                start_channel: int_prop(r, "start-channel", 1, 14, problems),
                channel_count: int_prop(r, "channel-count", 1, 14, problems),
                max_tx_power: int_prop(r, "max-tx-power", 40, 84, problems),
            };
            doc.wifi = Some(node);
            r.finish(
                &["country", "start-channel", "channel-count", "max-tx-power"],
                false,
                problems,
            );
        }
        "sys-store" => {
            match r.arg(0) {
                Some(v) => {
                    doc.sys_store = take(value::int(&v, 0, 1), problems)
                        .map(|n| n.map(|n| u8::try_from(n).unwrap_or(1)));
                }
                None => problems.push(missing_arg(r, "0 or 1", "sys-store 1")),
            }
            r.finish(&[], false, problems);
        }
        "features" => {
            r.finish(&[], true, problems);
            for child in r.children().map(KdlDocument::nodes).unwrap_or_default() {
                let c = NodeReader::new(child, r.file());
                let symbol = Spanned::new(c.name().to_owned(), c.place());
                let enabled = match c.arg(0) {
                    Some(v) => take(value::boolean(&v), problems),
                    None => Some(Spanned::new(true, c.place())),
                };
                if let Some(enabled) = enabled {
                    doc.features.push(FeatureNode { symbol, enabled });
                }
                c.finish(&[], false, problems);
            }
        }
        "partition-table" | "at-customize" => {
            let table = parse_table(r, problems);
            if r.name() == "partition-table" {
                doc.partition_table = Some(table);
            } else {
                doc.at_customize = Some(table);
            }
        }
        "certificates" => {
            r.finish(&[], true, problems);
            let roles: Vec<&str> = PkiRole::ALL.iter().map(|r| r.node_name()).collect();
            for child in r.children().map(KdlDocument::nodes).unwrap_or_default() {
                let c = NodeReader::new(child, r.file());
                let Some(role) = PkiRole::from_node_name(c.name()) else {
                    problems.push(unknown_node(&c, "`certificates`", &roles));
                    continue;
                };
                let files: Vec<_> = c
                    .args()
                    .iter()
                    .filter_map(|a| take(value::string(a), problems))
                    .map(|s| s.map(PathBuf::from))
                    .collect();
                if files.is_empty() {
                    problems.push(missing_arg(
                        &c,
                        "one or more file paths",
                        "server-cert \"certs/server.crt\"",
                    ));
                }
                let issuer = string_prop(&c, "issuer", problems).map(|s| s.map(PathBuf::from));
                if issuer.is_some() && role.kind() == PkiKind::Key {
                    problems.push(
                        ManifestError::new(ErrorKind::PropertyUnknown, "a key has no issuer")
                            .at(&c.place(), "key")
                            .help("put issuer= on the certificate this key belongs to"),
                    );
                }
                doc.certificates.push(CertificateNode {
                    role: Spanned::new(role, c.place()),
                    files,
                    issuer,
                });
                c.finish(&["issuer"], false, problems);
            }
        }
        "ble" => {
            r.finish(&[], true, problems);
            let mut ble = BleNode::default();
            for child in r.children().map(KdlDocument::nodes).unwrap_or_default() {
                let c = NodeReader::new(child, r.file());
                match c.name() {
                    "gatts" => {
                        ble.gatts =
                            first_string(&c, "a CSV path", "gatts \"gatts_data.csv\"", problems)
                                .map(|s| s.map(PathBuf::from));
                        c.finish(&[], false, problems);
                    }
                    "service" => {
                        if let Some(s) = parse_service(&c, problems) {
                            ble.services.push(s);
                        }
                    }
                    _ => problems.push(unknown_node(&c, "`ble`", &["gatts", "service"])),
                }
            }
            doc.ble = Some(ble);
        }
        "firmware" => {
            r.finish(&[], true, problems);
            let mut fw = FirmwareNode::default();
            for child in r.children().map(KdlDocument::nodes).unwrap_or_default() {
                let c = NodeReader::new(child, r.file());
                match c.name() {
                    "release" => {
                        fw.release =
                            first_string(&c, "a folder", "release \"esp-at/build\"", problems)
                                .map(|s| s.map(PathBuf::from));
                        c.finish(&[], false, problems);
                    }
                    "part" => {
                        let name = first_string(
                            &c,
                            "a part name and a file",
                            "part \"app\" \"esp-at.bin\"",
                            problems,
                        );
                        let file = if let Some(v) = c.arg(1) {
                            take(value::string(&v), problems).map(|s| s.map(PathBuf::from))
                        } else {
                            if name.is_some() {
                                problems.push(missing_arg(
                                    &c,
                                    "a file",
                                    "part \"app\" \"esp-at.bin\"",
                                ));
                            }
                            None
                        };
                        let offset = int_prop(&c, "offset", 0, i128::from(u32::MAX), problems);
                        if let (Some(name), Some(file)) = (name, file) {
                            fw.parts.push(PartNode { name, file, offset });
                        }
                        c.finish(&["offset"], false, problems);
                    }
                    _ => problems.push(unknown_node(&c, "`firmware`", &["release", "part"])),
                }
            }
            doc.firmware = Some(fw);
        }
        "match" => {
            if let Some(m) = parse_match(r, problems) {
                doc.matches.push(m);
            }
        }
        "identity" => doc.identity = Some(super::identity::parse(r, problems)),
        _ => unreachable!("checked against TOP_LEVEL"),
    }
}

fn parse_table(r: &NodeReader<'_>, problems: &mut Problems) -> TableNode {
    let mut t = TableNode {
        offset: int_prop(r, "offset", 0, i128::from(u32::MAX), problems),
        replace: r
            .prop("replace")
            .and_then(|v| take(value::boolean(&v), problems)),
        ..TableNode::default()
    };
    r.finish(&["offset", "replace"], true, problems);
    for child in r.children().map(KdlDocument::nodes).unwrap_or_default() {
        let c = NodeReader::new(child, r.file());
        match c.name() {
            "partition" => {
                let name = first_string(
                    &c,
                    "a partition name",
                    "partition \"nvs\" size=\"56K\"",
                    problems,
                );
                let ty = text_prop(&c, "type", problems);
                let subtype = text_prop(&c, "subtype", problems);
                let offset = text_prop(&c, "offset", problems);
                let size = text_prop(&c, "size", problems);
                let flags = string_prop(&c, "flags", problems);
                let file = string_prop(&c, "file", problems).map(|s| s.map(PathBuf::from));
                if let Some(name) = name {
                    t.partitions.push(PartitionNode {
                        name,
                        ty,
                        subtype,
                        offset,
                        size,
                        flags,
                        file,
                    });
                }
                c.finish(
                    &["type", "subtype", "offset", "size", "flags", "file"],
                    false,
                    problems,
                );
            }
            "remove" => {
                for a in c.args() {
                    if let Some(s) = take(value::string(&a), problems) {
                        t.remove.push(s);
                    }
                }
                c.finish(&[], false, problems);
            }
            _ => problems.push(unknown_node(
                &c,
                &format!("`{}`", r.name()),
                &["partition", "remove"],
            )),
        }
    }
    t
}

fn parse_uuid(r: &NodeReader<'_>, problems: &mut Problems) -> Option<Spanned<UuidValue>> {
    let Some(v) = r.arg(0) else {
        problems.push(missing_arg(r, "a UUID", &format!("{} 0xA002", r.name())));
        return None;
    };
    let bad = |place: &Place| {
        ManifestError::new(ErrorKind::GattsInvalid, "not a valid UUID")
            .at(place, "expected a 16-bit number or 128-bit UUID text")
            .help("write a 16-bit UUID as a number (0x2A00) or a 128-bit UUID as text (\"ED2B4E3A-2820-492F-9507-DF165285E831\")")
    };
    match v.value {
        KdlValue::Integer(n) => {
            if let Ok(u) = u16::try_from(*n) {
                Some(Spanned::new(UuidValue::Short(u), v.place))
            } else {
                problems.push(bad(&v.place));
                None
            }
        }
        KdlValue::String(s) => {
            let hex: String = s
                .trim()
                .trim_start_matches("0x")
                .trim_start_matches("0X")
                .chars()
                .filter(|c| *c != '-')
                .collect();
            if hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                Some(Spanned::new(
                    UuidValue::Long(hex.to_ascii_uppercase()),
                    v.place,
                ))
            } else if hex.len() <= 4
                && !hex.is_empty()
                && hex.chars().all(|c| c.is_ascii_hexdigit())
            {
                u16::from_str_radix(&hex, 16)
                    .ok()
                    .map(|u| Spanned::new(UuidValue::Short(u), v.place))
            } else {
                problems.push(bad(&v.place));
                None
            }
        }
        _ => {
            problems.push(bad(&v.place));
            None
        }
    }
}

/// Characteristic property names and their bits (Bluetooth Core, Characteristic Properties).
pub const PROPERTY_BITS: &[(&str, u8)] = &[
    ("broadcast", 0x01),
    ("read", 0x02),
    ("write-no-response", 0x04),
    ("write", 0x08),
    ("notify", 0x10),
    ("indicate", 0x20),
    ("auth-signed", 0x40),
    ("extended", 0x80),
];

fn parse_properties(r: &NodeReader<'_>, problems: &mut Problems) -> Option<Spanned<u8>> {
    let v = r.prop("properties")?;
    match v.value {
        KdlValue::Integer(_) => {
            take(value::int(&v, 0, 255), problems).map(|n| n.map(|n| u8::try_from(n).unwrap_or(0)))
        }
        KdlValue::String(s) => {
            let mut bits = 0u8;
            for word in s.split([' ', ',', '|']).filter(|w| !w.is_empty()) {
                if let Some((_, b)) = PROPERTY_BITS.iter().find(|(n, _)| *n == word) {
                    bits |= b
                } else {
                    let mut e = ManifestError::new(
                        ErrorKind::GattsInvalid,
                        format!("unknown characteristic property `{word}`"),
                    )
                    .at(&v.place, "unknown property name");
                    let names = PROPERTY_BITS.iter().map(|(n, _)| *n);
                    e = match super::error::did_you_mean(word, names) {
                        Some(s) => e.help(format!("did you mean `{s}`?")),
                        None => e.help("use: broadcast read write-no-response write notify indicate auth-signed extended"),
                    };
                    problems.push(e);
                    return None;
                }
            }
            Some(Spanned::new(bits, v.place))
        }
        _ => {
            problems.push(
                ManifestError::new(
                    ErrorKind::ValueTypeWrong,
                    "properties must be names or a number",
                )
                .at(&v.place, "expected a string or number")
                .help("write properties=\"read notify\" or properties=0x12"),
            );
            None
        }
    }
}

fn parse_attribute(
    r: &NodeReader<'_>,
    is_characteristic: bool,
    problems: &mut Problems,
) -> Option<AttributeNode> {
    let uuid = parse_uuid(r, problems);
    let properties = if is_characteristic {
        parse_properties(r, problems)
    } else {
        None
    };
    let perm = int_prop(r, "perm", 0, 255, problems);
    let value = string_prop(r, "value", problems).and_then(|s| {
        let hex = s.value.trim();
        if hex.chars().all(|c| c.is_ascii_hexdigit()) && hex.len() % 2 == 1 {
            problems.push(
                ManifestError::new(ErrorKind::GattsInvalid, "a GATTS value is whole bytes of hex")
                    .at(&s.place, "odd number of hex digits")
                    .help("write two hex digits per byte, e.g. value=\"0A\" rather than \"A\""),
            );
            None
        } else if hex.chars().all(|c| c.is_ascii_hexdigit()) {
            Some(s.map(|v| v.trim().to_ascii_uppercase()))
        } else {
            problems.push(
                ManifestError::new(ErrorKind::GattsInvalid, "a GATTS value is hex digits")
                    .at(&s.place, "not hex")
                    .help("write the bytes as hex digits without 0x, e.g. value=\"30\" for the character '0'"),
            );
            None
        }
    });
    let max_len = int_prop(r, "max-len", 0, 512, problems);
    let len = int_prop(r, "len", 0, 512, problems);
    let mut descriptors = Vec::new();
    let allowed: &[&str] = if is_characteristic {
        &["properties", "perm", "value", "max-len", "len"]
    } else {
        &["perm", "value", "max-len", "len"]
    };
    r.finish(allowed, is_characteristic, problems);
    if is_characteristic {
        for child in r.children().map(KdlDocument::nodes).unwrap_or_default() {
            let c = NodeReader::new(child, r.file());
            if c.name() == "descriptor" {
                if let Some(d) = parse_attribute(&c, false, problems) {
                    descriptors.push(d);
                }
            } else {
                problems.push(unknown_node(&c, "`characteristic`", &["descriptor"]));
            }
        }
    }
    Some(AttributeNode {
        uuid: uuid?,
        properties,
        perm,
        value,
        max_len,
        len,
        descriptors,
    })
}

fn parse_service(r: &NodeReader<'_>, problems: &mut Problems) -> Option<ServiceNode> {
    let uuid = parse_uuid(r, problems);
    let perm = int_prop(r, "perm", 0, 255, problems);
    r.finish(&["perm"], true, problems);
    let mut characteristics = Vec::new();
    for child in r.children().map(KdlDocument::nodes).unwrap_or_default() {
        let c = NodeReader::new(child, r.file());
        if c.name() == "characteristic" {
            if let Some(a) = parse_attribute(&c, true, problems) {
                characteristics.push(a);
            }
        } else {
            problems.push(unknown_node(&c, "`service`", &["characteristic"]));
        }
    }
    Some(ServiceNode {
        uuid: uuid?,
        perm,
        characteristics,
    })
}

fn parse_mac(s: &Spanned<String>) -> Result<[u8; 6], ManifestError> {
    let parts: Vec<&str> = s.value.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() == 6 {
        for (i, p) in parts.iter().enumerate() {
            match u8::from_str_radix(p, 16) {
                Ok(b) if p.len() == 2 => mac[i] = b,
                _ => break,
            }
            if i == 5 {
                return Ok(mac);
            }
        }
    }
    Err(ManifestError::new(
        ErrorKind::ValueInvalid,
        format!("`{}` is not a MAC address", s.value),
    )
    .at(&s.place, "expected six hex bytes")
    .help("write it as \"24:0a:c4:12:34:56\""))
}

fn parse_match(r: &NodeReader<'_>, problems: &mut Problems) -> Option<MatchNode> {
    let mut rule = crate::device_match::MatchRule {
        vid: int_prop(r, "vid", 0, 0xFFFF, problems).map(|s| s.value),
        pid: int_prop(r, "pid", 0, 0xFFFF, problems).map(|s| s.value),
        serial: string_prop(r, "serial", problems).map(|s| s.value),
        port: string_prop(r, "port", problems).map(|s| s.value),
        usb_path: string_prop(r, "usb-path", problems).map(|s| s.value),
        ..Default::default()
    };
    if let Some(s) = string_prop(r, "chip", problems) {
        match s.value.parse::<Chip>() {
            Ok(c) => rule.chip = Some(c),
            Err(e) => problems.push(
                ManifestError::new(ErrorKind::ValueInvalid, e.to_string())
                    .at(&s.place, "unknown chip")
                    .help("write chip=\"esp32\" or chip=\"esp32c3\""),
            ),
        }
    }
    if let Some(s) = string_prop(r, "mac", problems) {
        rule.mac = take(parse_mac(&s), problems);
    }
    let allowed = ["vid", "pid", "serial", "port", "usb-path", "chip", "mac"];
    let empty = rule == crate::device_match::MatchRule::default();
    r.finish(&allowed, false, problems);
    if empty {
        problems.push(
            ManifestError::new(
                ErrorKind::ArgumentMissing,
                "`match` needs at least one property",
            )
            .at(&r.place(), "matches nothing")
            .help("give one or more of: vid, pid, serial, port, usb-path, chip, mac"),
        );
        return None;
    }
    Some(MatchNode {
        rule: Spanned::new(rule, r.node_place()),
    })
}
