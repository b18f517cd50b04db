//! Era B `mfg_nvs`: the ordered NVS namespaces and entries ESP-AT's
//! `generation_tools/mfg_nvs.py` produces (`docs/formats/esp-at-images.md` §8.1), and the `mfg_nvs.csv` text it writes.
//!
//! The order is part of the format: NVS places entries in CSV order, so the same entries in
//! another order give another image. [`MfgNvs`] keeps that order; [`MfgNvs::to_csv`] renders
//! ESP-AT's CSV (for the PyPI generator or for a reviewer), and the NVS encoder turns the same
//! list into bytes.
//!
//! Order: PKI namespaces in dependency-file order (keys `<ns>` for a directory with exactly one
//! entry, else `<ns>.<i>`), then `factory_param` (typed keys from `factory_param_type.csv`;
//! `sys_store` from v4.1.0.0), then `ble_data` (`cfg0`, `cfg1`, ...) when BLE is enabled.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ble_data::{self, GattRow};
use super::release::{NvsPages, Release, ReleaseFormats as _};
use crate::nvs::{self, NvsEntry, NvsError, TrailingPages, Value};

/// A typed NVS value as `mfg_nvs.csv` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MfgValue {
    /// `data,u8`.
    U8(u8),
    /// `data,i8`.
    I8(i8),
    /// `data,u16`.
    U16(u16),
    /// `data,i16`.
    I16(i16),
    /// `data,u32`.
    U32(u32),
    /// `data,i32`.
    I32(i32),
    /// `data,u64`.
    U64(u64),
    /// `data,i64`.
    I64(i64),
    /// `data,string` (stored with a trailing NUL by the NVS encoder).
    String(String),
    /// `file,binary,<path>`: a blob with the file's bytes.
    File {
        /// Absolute path written into the CSV.
        path: PathBuf,
        /// The file's bytes (what the blob holds).
        data: Arc<[u8]>,
    },
}

impl MfgValue {
    /// The CSV `type,encoding` pair.
    pub fn csv_type(&self) -> (&'static str, &'static str) {
        match self {
            MfgValue::U8(_) => ("data", "u8"),
            MfgValue::I8(_) => ("data", "i8"),
            MfgValue::U16(_) => ("data", "u16"),
            MfgValue::I16(_) => ("data", "i16"),
            MfgValue::U32(_) => ("data", "u32"),
            MfgValue::I32(_) => ("data", "i32"),
            MfgValue::U64(_) => ("data", "u64"),
            MfgValue::I64(_) => ("data", "i64"),
            MfgValue::String(_) => ("data", "string"),
            MfgValue::File { .. } => ("file", "binary"),
        }
    }

    /// Parses a CSV value for an encoding (`i8`, `string`, ...) as the NVS generator does
    /// (`int(value)` for numbers).
    pub fn parse(encoding: &str, text: &str) -> Option<Self> {
        let t = text.trim();
        Some(match encoding {
            "u8" => MfgValue::U8(t.parse().ok()?),
            "i8" => MfgValue::I8(t.parse().ok()?),
            "u16" => MfgValue::U16(t.parse().ok()?),
            "i16" => MfgValue::I16(t.parse().ok()?),
            "u32" => MfgValue::U32(t.parse().ok()?),
            "i32" => MfgValue::I32(t.parse().ok()?),
            "u64" => MfgValue::U64(t.parse().ok()?),
            "i64" => MfgValue::I64(t.parse().ok()?),
            "string" => MfgValue::String(text.to_owned()),
            _ => return None,
        })
    }

    fn csv_value(&self) -> String {
        match self {
            MfgValue::U8(v) => v.to_string(),
            MfgValue::I8(v) => v.to_string(),
            MfgValue::U16(v) => v.to_string(),
            MfgValue::I16(v) => v.to_string(),
            MfgValue::U32(v) => v.to_string(),
            MfgValue::I32(v) => v.to_string(),
            MfgValue::U64(v) => v.to_string(),
            MfgValue::I64(v) => v.to_string(),
            // ESP-AT quotes without escaping.
            MfgValue::String(s) => format!("\"{s}\""),
            MfgValue::File { path, .. } => path.display().to_string(),
        }
    }
}

/// One key of a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfgEntry {
    /// NVS key (≤ 15 bytes).
    pub key: String,
    /// Its value.
    pub value: MfgValue,
}

/// A namespace and its keys, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfgNamespace {
    /// Namespace name (≤ 15 bytes).
    pub name: String,
    /// Keys in write order.
    pub entries: Vec<MfgEntry>,
}

/// The whole `mfg_nvs` content, in write order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MfgNvs {
    /// Namespaces in write order (each name once).
    pub namespaces: Vec<MfgNamespace>,
}

/// Errors building the `mfg_nvs` entry list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum MfgNvsError {
    /// `factory_param_data.csv` has no row for the module.
    #[error("factory_param_data.csv has no row for {platform} / {module}")]
    #[diagnostic(
        code(espfleet::esp_at::mfg_nvs::module_row_missing),
        help(
            "platform and module name must match a row exactly (case-sensitive), e.g. PLATFORM_ESP32 / WROOM-32"
        )
    )]
    ModuleRowMissing {
        /// Platform asked for.
        platform: String,
        /// Module asked for.
        module: String,
    },
    /// A type-table key has no data column.
    #[error("factory_param_data.csv has no `{0}` column, but factory_param_type.csv lists it")]
    #[diagnostic(
        code(espfleet::esp_at::mfg_nvs::column_missing),
        help("add the column to the data CSV or remove the key from the type CSV")
    )]
    ColumnMissing(String),
    /// A value that does not parse for its encoding.
    #[error("factory_param `{key}`: `{value}` is not a valid {encoding}")]
    #[diagnostic(
        code(espfleet::esp_at::mfg_nvs::value),
        help("numbers are decimal and must fit the type (i8: -128..127, u8: 0..255, ...)")
    )]
    Value {
        /// Key.
        key: String,
        /// Encoding from the type table.
        encoding: String,
        /// The text.
        value: String,
    },
    /// A CSV the reader cannot parse.
    #[error("{file}: {message}")]
    #[diagnostic(code(espfleet::esp_at::mfg_nvs::csv), help("fix the CSV quoting"))]
    Csv {
        /// Which file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A size string `at_parse_size` rejects.
    #[error("`{0}` is not a partition size (expected 0x… or a number with K/M/G/T)")]
    #[diagnostic(
        code(espfleet::esp_at::mfg_nvs::size),
        help("write the size like at_customize.csv does: 112K, 0x1C000")
    )]
    Size(String),
    /// Decoding: the image is not clean generator output.
    #[error("the mfg_nvs image has problems: {0}")]
    #[diagnostic(
        code(espfleet::esp_at::mfg_nvs::image),
        help("this is not an mfg_nvs image written by a generator, or it was changed on a device")
    )]
    Image(String),
    /// Reading raw data failed.
    #[error("reading {path}: {message}")]
    #[diagnostic(
        code(espfleet::esp_at::mfg_nvs::io),
        help("check that the ESP-AT raw_data directory is complete and readable")
    )]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// The BLE table did not parse.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Ble(#[from] ble_data::BleDataError),
}

/// A PKI file for a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiFile {
    /// Path written into the CSV (absolute in ESP-AT's CSV).
    pub path: PathBuf,
    /// File contents.
    pub data: Arc<[u8]>,
}

/// A PKI namespace (`server_cert`, `client_key`, ...). `single_key` selects key `<ns>`
/// instead of `<ns>.0`, `<ns>.1`, ...; ESP-AT uses it when the directory has exactly one entry.
pub fn pki_namespace(name: &str, files: Vec<PkiFile>, single_key: bool) -> MfgNamespace {
    let entries = files
        .into_iter()
        .enumerate()
        .map(|(i, f)| MfgEntry {
            key: if single_key {
                name.to_owned()
            } else {
                format!("{name}.{i}")
            },
            value: MfgValue::File {
                path: f.path,
                data: f.data,
            },
        })
        .collect();
    MfgNamespace {
        name: name.to_owned(),
        entries,
    }
}

/// The era B module parameters, typed (`docs/formats/esp-at-images.md` §8.1 type table). `sys_store` is `Some` only for
/// v4.1.0.0 and later ([`Release::has_sys_store`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactoryParamNvs {
    /// Format version (4).
    pub version: i8,
    /// Module name (`WROOM-32`).
    pub module_name: String,
    /// Maximum TX power (0.25 dBm units).
    pub max_tx_power: i8,
    /// Country code (`CN`).
    pub country_code: String,
    /// First channel.
    pub start_channel: u8,
    /// Channel count.
    pub channel_num: u8,
    /// AT UART port; -1 for SDIO/SPI modules.
    pub uart_port: i8,
    /// AT UART baud rate; -1 = none.
    pub uart_baudrate: i32,
    /// UART TX pin.
    pub uart_tx_pin: i32,
    /// UART RX pin.
    pub uart_rx_pin: i32,
    /// UART CTS pin; -1 = none.
    pub uart_cts_pin: i32,
    /// UART RTS pin; -1 = none.
    pub uart_rts_pin: i32,
    /// Default `AT+SYSSTORE` mode (v4.1.0.0+).
    pub sys_store: Option<u8>,
}

impl FactoryParamNvs {
    /// The `factory_param` namespace in ESP-AT's type-table order.
    pub fn namespace(&self) -> MfgNamespace {
        let e = |key: &str, value| MfgEntry {
            key: key.to_owned(),
            value,
        };
        let mut entries = vec![
            e("version", MfgValue::I8(self.version)),
            e("module_name", MfgValue::String(self.module_name.clone())),
            e("max_tx_power", MfgValue::I8(self.max_tx_power)),
            e("country_code", MfgValue::String(self.country_code.clone())),
            e("start_channel", MfgValue::U8(self.start_channel)),
            e("channel_num", MfgValue::U8(self.channel_num)),
            e("uart_port", MfgValue::I8(self.uart_port)),
            e("uart_baudrate", MfgValue::I32(self.uart_baudrate)),
            e("uart_tx_pin", MfgValue::I32(self.uart_tx_pin)),
            e("uart_rx_pin", MfgValue::I32(self.uart_rx_pin)),
            e("uart_cts_pin", MfgValue::I32(self.uart_cts_pin)),
            e("uart_rts_pin", MfgValue::I32(self.uart_rts_pin)),
        ];
        if let Some(s) = self.sys_store {
            entries.push(e("sys_store", MfgValue::U8(s)));
        }
        MfgNamespace {
            name: "factory_param".to_owned(),
            entries,
        }
    }
}

fn csv_records(text: &str, file: &str) -> Result<Vec<Vec<String>>, MfgNvsError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    rdr.records()
        .map(|r| {
            r.map(|rec| rec.iter().map(str::to_owned).collect())
                .map_err(|e| MfgNvsError::Csv {
                    file: file.to_owned(),
                    message: e.to_string(),
                })
        })
        .collect()
}

/// The `factory_param` namespace from ESP-AT's era B `factory_param_type.csv` and
/// `factory_param_data.csv` (`docs/formats/esp-at-images.md` §8.1 step 3): type rows with exactly three fields, in file
/// order; values from the first data row whose platform and module match exactly.
pub fn factory_param_namespace(
    type_csv: &str,
    data_csv: &str,
    platform: &str,
    module: &str,
) -> Result<MfgNamespace, MfgNvsError> {
    let data = csv_records(data_csv, "factory_param_data.csv")?;
    let header = data.first().cloned().unwrap_or_default();
    let row = data
        .iter()
        .skip(1)
        .find(|r| {
            r.first().map(String::as_str) == Some(platform)
                && r.get(1).map(String::as_str) == Some(module)
        })
        .ok_or_else(|| MfgNvsError::ModuleRowMissing {
            platform: platform.to_owned(),
            module: module.to_owned(),
        })?;
    let mut entries = Vec::new();
    for t in csv_records(type_csv, "factory_param_type.csv")? {
        let [name, _, encoding] = t.as_slice() else {
            continue;
        };
        let col = header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| MfgNvsError::ColumnMissing(name.clone()))?;
        let text = row.get(col).map_or("", String::as_str);
        let value = MfgValue::parse(encoding, text).ok_or_else(|| MfgNvsError::Value {
            key: name.clone(),
            encoding: encoding.clone(),
            value: text.to_owned(),
        })?;
        entries.push(MfgEntry {
            key: name.clone(),
            value,
        });
    }
    Ok(MfgNamespace {
        name: "factory_param".to_owned(),
        entries,
    })
}

/// The `ble_data` namespace: `cfg<k>` strings from the GATT rows.
pub fn ble_namespace(rows: &[GattRow]) -> MfgNamespace {
    MfgNamespace {
        name: "ble_data".to_owned(),
        entries: ble_data::cfg_entries(rows)
            .into_iter()
            .map(|(key, v)| MfgEntry {
                key,
                value: MfgValue::String(v),
            })
            .collect(),
    }
}

/// The NVS encoder's trailing-page option for a release's page form.
pub fn trailing_pages(pages: NvsPages) -> TrailingPages {
    match pages {
        NvsPages::Legacy => TrailingPages::Legacy,
        NvsPages::Active => TrailingPages::Erased,
    }
}

impl MfgValue {
    /// The value as the NVS encoder takes it (strings get their NUL there; files are blobs).
    pub fn to_nvs(&self) -> Value {
        match self {
            MfgValue::U8(v) => Value::U8(*v),
            MfgValue::I8(v) => Value::I8(*v),
            MfgValue::U16(v) => Value::U16(*v),
            MfgValue::I16(v) => Value::I16(*v),
            MfgValue::U32(v) => Value::U32(*v),
            MfgValue::I32(v) => Value::I32(*v),
            MfgValue::U64(v) => Value::U64(*v),
            MfgValue::I64(v) => Value::I64(*v),
            MfgValue::String(s) => Value::Str(s.clone()),
            MfgValue::File { data, .. } => Value::Blob(data.to_vec()),
        }
    }
}

impl MfgNvs {
    /// The entries in write order, for [`crate::nvs::encode()`].
    pub fn to_nvs_entries(&self) -> Vec<NvsEntry> {
        self.namespaces
            .iter()
            .flat_map(|ns| {
                ns.entries
                    .iter()
                    .map(|e| NvsEntry::new(ns.name.clone(), e.key.clone(), e.value.to_nvs()))
            })
            .collect()
    }

    /// Encodes the `mfg_nvs` partition image: NVS format version 2 (what ESP-AT always uses),
    /// `size` bytes (see [`at_parse_size`]), the given trailing-page form.
    #[allow(clippy::result_large_err)] // the NVS module's own error type, passed through as is
    pub fn encode(&self, size: u64, pages: NvsPages) -> Result<Vec<u8>, NvsError> {
        let options = nvs::Options {
            version: nvs::Version::V2,
            size,
            trailing: trailing_pages(pages),
        };
        nvs::encode(&self.to_nvs_entries(), &options)
    }

    /// Decodes an `mfg_nvs` image back into namespaces and entries, in image order. Blobs come
    /// back as [`MfgValue::File`] with an empty path (the image does not record paths).
    pub fn decode(image: &[u8]) -> Result<Self, MfgNvsError> {
        let decoded = nvs::decode(image);
        if !decoded.issues.is_empty() {
            return Err(MfgNvsError::Image(decoded.issues.join("; ")));
        }
        let mut out = MfgNvs::default();
        for item in decoded.items {
            match item.value {
                nvs::decode::ItemValue::Namespace(_) => {
                    out.namespaces.push(MfgNamespace {
                        name: item.key,
                        entries: Vec::new(),
                    });
                }
                nvs::decode::ItemValue::Value(v) => {
                    let ns_name = item.namespace.ok_or_else(|| {
                        MfgNvsError::Image(format!("key `{}` has an undefined namespace", item.key))
                    })?;
                    let value = match v {
                        Value::U8(v) => MfgValue::U8(v),
                        Value::I8(v) => MfgValue::I8(v),
                        Value::U16(v) => MfgValue::U16(v),
                        Value::I16(v) => MfgValue::I16(v),
                        Value::U32(v) => MfgValue::U32(v),
                        Value::I32(v) => MfgValue::I32(v),
                        Value::U64(v) => MfgValue::U64(v),
                        Value::I64(v) => MfgValue::I64(v),
                        Value::Str(s) => MfgValue::String(s),
                        Value::Blob(b) => MfgValue::File {
                            path: PathBuf::new(),
                            data: b.into(),
                        },
                        Value::RawStr(_) => {
                            return Err(MfgNvsError::Image(format!(
                                "key `{}` is not a NUL-terminated UTF-8 string",
                                item.key
                            )));
                        }
                    };
                    let Some(ns) = out.namespaces.iter_mut().rev().find(|n| n.name == ns_name)
                    else {
                        return Err(MfgNvsError::Image(format!(
                            "namespace `{ns_name}` is used before it is defined"
                        )));
                    };
                    ns.entries.push(MfgEntry {
                        key: item.key,
                        value,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Renders `mfg_nvs.csv` exactly as ESP-AT writes it (`\n` line ends, header
    /// `key,type,encoding,value`, a `<ns>,namespace,,` line before each namespace's keys).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("key,type,encoding,value\n");
        for ns in &self.namespaces {
            let _ = writeln!(out, "{},namespace,,", ns.name);
            for e in &ns.entries {
                let (ty, enc) = e.value.csv_type();
                let _ = writeln!(out, "{},{ty},{enc},{}", e.key, e.value.csv_value());
            }
        }
        out
    }

    /// Reads an ESP-AT `components/customized_partitions/raw_data` directory and builds the
    /// list exactly as `mfg_nvs.py` of `release` does (`docs/formats/esp-at-images.md` §8.1).
    ///
    /// `enabled_symbols` are the Kconfig symbols set to `y` (without `CONFIG_`). On master,
    /// `eap_legacy_namespace` (`CONFIG_AT_EAP_LEGACY_NAMESPACE_SUPPORT`) writes `wpa_ent_*` as
    /// `wpa2_*`. File paths in the CSV are `raw_data` joined with the directory and file name;
    /// pass an absolute `raw_data` to get ESP-AT's absolute paths.
    pub fn from_raw_data_dir(
        raw_data: &Path,
        release: Release,
        enabled_symbols: &BTreeSet<String>,
        platform: &str,
        module: &str,
        eap_legacy_namespace: bool,
    ) -> Result<Self, MfgNvsError> {
        let io = |path: &Path, e: std::io::Error| MfgNvsError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let names = super::dependency::enabled_names(release.dependencies(), |s| {
            enabled_symbols.contains(s)
        });
        let mut nvs = MfgNvs::default();
        for name in &names {
            let dir = raw_data.join(name);
            if !dir.is_dir() {
                continue;
            }
            let mut listing: Vec<String> = fs_err::read_dir(&dir)
                .map_err(|e| io(&dir, e))?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<_, _>>()
                .map_err(|e| io(&dir, e))?;
            listing.sort();
            let single_key = listing.len() == 1;
            let mut files = Vec::new();
            for f in listing
                .iter()
                .filter(|f| [".crt", ".key", ".pem"].iter().any(|s| f.ends_with(s)))
            {
                let path = dir.join(f);
                let data: Arc<[u8]> =
                    crate::input::read(&path, crate::input::InputKind::CERTIFICATE)
                        .map_err(|e| io(&path, e.into_io_error()))?
                        .into();
                files.push(PkiFile { path, data });
            }
            if files.is_empty() {
                continue;
            }
            let ns = match name.strip_prefix("wpa_ent_") {
                Some(rest) if eap_legacy_namespace && release.is_master() => {
                    format!("wpa2_{rest}")
                }
                _ => (*name).to_owned(),
            };
            nvs.namespaces.push(pki_namespace(&ns, files, single_key));
        }

        let fp = raw_data.join("factory_param");
        let read = |p: PathBuf| {
            crate::input::read(&p, crate::input::InputKind::TABLE_CSV)
                .map_err(crate::input::InputError::into_io_error)
                .and_then(|b| {
                    String::from_utf8(b).map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text")
                    })
                })
                .map_err(|e| io(&p, e))
        };
        nvs.namespaces.push(factory_param_namespace(
            &read(fp.join("factory_param_type.csv"))?,
            &read(fp.join("factory_param_data.csv"))?,
            platform,
            module,
        )?);

        if names.contains(&"ble_data") {
            let rows = ble_data::parse_gatts_csv(&read(raw_data.join("ble_data/gatts_data.csv"))?)?;
            nvs.namespaces.push(ble_namespace(&rows));
        }
        Ok(nvs)
    }
}

/// ESP-AT's `at_parse_size` for the NVS generator's size argument (`docs/formats/esp-at-images.md` §8.1 step 5): `0x…`
/// as hex; otherwise upper-cased, `B` appended if missing, and K/M/G/T as powers of 1024.
pub fn at_parse_size(text: &str) -> Result<u64, MfgNvsError> {
    let bad = || MfgNvsError::Size(text.to_owned());
    let t = text.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).map_err(|_| bad());
    }
    let mut u = t.to_ascii_uppercase();
    if !u.ends_with('B') {
        u.push('B');
    }
    let body = &u[..u.len() - 1];
    let (digits, shift) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 10),
        Some('M') => (&body[..body.len() - 1], 20),
        Some('G') => (&body[..body.len() - 1], 30),
        Some('T') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_esp_at() {
        assert_eq!(at_parse_size("112K").unwrap(), 114_688);
        assert_eq!(at_parse_size("124k").unwrap(), 126_976);
        assert_eq!(at_parse_size("60KB").unwrap(), 61_440);
        assert_eq!(at_parse_size("0x1C000").unwrap(), 0x1C000);
        assert_eq!(at_parse_size("1M").unwrap(), 1 << 20);
        assert!(at_parse_size("big").is_err());
    }

    #[test]
    fn typed_factory_params_render_in_type_table_order() {
        let p = FactoryParamNvs {
            version: 4,
            module_name: "WROOM-32".into(),
            max_tx_power: 78,
            country_code: "CN".into(),
            start_channel: 1,
            channel_num: 13,
            uart_port: 1,
            uart_baudrate: 115_200,
            uart_tx_pin: 17,
            uart_rx_pin: 16,
            uart_cts_pin: 15,
            uart_rts_pin: 14,
            sys_store: None,
        };
        let csv = MfgNvs {
            namespaces: vec![p.namespace()],
        }
        .to_csv();
        assert!(csv.starts_with("key,type,encoding,value\nfactory_param,namespace,,\nversion,data,i8,4\nmodule_name,data,string,\"WROOM-32\"\n"));
        assert!(csv.ends_with("uart_rts_pin,data,i32,14\n"));
    }

    #[test]
    fn pki_keys_depend_on_single_entry_rule() {
        let f = |p: &str| PkiFile {
            path: p.into(),
            data: Arc::from(&b"x"[..]),
        };
        let ns = pki_namespace("client_ca", vec![f("/a"), f("/b")], false);
        assert_eq!(ns.entries[1].key, "client_ca.1");
        let ns = pki_namespace("server_ca", vec![f("/a")], false);
        assert_eq!(ns.entries[0].key, "server_ca.0");
        let ns = pki_namespace("server_ca", vec![f("/a")], true);
        assert_eq!(ns.entries[0].key, "server_ca");
    }
}
