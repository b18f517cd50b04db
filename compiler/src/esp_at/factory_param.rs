//! Era A `factory_param.bin`: the 4096-byte module parameter block (`docs/formats/esp-at-images.md` §4).
//!
//! Two ways in: [`FactoryParam`] is the typed record a manifest fills in, and [`generate`]
//! reproduces ESP-AT's `factory_param_generate.py` from its type and data CSVs (including its
//! octal quirk), so a build from ESP-AT's own raw data is byte-identical.
//!
//! Layout (little-endian): `FC FC`, version, reserved, TX power, UART port, start channel,
//! channel count, country (4), baud (4), TX/RX/CTS/RTS pins, TX/RX control pins, reserved (2),
//! platform (32), module name (32); bytes 88..4096 are `0xFF`.

use std::collections::HashMap;

/// Size of the image and of the partition it is written to.
pub const SIZE: usize = 4096;
/// The first two bytes of a valid block (`0xFCFC`); firmware and OTA check them.
pub const MAGIC: [u8; 2] = [0xFC, 0xFC];
/// Number of bytes the fields occupy; the rest of the block is `0xFF`.
pub const FIELDS_LEN: usize = 88;

/// Lowest UART baud rate ESP-AT accepts on the ESP32 and ESP32-C3 (`AT+UART_CUR` /
/// `AT+UART_DEF`: "the supported range is 80 ~ 5000000"; docs/value-rules.md).
pub const BAUD_MIN: i32 = 80;
/// Highest UART baud rate ESP-AT accepts (same source).
pub const BAUD_MAX: i32 = 5_000_000;

/// Errors of the era A factory parameter format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum FactoryParamError {
    /// Decoding: not 4096 bytes long.
    #[error("a factory_param block is {SIZE} bytes, this one is {0}")]
    #[diagnostic(
        code(espfleet::esp_at::factory_param::length),
        help("pass the whole 4 KiB factory_param partition")
    )]
    Length(usize),
    /// Decoding: the block does not start with `FC FC`.
    #[error("factory_param magic is {0:02X?}, expected [FC, FC]")]
    #[diagnostic(
        code(espfleet::esp_at::factory_param::magic),
        help("this is not an ESP-AT factory_param block (or the partition is erased)")
    )]
    Magic([u8; 2]),
    /// A string field does not fit (or, decoding, is not NUL-padded UTF-8).
    #[error(
        "factory_param field `{field}` does not fit in {size} bytes or is not NUL-padded UTF-8"
    )]
    #[diagnostic(
        code(espfleet::esp_at::factory_param::string_field),
        help("shorten the value; ESP-AT fields are fixed-size and NUL-padded")
    )]
    StringField {
        /// Field name.
        field: String,
        /// Field size in bytes.
        size: usize,
    },
    /// Generating from CSV: a malformed CSV line.
    #[error("{file}: line {line}: {message}")]
    #[diagnostic(
        code(espfleet::esp_at::factory_param::csv),
        help("fix the CSV line; compare with ESP-AT's raw_data/factory_param files")
    )]
    Csv {
        /// Which CSV (`type` or `data`).
        file: &'static str,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// Generating from CSV: a cell is not an integer in ESP-AT's notation.
    #[error(
        "factory_param `{field}`: `{value}` is not an integer (decimal, 0x hex, or 0-prefixed octal)"
    )]
    #[diagnostic(
        code(espfleet::esp_at::factory_param::integer),
        help(
            "ESP-AT reads a leading 0 as octal, so write `8`, not `010`; an empty cell is not allowed"
        )
    )]
    Integer {
        /// Column name.
        field: String,
        /// The cell text.
        value: String,
    },
    /// Generating from CSV: a type-table field lies outside the block.
    #[error(
        "factory_param field `{field}` at offset {offset} size {size} lies outside the {SIZE}-byte block"
    )]
    #[diagnostic(
        code(espfleet::esp_at::factory_param::field_range),
        help("fix the offset/size in factory_param_type.csv")
    )]
    FieldRange {
        /// Field name.
        field: String,
        /// Offset from the type table.
        offset: i64,
        /// Size from the type table.
        size: i64,
    },
}

/// The typed era A factory parameter record. Pins and the UART port use `-1` for "none".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactoryParam {
    /// Format version; 3 in every ESP-AT data row (module found by name, not id).
    pub version: u8,
    /// Reserved byte 3 (0).
    pub reserved1: u8,
    /// Maximum TX power in 0.25 dBm units; `0xFF` = unset.
    pub tx_max_power: u8,
    /// AT UART port; -1 = unset.
    pub uart_port: i8,
    /// First Wi-Fi channel.
    pub start_channel: u8,
    /// Channel count (the firmware reads it as the last channel; equal when starting at 1).
    pub channel_num: u8,
    /// Country code, up to 4 bytes (`CN`).
    pub country_code: String,
    /// AT UART baud rate; -1 = unset.
    pub uart_baudrate: i32,
    /// UART TX pin.
    pub uart_tx_pin: i8,
    /// UART RX pin.
    pub uart_rx_pin: i8,
    /// UART CTS pin; -1 = none.
    pub uart_cts_pin: i8,
    /// UART RTS pin; -1 = none.
    pub uart_rts_pin: i8,
    /// ESP8266 UART swap control pin.
    pub tx_control_pin: i8,
    /// ESP8266 UART swap control pin.
    pub rx_control_pin: i8,
    /// Reserved bytes 22..24 (`FF FF` from ESP-AT's generator).
    pub reserved2: [u8; 2],
    /// Platform string (`PLATFORM_ESP32`), up to 32 bytes.
    pub platform: String,
    /// Module name (`WROOM-32`), up to 32 bytes.
    pub module_name: String,
}

impl FactoryParam {
    /// Encodes the 4096-byte block.
    pub fn encode(&self) -> Result<Vec<u8>, FactoryParamError> {
        let mut b = vec![0xFF; SIZE];
        b[0..2].copy_from_slice(&MAGIC);
        b[2] = self.version;
        b[3] = self.reserved1;
        b[4] = self.tx_max_power;
        b[5] = self.uart_port.to_le_bytes()[0];
        b[6] = self.start_channel;
        b[7] = self.channel_num;
        put_str(&mut b, 8, 4, "country_code", &self.country_code)?;
        b[12..16].copy_from_slice(&self.uart_baudrate.to_le_bytes());
        let pins = [
            self.uart_tx_pin,
            self.uart_rx_pin,
            self.uart_cts_pin,
            self.uart_rts_pin,
            self.tx_control_pin,
            self.rx_control_pin,
        ];
        for (i, p) in pins.into_iter().enumerate() {
            b[16 + i] = p.to_le_bytes()[0];
        }
        b[22..24].copy_from_slice(&self.reserved2);
        put_str(&mut b, 24, 32, "platform", &self.platform)?;
        put_str(&mut b, 56, 32, "module_name", &self.module_name)?;
        Ok(b)
    }

    /// Decodes a 4096-byte block. Bytes after the 88 field bytes are not looked at (the
    /// firmware ignores them too).
    pub fn decode(bytes: &[u8]) -> Result<Self, FactoryParamError> {
        if bytes.len() != SIZE {
            return Err(FactoryParamError::Length(bytes.len()));
        }
        if bytes[0..2] != MAGIC {
            return Err(FactoryParamError::Magic([bytes[0], bytes[1]]));
        }
        let i8_at = |i: usize| i8::from_le_bytes([bytes[i]]);
        Ok(FactoryParam {
            version: bytes[2],
            reserved1: bytes[3],
            tx_max_power: bytes[4],
            uart_port: i8_at(5),
            start_channel: bytes[6],
            channel_num: bytes[7],
            country_code: get_str(bytes, 8, 4, "country_code")?,
            uart_baudrate: i32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]),
            uart_tx_pin: i8_at(16),
            uart_rx_pin: i8_at(17),
            uart_cts_pin: i8_at(18),
            uart_rts_pin: i8_at(19),
            tx_control_pin: i8_at(20),
            rx_control_pin: i8_at(21),
            reserved2: [bytes[22], bytes[23]],
            platform: get_str(bytes, 24, 32, "platform")?,
            module_name: get_str(bytes, 56, 32, "module_name")?,
        })
    }
}

fn put_str(
    b: &mut [u8],
    at: usize,
    size: usize,
    field: &str,
    value: &str,
) -> Result<(), FactoryParamError> {
    let v = value.as_bytes();
    if v.len() > size {
        return Err(FactoryParamError::StringField {
            field: field.to_owned(),
            size,
        });
    }
    b[at..at + size].fill(0);
    b[at..at + v.len()].copy_from_slice(v);
    Ok(())
}

fn get_str(b: &[u8], at: usize, size: usize, field: &str) -> Result<String, FactoryParamError> {
    let raw = &b[at..at + size];
    let end = raw.iter().position(|&c| c == 0).unwrap_or(size);
    let bad = || FactoryParamError::StringField {
        field: field.to_owned(),
        size,
    };
    if raw[end..].iter().any(|&c| c != 0) {
        return Err(bad());
    }
    String::from_utf8(raw[..end].to_vec()).map_err(|_| bad())
}

/// Field kind in `factory_param_type.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    String,
}

#[derive(Debug, Clone, Copy)]
struct FieldDef {
    offset: i64,
    kind: Kind,
    size: i64,
}

/// The result of [`generate`]: what `factory_param_generate.py` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// `factory_param.bin` (4096 × `0xFF` when no row matched exactly).
    pub bin: Vec<u8>,
    /// Whether a data row matched `module` exactly (else ESP-AT logs an all-`FF` image).
    pub matched: bool,
    /// The side copies `factory_param_<module_name>.bin`, keyed by the module name as written
    /// in the data CSV, in the order they were written (a later row of the same name replaces
    /// the earlier file, so only the last one is kept here).
    pub side_copies: Vec<(String, Vec<u8>)>,
}

fn csv_rows(text: &str, file: &'static str) -> Result<Vec<Vec<String>>, FactoryParamError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| FactoryParamError::Csv {
            file,
            line: e.position().map_or(0, csv::Position::line),
            message: e.to_string(),
        })?;
        rows.push(rec.iter().map(str::to_owned).collect());
    }
    Ok(rows)
}

/// Parses an integer cell the way `factory_param_generate.py` does: `0x` hex, a leading `0`
/// means octal, otherwise decimal (with an optional `-`).
pub fn parse_esp_at_integer(text: &str) -> Option<i64> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let v = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8).ok()?
    } else {
        if body.is_empty() || !body.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        body.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

fn parse_type_table(type_csv: &str) -> Result<HashMap<String, FieldDef>, FactoryParamError> {
    let mut types: HashMap<String, FieldDef> = HashMap::new();
    for (i, row) in csv_rows(type_csv, "type")?.into_iter().enumerate().skip(1) {
        let line = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        if row.len() < 4 {
            return Err(FactoryParamError::Csv {
                file: "type",
                line,
                message: "expected param_name,offset,type,size".into(),
            });
        }
        let num = |s: &str| {
            s.trim().parse::<i64>().map_err(|_| FactoryParamError::Csv {
                file: "type",
                line,
                message: format!("`{s}` is not a number"),
            })
        };
        let kind = match row[2].as_str() {
            "integer" => Kind::Integer,
            "String" => Kind::String,
            other => {
                return Err(FactoryParamError::Csv {
                    file: "type",
                    line,
                    message: format!("unknown type `{other}`"),
                });
            }
        };
        types.insert(
            row[0].clone(),
            FieldDef {
                offset: num(&row[1])?,
                kind,
                size: num(&row[3])?,
            },
        );
    }

    Ok(types)
}

/// Writes one cell into its field: zeros first, then the value (`docs/formats/esp-at-images.md` §4.2 step 4).
fn write_field(
    field: &mut [u8],
    name: &str,
    kind: Kind,
    value: &str,
) -> Result<(), FactoryParamError> {
    field.fill(0);
    match kind {
        Kind::Integer => {
            let v = parse_esp_at_integer(value)
                .filter(|v| (-(1 << 31)..(1 << 32)).contains(v))
                .ok_or_else(|| FactoryParamError::Integer {
                    field: name.to_owned(),
                    value: value.to_owned(),
                })?;
            // 32-bit two's complement, low `size` bytes.
            let le = v.rem_euclid(1 << 32).to_le_bytes();
            let n = field.len().min(4);
            field[..n].copy_from_slice(&le[..n]);
        }
        Kind::String => {
            let v = value.as_bytes();
            if v.len() > field.len() {
                return Err(FactoryParamError::StringField {
                    field: name.to_owned(),
                    size: field.len(),
                });
            }
            field[..v.len()].copy_from_slice(v);
        }
    }
    Ok(())
}

/// Reproduces `tools/factory_param_generate.py` (`docs/formats/esp-at-images.md` §4.2): the image for `platform`/`module`
/// from ESP-AT's `factory_param_type.csv` (`type_csv`) and `factory_param_data.csv` (`data_csv`).
///
/// `platform` matches case-insensitively; `module` must already be upper case (as `build.py`
/// passes it): a row matches when its upper-cased module name equals it.
pub fn generate(
    type_csv: &str,
    data_csv: &str,
    platform: &str,
    module: &str,
) -> Result<Generated, FactoryParamError> {
    let types = parse_type_table(type_csv)?;
    let data = csv_rows(data_csv, "data")?;
    let header = data.first().cloned().unwrap_or_default();
    let col = |name: &str| header.iter().position(|h| h == name);
    let missing = |name: &str| FactoryParamError::Csv {
        file: "data",
        line: 1,
        message: format!("no `{name}` column"),
    };
    let platform_col = col("platform").ok_or_else(|| missing("platform"))?;
    let module_col = col("module_name").ok_or_else(|| missing("module_name"))?;

    let mut out = Generated {
        bin: vec![0xFF; SIZE],
        matched: false,
        side_copies: Vec::new(),
    };
    for row in data.iter().skip(1) {
        let cell = |i: usize| row.get(i).map_or("", String::as_str);
        if cell(platform_col).to_uppercase() != platform.to_uppercase()
            || cell(module_col).to_uppercase() != module
        {
            continue;
        }
        let mut bin = vec![0xFF; SIZE];
        for (i, name) in header.iter().enumerate() {
            let Some(def) = types.get(name) else { continue };
            if def.size <= 0 {
                continue;
            }
            let range = usize::try_from(def.offset)
                .ok()
                .zip(usize::try_from(def.size).ok())
                .and_then(|(o, s)| Some(o..o.checked_add(s)?))
                .filter(|r| r.end <= SIZE)
                .ok_or_else(|| FactoryParamError::FieldRange {
                    field: name.clone(),
                    offset: def.offset,
                    size: def.size,
                })?;
            write_field(&mut bin[range], name, def.kind, cell(i))?;
        }
        let name = cell(module_col).to_owned();
        out.side_copies.retain(|(n, _)| *n != name);
        out.side_copies.push((name.clone(), bin.clone()));
        if name == module {
            out.bin = bin;
            out.matched = true;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_esp_at_notation() {
        assert_eq!(parse_esp_at_integer("0"), Some(0));
        assert_eq!(parse_esp_at_integer("010"), Some(8));
        assert_eq!(parse_esp_at_integer("0xfcfc"), Some(0xFCFC));
        assert_eq!(parse_esp_at_integer("-1"), Some(-1));
        assert_eq!(parse_esp_at_integer("115200"), Some(115_200));
        assert_eq!(parse_esp_at_integer(""), None);
        assert_eq!(parse_esp_at_integer("08"), None);
    }

    #[test]
    fn string_fields_are_checked() {
        let mut p = FactoryParam::decode(&{
            let mut b = vec![0; SIZE];
            b[0..2].copy_from_slice(&MAGIC);
            b
        })
        .unwrap();
        p.country_code = "TOOLONG".into();
        assert!(matches!(
            p.encode(),
            Err(FactoryParamError::StringField { .. })
        ));
        assert_eq!(
            FactoryParam::decode(&[0xFF; SIZE]),
            Err(FactoryParamError::Magic([0xFF, 0xFF]))
        );
        assert_eq!(
            FactoryParam::decode(&[0; 10]),
            Err(FactoryParamError::Length(10))
        );
    }

    #[test]
    fn no_matching_row_gives_an_erased_block() {
        let g = generate(
            "param_name,offset,type,size\n",
            "platform,module_name\nPLATFORM_ESP32,X\n",
            "PLATFORM_ESP32",
            "Y",
        )
        .unwrap();
        assert!(!g.matched);
        assert!(g.bin.iter().all(|&b| b == 0xFF));
    }
}
