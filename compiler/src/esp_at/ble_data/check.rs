//! GATTS CSV rows checked column by column the way ESP-AT's BLE tool reads them
//! (`tools/BLEService.py` with `tools/Configs/ATBleService.yml`; see `docs/value-rules.md`),
//! plus the few rules the firmware needs that the tool leaves to luck:
//!
//! | column | ATBleService.yml | checked here |
//! |---|---|---|
//! | `index` | int, mandatory | Python 3 `int(x)`: decimal |
//! | `uuid_len` | int, mandatory | 16, 32 or 128 (ESP-IDF's `ESP_UUID_LEN_16/32/128`) |
//! | `uuid` | hex, mandatory | Python `int(x, 16)`, and it fits `uuid_len` bits |
//! | `perm` | hex, mandatory | Python `int(x, 16)`, at most 0xFFFF (`esp_gatt_perm_t`) |
//! | `val_max_len` | int, default 512 | at most 512 (ESP-IDF's `ESP_GATT_MAX_ATTR_LEN`) |
//! | `val_cur_len` | int, default 0 | at most `val_max_len` |
//! | `value` | hex_string, default "" | hex digits, an **even** number of them, at most `val_max_len` bytes |
//!
//! Python 3 semantics, as `ble_data::service_table` converts: the tool hands each cell to its
//! parsers as `bytes`, so its `data[:2] == "0x"` tests never match under Python 3 — `int`
//! columns are plain decimal and a `0x` before a `value` is not stripped (both fail in the
//! tool). An odd number of hex digits is refused: `BLEService.py` (era A) silently reads `ABC`
//! as `AB 0C`, and era B copies the text as written for the firmware to parse.
//!
//! Rows: the header (`index,...` or ESP-AT's commented `# index,...`) names the columns, else
//! they are in the order above; every data row must have exactly one field per column (the
//! tool fails on extra fields; era B joins whatever the row holds); `#` rows and empty rows
//! are skipped and an all-empty row (`,,,,,,`) ends the table, as in both eras' readers.

use super::{COLUMNS, py_hex, py_int};

/// One problem in a GATTS CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// 1-based line in the file.
    pub line: u64,
    /// The column, when the problem is in one cell.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Largest attribute value ESP-IDF's GATT server holds (`ESP_GATT_MAX_ATTR_LEN`).
pub const MAX_ATTR_LEN: i128 = 512;

/// Checks a GATTS CSV; an empty result means every row is one ESP-AT reads as intended.
pub fn check_csv(text: &str) -> Vec<RowProblem> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut problems = Vec::new();
    let mut columns: Option<Vec<String>> = None;
    let mut data_rows = 0usize;
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                problems.push(RowProblem {
                    line: e.position().map_or(0, csv::Position::line),
                    column: None,
                    message: format!("not CSV: {e}"),
                });
                return problems;
            }
        };
        let line = rec.position().map_or(0, csv::Position::line);
        let fields: Vec<&str> = rec.iter().collect();
        if fields.is_empty() || (fields.len() == 1 && fields[0].trim().is_empty()) {
            continue;
        }
        let first = fields[0].trim_start();
        let header = first.trim_start_matches(['#', ' ']).trim() == "index";
        if header && columns.is_none() && data_rows == 0 {
            let mut cols: Vec<String> = fields.iter().map(|f| f.trim().to_owned()).collect();
            "index".clone_into(&mut cols[0]);
            // ESP-AT's commented era B header spells two columns short.
            for c in &mut cols {
                match c.as_str() {
                    "max_len" => "val_max_len".clone_into(c),
                    "cur_len" => "val_cur_len".clone_into(c),
                    _ => {}
                }
            }
            for c in &cols {
                if !COLUMNS.contains(&c.as_str()) {
                    problems.push(RowProblem {
                        line,
                        column: Some(c.clone()),
                        message: format!("column `{c}` is not one of {}", COLUMNS.join(", ")),
                    });
                }
            }
            columns = Some(cols);
            continue;
        }
        if first.starts_with('#') {
            continue;
        }
        if fields.iter().all(|f| f.is_empty()) {
            break;
        }
        data_rows += 1;
        let cols: Vec<String> = columns
            .clone()
            .unwrap_or_else(|| COLUMNS.iter().map(|c| (*c).to_owned()).collect());
        if fields.len() != cols.len() {
            problems.push(RowProblem {
                line,
                column: None,
                message: format!(
                    "the row has {} fields; ESP-AT's rows have {} ({})",
                    fields.len(),
                    cols.len(),
                    cols.join(",")
                ),
            });
            continue;
        }
        check_row(line, &cols, &fields, &mut problems);
    }
    if data_rows == 0 && problems.is_empty() {
        problems.push(RowProblem {
            line: 0,
            column: None,
            message: "no attribute rows".to_owned(),
        });
    }
    problems
}

fn check_row(line: u64, cols: &[String], fields: &[&str], problems: &mut Vec<RowProblem>) {
    let cell = |name: &str| {
        cols.iter()
            .position(|c| c == name)
            .map_or("", |i| fields[i].trim())
    };
    let mut bad = |column: &str, message: String| {
        problems.push(RowProblem {
            line,
            column: Some(column.to_owned()),
            message,
        });
    };
    let int = |name: &str, default: Option<i128>| -> Result<i128, String> {
        let c = cell(name);
        if c.is_empty() {
            return default.ok_or_else(|| format!("`{name}` is required"));
        }
        py_int(c).ok_or_else(|| format!("`{name}` = `{c}` is not a decimal integer"))
    };
    let hex = |name: &str| -> Result<u128, String> {
        let c = cell(name);
        if c.is_empty() {
            return Err(format!("`{name}` is required"));
        }
        py_hex(c).ok_or_else(|| format!("`{name}` = `{c}` is not a hex number"))
    };
    if let Err(m) = int("index", None) {
        bad("index", m);
    }
    let uuid_len = match int("uuid_len", None) {
        Ok(n @ (16 | 32 | 128)) => Some(n),
        Ok(n) => {
            bad(
                "uuid_len",
                format!("`uuid_len` = {n}; a UUID has 16, 32 or 128 bits"),
            );
            None
        }
        Err(m) => {
            bad("uuid_len", m);
            None
        }
    };
    match (hex("uuid"), uuid_len) {
        (Ok(u), Some(bits)) if bits < 128 && u >> bits != 0 => bad(
            "uuid",
            format!("`uuid` = `{}` does not fit in {bits} bits", cell("uuid")),
        ),
        (Err(m), _) => bad("uuid", m),
        _ => {}
    }
    match hex("perm") {
        Ok(p) if p > 0xFFFF => bad(
            "perm",
            format!(
                "`perm` = `{}` is more than 16 bits (esp_gatt_perm_t)",
                cell("perm")
            ),
        ),
        Err(m) => bad("perm", m),
        Ok(_) => {}
    }
    let max_len = match int("val_max_len", Some(512)) {
        Ok(n) if (0..=MAX_ATTR_LEN).contains(&n) => Some(n),
        Ok(n) => {
            bad(
                "val_max_len",
                format!("`val_max_len` = {n}; an attribute holds 0 to 512 bytes"),
            );
            None
        }
        Err(m) => {
            bad("val_max_len", m);
            None
        }
    };
    match int("val_cur_len", Some(0)) {
        Ok(n) if n < 0 || max_len.is_some_and(|m| n > m) => bad(
            "val_cur_len",
            format!(
                "`val_cur_len` = {n} is more than `val_max_len` = {}",
                max_len.unwrap_or(512)
            ),
        ),
        Err(m) => bad("val_cur_len", m),
        Ok(_) => {}
    }
    if let Some(m) = value_problem(cell("value"), max_len) {
        bad("value", m);
    }
}

/// What is wrong with a `value` cell, if anything: hex digits, whole bytes, within `max_len`.
fn value_problem(value: &str, max_len: Option<i128>) -> Option<String> {
    if !value.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(format!("`value` = `{value}` is not hex digits"));
    }
    if value.len() % 2 == 1 {
        return Some(format!(
            "`value` = `{value}` has an odd number of hex digits (BLEService.py would read it as {}, era B firmware as written)",
            padded(value)
        ));
    }
    let bytes = i128::try_from(value.len() / 2).unwrap_or(i128::MAX);
    match max_len {
        Some(m) if bytes > m => Some(format!(
            "`value` is {bytes} bytes, more than `val_max_len` = {m}"
        )),
        _ => None,
    }
}

/// How BLEService.py reads an odd number of digits: pairs, the last digit a byte of its own.
fn padded(digits: &str) -> String {
    let (head, last) = digits.split_at(digits.len() - 1);
    format!("{head}0{last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esp_at_examples_pass() {
        let good = "# index,uuid_len,uuid,perm,max_len,cur_len,value\n0,16,0x2800,0x01,2,2,A002\n5,16,0xC301,0x01,512,512,\n";
        assert_eq!(check_csv(good), vec![]);
        let era_a = "index,uuid_len,uuid,perm,val_max_len,val_cur_len,value\n0,16,0x2800,0x01,16,16,ED2B4E3A2820492F9507DF165285E831\n2,128,0xED2B4E3B2820492F9507DF165285E831,0x10,512,1,30\n,,,,,,\n";
        assert_eq!(check_csv(era_a), vec![]);
    }

    #[test]
    fn each_column_is_checked() {
        let cases = [
            ("x,16,0x2800,0x01,2,2,A002", "index"),
            ("0,24,0x2800,0x01,2,2,A002", "uuid_len"),
            ("0,16,0x12800,0x01,2,2,A002", "uuid"),
            ("0,16,0x2800,0x10000,2,2,A002", "perm"),
            ("0,16,0x2800,0x01,513,2,A002", "val_max_len"),
            ("0,16,0x2800,0x01,2,3,A002", "val_cur_len"),
            ("0,16,0x2800,0x01,2,2,A0G2", "value"),
            ("0,16,0x2800,0x01,2,2,0xA002", "value"),
            ("0x0,16,0x2800,0x01,2,2,A002", "index"),
            ("0,16,0x2800,0x01,2,2,A00", "value"),
            ("0,16,0x2800,0x01,1,1,A002", "value"),
        ];
        for (row, column) in cases {
            let p = check_csv(row);
            assert_eq!(p.len(), 1, "{row}: {p:?}");
            assert_eq!(p[0].column.as_deref(), Some(column), "{row}: {p:?}");
        }
        let p = check_csv("0,16,0x2800,0x01,2,2,A00");
        assert!(p[0].message.contains("A000"), "{p:?}");
    }

    #[test]
    fn malformed_rows_are_refused() {
        for row in ["0,16,0x2800,0x01,2,2", "0,16,0x2800,0x01,2,2,A002,extra"] {
            let p = check_csv(row);
            assert_eq!(p.len(), 1, "{row}: {p:?}");
            assert!(p[0].message.contains("fields"), "{p:?}");
        }
        assert!(
            check_csv("index,uuid,colour\n0,0x2800,red\n")[0]
                .message
                .contains("colour")
        );
        assert_eq!(check_csv("# nothing\n")[0].message, "no attribute rows");
    }
}
