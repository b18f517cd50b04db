//! GATT server tables (`ble_data`) in ESP-AT's three forms (`docs/formats/esp-at-images.md` §6 and §8.1):
//!
//! * the CSV a user edits (era A `raw_data/ble_data/*.csv` with a header row; era B
//!   `gatts_data.csv` with `#` comments), parsed by [`parse_era_a_csv`] / [`parse_gatts_csv`];
//! * era A `ble_data.bin`: `u16 LE length | 27 95 | JSON`, where the JSON is exactly what
//!   `tools/BLEService.py` prints with Python's `json.dumps` ([`ServiceTable`], [`encode_bin`],
//!   [`decode_bin`]);
//! * era B NVS strings `cfg0`, `cfg1`, ... holding the seven CSV fields joined by commas
//!   ([`cfg_entries`]).
//!
//! A [`GattRow`] (the seven fields as text, the way every ESP-AT CSV writes them) converts to
//! both era forms, so a manifest can describe the table once.

use std::fmt::Write as _;

pub mod check;

/// Bytes 2..4 of a `ble_data.bin`; the firmware and OTA check them.
pub const MAGIC: [u8; 2] = [0x27, 0x95];

/// The columns `tools/Configs/ATBleService.yml` defines, in config order.
pub const COLUMNS: [&str; 7] = [
    "index",
    "uuid_len",
    "uuid",
    "perm",
    "val_max_len",
    "val_cur_len",
    "value",
];

/// Errors of the GATT table formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum BleDataError {
    /// A CSV the `csv` reader cannot read.
    #[error("BLE CSV line {line}: {message}")]
    #[diagnostic(
        code(espfleet::esp_at::ble_data::csv),
        help("fix the quoting on that line")
    )]
    Csv {
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A column that `ATBleService.yml` does not define.
    #[error(
        "BLE CSV column `{0}` is not one of index, uuid_len, uuid, perm, val_max_len, val_cur_len, value"
    )]
    #[diagnostic(
        code(espfleet::esp_at::ble_data::unknown_column),
        help("rename or remove the column; BLEService.py rejects it")
    )]
    UnknownColumn(String),
    /// A required cell is empty (or its column is missing).
    #[error("BLE row {row}: `{column}` is required")]
    #[diagnostic(
        code(espfleet::esp_at::ble_data::required),
        help("index, uuid_len, uuid and perm must be filled in on every row")
    )]
    Required {
        /// 0-based data row.
        row: usize,
        /// Column name.
        column: String,
    },
    /// A row with more fields than the header.
    #[error("BLE row {row} has {fields} fields, the header has {columns}")]
    #[diagnostic(
        code(espfleet::esp_at::ble_data::row_length),
        help("each row needs one field per header column")
    )]
    RowLength {
        /// 0-based data row.
        row: usize,
        /// Fields in the row.
        fields: usize,
        /// Header columns.
        columns: usize,
    },
    /// A cell that does not convert under Python 3's rules.
    #[error("BLE row {row}: `{column}` = `{value}` is not {expected}")]
    #[diagnostic(
        code(espfleet::esp_at::ble_data::value),
        help(
            "index/uuid_len/val_*_len are decimal; uuid and perm are hex (0x allowed); value is hex digits without 0x"
        )
    )]
    Value {
        /// 0-based data row.
        row: usize,
        /// Column name.
        column: String,
        /// Cell text.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The JSON is longer than the 16-bit length field.
    #[error("the GATT table JSON is {0} bytes; ble_data.bin allows at most 65535")]
    #[diagnostic(
        code(espfleet::esp_at::ble_data::too_long),
        help("remove rows or shorten long values")
    )]
    TooLong(usize),
    /// Decoding: not a `ble_data.bin`.
    #[error("ble_data.bin is malformed: {0}")]
    #[diagnostic(
        code(espfleet::esp_at::ble_data::malformed),
        help("this is not an ESP-AT ble_data partition, or it is corrupt")
    )]
    Malformed(String),
}

/// One GATT attribute row as the seven CSV text fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GattRow {
    /// Attribute index (decimal).
    pub index: String,
    /// UUID length in bits: 16, 32 or 128.
    pub uuid_len: String,
    /// UUID, hex (`0x2800`).
    pub uuid: String,
    /// Permissions, hex (`0x01`).
    pub perm: String,
    /// Maximum value length (decimal; empty → 512 in era A).
    pub val_max_len: String,
    /// Current value length (decimal; empty → 0 in era A).
    pub val_cur_len: String,
    /// Initial value, hex digits (may be empty).
    pub value: String,
}

impl GattRow {
    /// The fields in CSV order.
    pub fn fields(&self) -> [&str; 7] {
        [
            &self.index,
            &self.uuid_len,
            &self.uuid,
            &self.perm,
            &self.val_max_len,
            &self.val_cur_len,
            &self.value,
        ]
    }

    /// A row from seven fields (shorter lists are padded with empty fields).
    pub fn from_fields(fields: &[String]) -> Self {
        let f = |i: usize| fields.get(i).cloned().unwrap_or_default();
        GattRow {
            index: f(0),
            uuid_len: f(1),
            uuid: f(2),
            perm: f(3),
            val_max_len: f(4),
            val_cur_len: f(5),
            value: f(6),
        }
    }
}

/// An era A CSV as `BLEService.py` sees it: header columns and data rows (text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GattCsv {
    /// Header row.
    pub columns: Vec<String>,
    /// Data rows up to (not including) the first all-empty row.
    pub rows: Vec<Vec<String>>,
}

impl GattCsv {
    /// The standard seven-column table for `rows`.
    pub fn from_rows(rows: &[GattRow]) -> Self {
        GattCsv {
            columns: COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
            rows: rows
                .iter()
                .map(|r| r.fields().iter().map(|f| (*f).to_owned()).collect())
                .collect(),
        }
    }
}

fn read_records(text: &str) -> Result<Vec<Vec<String>>, BleDataError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| BleDataError::Csv {
            line: e.position().map_or(0, csv::Position::line),
            message: e.to_string(),
        })?;
        out.push(rec.iter().map(str::to_owned).collect());
    }
    Ok(out)
}

/// Parses an era A BLE CSV with Python `csv.DictReader` rules: the first row is the header,
/// blank lines are skipped, and reading stops at the first row whose fields are all empty
/// (ESP-AT's `example.csv` ends with `,,,,,,`).
pub fn parse_era_a_csv(text: &str) -> Result<GattCsv, BleDataError> {
    let mut records = read_records(text)?
        .into_iter()
        .filter(|r| !(r.len() == 1 && r[0].is_empty()));
    let columns = records.next().unwrap_or_default();
    let rows = records
        .take_while(|r| r.iter().any(|f| !f.is_empty()))
        .collect();
    Ok(GattCsv { columns, rows })
}

/// Parses an era B `gatts_data.csv` the way `mfg_nvs.py` does: empty rows and rows whose first
/// field starts with `#` are skipped; fields are CSV-unquoted.
pub fn parse_gatts_csv(text: &str) -> Result<Vec<GattRow>, BleDataError> {
    Ok(read_records(text)?
        .into_iter()
        .filter(|r| !r.is_empty() && (r.len() != 1 || !r[0].is_empty()))
        .filter(|r| !r[0].starts_with('#'))
        .map(|r| GattRow::from_fields(&r))
        .collect())
}

/// The era B NVS entries: `(cfg<k>, "<fields joined by ','>")` for k = 0, 1, ...
///
/// Each row's own field list is joined (ESP-AT joins whatever the CSV row held, unquoted).
pub fn cfg_entries(rows: &[GattRow]) -> Vec<(String, String)> {
    rows.iter()
        .enumerate()
        .map(|(k, r)| (format!("cfg{k}"), r.fields().join(",")))
        .collect()
}

/// A JSON member value of the era A table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonValue {
    /// A JSON integer.
    Int(i128),
    /// A JSON string.
    Str(String),
}

/// One row object: members in output order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow(pub Vec<(String, JsonValue)>);

/// The era A JSON document `{"Service": [rows]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTable(pub Vec<ServiceRow>);

fn py_int(text: &str) -> Option<i128> {
    // Python int(): surrounding whitespace, a sign, decimal digits with single underscores.
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if !clean.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: i128 = clean.parse().ok()?;
    Some(if neg { -v } else { v })
}

fn py_hex(text: &str) -> Option<u128> {
    // Python int(x, 16): whitespace, optional 0x prefix, hex digits with single underscores.
    let t = text.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .map_or(t, |d| d.strip_prefix('_').unwrap_or(d));
    if digits.is_empty() || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    u128::from_str_radix(&clean, 16).ok()
}

fn hex_string(text: &str) -> Option<String> {
    // Two characters at a time, each pair as int(pair, 16) printed %02X.
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    for pair in chars.chunks(2) {
        let s: String = pair.iter().collect();
        let v = u8::try_from(py_hex(&s)?).ok()?;
        if s.contains(['x', 'X', '+', '_', ' ']) {
            return None;
        }
        let _ = write!(out, "{v:02X}");
    }
    Some(out)
}

/// Converts an era A CSV into the JSON table exactly as `BLEService.py` (Python 3) does
/// (`docs/formats/esp-at-images.md` §6.2): members in CSV header order, then missing config columns with their defaults.
pub fn service_table(csv: &GattCsv) -> Result<ServiceTable, BleDataError> {
    for c in &csv.columns {
        if !COLUMNS.contains(&c.as_str()) {
            return Err(BleDataError::UnknownColumn(c.clone()));
        }
    }
    let mut order: Vec<&str> = csv.columns.iter().map(String::as_str).collect();
    for c in COLUMNS {
        if !order.contains(&c) {
            order.push(c);
        }
    }
    let mut rows = Vec::new();
    for (r, fields) in csv.rows.iter().enumerate() {
        if fields.len() > csv.columns.len() {
            return Err(BleDataError::RowLength {
                row: r,
                fields: fields.len(),
                columns: csv.columns.len(),
            });
        }
        let mut members = Vec::new();
        for &col in &order {
            let cell = csv
                .columns
                .iter()
                .position(|c| c == col)
                .and_then(|i| fields.get(i))
                .map_or("", String::as_str);
            let bad = |expected| BleDataError::Value {
                row: r,
                column: col.to_owned(),
                value: cell.to_owned(),
                expected,
            };
            let value = if cell.is_empty() {
                match col {
                    "val_max_len" => JsonValue::Int(512),
                    "val_cur_len" => JsonValue::Int(0),
                    "value" => JsonValue::Str(String::new()),
                    _ => {
                        return Err(BleDataError::Required {
                            row: r,
                            column: col.to_owned(),
                        });
                    }
                }
            } else {
                match col {
                    "uuid" => {
                        let v = py_hex(cell).ok_or_else(|| bad("a hex number"))?;
                        let mut s = format!("{v:X}");
                        if s.len() % 2 == 1 {
                            s.insert(0, '0');
                        }
                        JsonValue::Str(s)
                    }
                    "perm" => JsonValue::Int(
                        py_hex(cell)
                            .ok_or_else(|| bad("a hex number"))?
                            .try_into()
                            .map_err(|_| bad("a hex number"))?,
                    ),
                    "value" => JsonValue::Str(hex_string(cell).ok_or_else(|| bad("hex digits"))?),
                    _ => JsonValue::Int(py_int(cell).ok_or_else(|| bad("a decimal integer"))?),
                }
            };
            members.push((col.to_owned(), value));
        }
        rows.push(ServiceRow(members));
    }
    Ok(ServiceTable(rows))
}

/// Python `json.dumps` string escaping (`ensure_ascii=True`).
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7E => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl ServiceTable {
    /// The JSON text, formatted like Python's default `json.dumps`.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"Service\": [");
        for (i, row) in self.0.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push('{');
            for (j, (k, v)) in row.0.iter().enumerate() {
                if j > 0 {
                    out.push_str(", ");
                }
                push_json_string(&mut out, k);
                out.push_str(": ");
                match v {
                    JsonValue::Int(n) => {
                        let _ = write!(out, "{n}");
                    }
                    JsonValue::Str(s) => push_json_string(&mut out, s),
                }
            }
            out.push('}');
        }
        out.push_str("]}");
        out
    }
}

/// Encodes `ble_data.bin`: JSON length (u16 LE), `27 95`, JSON.
pub fn encode_bin(table: &ServiceTable) -> Result<Vec<u8>, BleDataError> {
    let json = table.to_json();
    let n = u16::try_from(json.len()).map_err(|_| BleDataError::TooLong(json.len()))?;
    let mut out = Vec::with_capacity(json.len() + 4);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(json.as_bytes());
    Ok(out)
}

/// Decodes `ble_data.bin` (bytes after the declared JSON length are ignored, so a whole
/// partition can be passed). Member order is kept.
pub fn decode_bin(bytes: &[u8]) -> Result<ServiceTable, BleDataError> {
    let bad = |m: &str| BleDataError::Malformed(m.to_owned());
    if bytes.len() < 4 {
        return Err(bad("shorter than the 4-byte header"));
    }
    if bytes[2..4] != MAGIC {
        return Err(bad("no 27 95 magic at offset 2"));
    }
    let n = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
    let json = bytes
        .get(4..4 + n)
        .ok_or_else(|| bad("JSON shorter than its declared length"))?;
    let doc: Doc =
        serde_json::from_slice(json).map_err(|e| BleDataError::Malformed(e.to_string()))?;
    Ok(ServiceTable(doc.service))
}

#[derive(serde::Deserialize)]
struct Doc {
    #[serde(rename = "Service")]
    service: Vec<ServiceRow>,
}

impl<'de> serde::Deserialize<'de> for ServiceRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ServiceRow;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a GATT row object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ServiceRow, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    let v = match v {
                        serde_json::Value::String(s) => JsonValue::Str(s),
                        serde_json::Value::Number(n) => JsonValue::Int(
                            n.as_i64()
                                .map(i128::from)
                                .or_else(|| n.as_u64().map(i128::from))
                                .ok_or_else(|| {
                                    serde::de::Error::custom("member is not an integer")
                                })?,
                        ),
                        _ => {
                            return Err(serde::de::Error::custom(
                                "member is neither an integer nor a string",
                            ));
                        }
                    };
                    members.push((k, v));
                }
                Ok(ServiceRow(members))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(csv: &str) -> ServiceTable {
        service_table(&parse_era_a_csv(csv).unwrap()).unwrap()
    }

    #[test]
    fn conversions_follow_python3_bleservice() {
        let hdr = "index,uuid_len,uuid,perm,val_max_len,val_cur_len,value\n";
        assert_eq!(
            table(&format!("{hdr}0,16,0x2800,0x01,2,2,A002\n")).to_json(),
            r#"{"Service": [{"index": 0, "uuid_len": 16, "uuid": "2800", "perm": 1, "val_max_len": 2, "val_cur_len": 2, "value": "A002"}]}"#
        );
        assert_eq!(
            table(&format!("{hdr}16,16,0xC305,0x01,,,\n")).to_json(),
            r#"{"Service": [{"index": 16, "uuid_len": 16, "uuid": "C305", "perm": 1, "val_max_len": 512, "val_cur_len": 0, "value": ""}]}"#
        );
        // uuid loses leading zero bytes; perm is always hex; odd value nibbles become bytes.
        let t = table(&format!(
            "{hdr}1,16,0x0001,11,1,1,123\n,,,,,,\n9,16,1,1,1,1,1\n"
        ));
        assert_eq!(t.0.len(), 1, "reading stops at the all-empty row");
        assert_eq!(t.0[0].0[2].1, JsonValue::Str("01".into()));
        assert_eq!(t.0[0].0[3].1, JsonValue::Int(17));
        assert_eq!(t.0[0].0[6].1, JsonValue::Str("1203".into()));
    }

    #[test]
    fn missing_columns_are_appended_in_config_order() {
        let t = table("uuid,index,uuid_len,perm\n0x2800,0,16,1\n");
        let names: Vec<_> = t.0[0].0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "uuid",
                "index",
                "uuid_len",
                "perm",
                "val_max_len",
                "val_cur_len",
                "value"
            ]
        );
    }

    #[test]
    fn bad_cells_are_reported() {
        let hdr = "index,uuid_len,uuid,perm,val_max_len,val_cur_len,value\n";
        let err = |body: &str| {
            service_table(&parse_era_a_csv(&format!("{hdr}{body}")).unwrap()).unwrap_err()
        };
        assert!(matches!(err("0x1,16,1,1,,,\n"), BleDataError::Value { .. }));
        assert!(matches!(
            err("1,16,1,1,,,0x12\n"),
            BleDataError::Value { .. }
        ));
        assert!(matches!(err("1,16,,1,,,\n"), BleDataError::Required { .. }));
        assert!(matches!(
            service_table(&parse_era_a_csv("index,colour\n1,2\n").unwrap()),
            Err(BleDataError::UnknownColumn(_))
        ));
    }

    #[test]
    fn gatts_rows_become_cfg_strings() {
        let rows = parse_gatts_csv(
            "# index,uuid_len\n0,16,0x2800,0x01,2,2,A002\n\n5,16,0xC301,0x01,512,512,\n",
        )
        .unwrap();
        assert_eq!(
            cfg_entries(&rows),
            vec![
                ("cfg0".to_owned(), "0,16,0x2800,0x01,2,2,A002".to_owned()),
                ("cfg1".to_owned(), "5,16,0xC301,0x01,512,512,".to_owned()),
            ]
        );
    }

    #[test]
    fn json_strings_escape_like_python() {
        let mut s = String::new();
        push_json_string(&mut s, "a\"\\\n\u{1}é😀");
        assert_eq!(s, r#""a\"\\\n\u0001\u00e9\ud83d\ude00""#);
    }
}
