//! Reading and printing the CSV form, line by line as gen_esp32part.py does (it uses no CSV
//! parser: quotes mean nothing, `#` only starts a comment at the start of a line).

use std::fmt::Write as _;

use super::csv_text::{
    NumberError, expand_vars, leading_variable, parse_int, py_splitlines, py_strip,
};
use super::error::{Field, PartitionError, RowRef};
use super::keywords::Keywords;
use super::layout::{
    MAX_MAGNITUDE, Parsed, check_options, default_subtype, dictated_offset, dictated_size, finish,
};
use super::{Flags, PartitionTable, TableOptions};

/// Turns the bytes of a CSV file into text the way the tool does: a UTF-32 or UTF-16 byte-order
/// mark selects that encoding, a UTF-8 one is dropped, anything else must be UTF-8.
pub fn decode_csv_text(bytes: &[u8]) -> Result<String, PartitionError> {
    fn units<const N: usize>(body: &[u8], f: impl Fn([u8; N]) -> u32) -> Option<Vec<u32>> {
        if body.len() % N != 0 {
            return None;
        }
        Some(
            body.chunks_exact(N)
                .map(|c| f(c.try_into().unwrap_or([0; N])))
                .collect(),
        )
    }
    let utf32 = |body: &[u8], be: bool| -> Result<String, PartitionError> {
        let err = PartitionError::CsvNotUnicode { encoding: "UTF-32" };
        let cps = units::<4>(body, |b| {
            if be {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        })
        .ok_or(err.clone())?;
        cps.into_iter()
            .map(|c| char::from_u32(c).ok_or(err.clone()))
            .collect()
    };
    let utf16 = |body: &[u8], be: bool| -> Result<String, PartitionError> {
        let err = PartitionError::CsvNotUnicode { encoding: "UTF-16" };
        let cus = units::<2>(body, |b| {
            u32::from(if be {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            })
        })
        .ok_or(err.clone())?;
        let cus: Vec<u16> = cus
            .into_iter()
            .map(|c| u16::try_from(c).unwrap_or(0))
            .collect();
        String::from_utf16(&cus).map_err(|_| err)
    };
    if let Some(body) = bytes.strip_prefix(&[0xFF, 0xFE, 0x00, 0x00]) {
        return utf32(body, false);
    }
    if let Some(body) = bytes.strip_prefix(&[0x00, 0x00, 0xFE, 0xFF]) {
        return utf32(body, true);
    }
    if let Some(body) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(body, false);
    }
    if let Some(body) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(body, true);
    }
    let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8(body.to_vec())
        .map_err(|_| PartitionError::CsvNotUnicode { encoding: "UTF-8" })
}

/// Reads a partition table CSV and lays it out, exactly like `gen_esp32part.py table.csv`.
///
/// Lines are physical lines (`str.splitlines`), `$VAR`s are expanded from
/// [`TableOptions::variables`], blank and `#` lines are skipped, and each row is split on every
/// comma into name, type, subtype, offset, size and flags. Every error names its CSV line
/// ([`PartitionError::line`]); syntax errors are collected for all lines before the table is
/// placed and verified (see [`layout`](super::layout) for the rest).
pub fn parse_csv(text: &str, opts: &TableOptions) -> Result<PartitionTable, Vec<PartitionError>> {
    check_options(opts).map_err(|e| vec![e])?;
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    let mut row = 0;
    for (index, raw) in py_splitlines(text).into_iter().enumerate() {
        let at = RowRef {
            row,
            line: Some(index + 1),
        };
        let expanded = expand_vars(raw, &opts.variables);
        if let Some(name) = leading_variable(&expanded) {
            errors.push(PartitionError::VariableUnknown {
                at,
                name: name.to_owned(),
            });
            row += 1;
            continue;
        }
        let line = py_strip(&expanded);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line, opts, at) {
            Ok(p) => parsed.push(p),
            Err(e) => errors.push(e),
        }
        row += 1;
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    finish(parsed, opts)
}

fn known(list: &[(String, u8)]) -> String {
    list.iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One number field: `parse_int` plus our magnitude guard.
fn number(
    text: &str,
    keywords: &[(String, u8)],
    field: Field,
    at: RowRef,
) -> Result<i128, PartitionError> {
    let value = parse_int(text, keywords).map_err(|e| match e {
        NumberError::Invalid(t) if field == Field::Subtype => PartitionError::SubtypeUnknown {
            at,
            value: t,
            known: String::new(),
        },
        NumberError::Invalid(t) => PartitionError::NumberInvalid { at, field, text: t },
        NumberError::UnknownKeyword(t) if field == Field::Type => PartitionError::TypeUnknown {
            at,
            value: t,
            known: known(keywords),
        },
        NumberError::UnknownKeyword(t) => PartitionError::SubtypeUnknown {
            at,
            value: t,
            known: known(keywords),
        },
        NumberError::TooLarge(t) => PartitionError::NumberTooLarge { at, field, text: t },
    })?;
    if value.abs() > MAX_MAGNITUDE {
        return Err(PartitionError::NumberTooLarge {
            at,
            field,
            text: text.to_owned(),
        });
    }
    Ok(value)
}

fn parse_line(line: &str, opts: &TableOptions, at: RowRef) -> Result<Parsed, PartitionError> {
    let kw = &opts.keywords;
    let padded = format!("{line},,,,");
    let fields: Vec<&str> = padded.split(',').map(py_strip).collect();
    // With the four commas appended there are always at least five fields; a sixth exists
    // whenever the type column is non-empty.
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let (name, ty_text, subtype_text, offset_text, size_text, flags_text) =
        (field(0), field(1), field(2), field(3), field(4), field(5));

    if ty_text.is_empty() {
        return Err(PartitionError::TypeMissing { at });
    }
    let ty = number(ty_text, kw.types(), Field::Type, at)?;
    let subtype = if subtype_text.is_empty() {
        default_subtype(ty, kw, at)?
    } else {
        number(subtype_text, kw.subtypes_of(ty), Field::Subtype, at)?
    };
    let offset = match dictated_offset(ty, subtype, opts, at)? {
        Some(o) => Some(o),
        None if offset_text.is_empty() => None,
        None => Some(number(offset_text, &[], Field::Offset, at)?),
    };
    let size = match dictated_size(ty, opts, at)? {
        Some(s) => s,
        None if size_text.is_empty() => return Err(PartitionError::SizeMissing { at }),
        None => number(size_text, &[], Field::Size, at)?,
    };
    let mut flags = Flags::default();
    for flag in flags_text.split(':') {
        match flag {
            "encrypted" => flags.encrypted = true,
            "readonly" => flags.readonly = true,
            "" => {}
            other => {
                return Err(PartitionError::FlagUnknown {
                    at,
                    flag: other.to_owned(),
                });
            }
        }
    }
    Ok(Parsed {
        name: name.to_owned(),
        ty,
        subtype,
        offset,
        size,
        flags,
        at,
    })
}

impl PartitionTable {
    /// The CSV gen_esp32part.py prints for a binary (`to_csv`): a two-line header, then one
    /// row per partition with keywords where known, the offset in hex and the size as `NM`,
    /// `NK` or hex. Reading it back with [`parse_csv`] gives the same binary.
    pub fn to_csv(&self) -> String {
        self.to_csv_with(&Keywords::esp_idf())
    }

    /// [`PartitionTable::to_csv`] with extra subtype keywords.
    pub fn to_csv_with(&self, keywords: &Keywords) -> String {
        let mut out =
            String::from("# ESP-IDF Partition Table\n# Name, Type, SubType, Offset, Size, Flags\n");
        for p in &self.partitions {
            let ty = keywords
                .type_name(p.ty)
                .map_or_else(|| p.ty.to_string(), str::to_owned);
            let subtype = keywords
                .subtype_name(p.ty, p.subtype)
                .map_or_else(|| p.subtype.to_string(), str::to_owned);
            let size = if p.size % 0x10_0000 == 0 {
                format!("{}M", p.size / 0x10_0000)
            } else if p.size % 0x400 == 0 {
                format!("{}K", p.size / 0x400)
            } else {
                format!("{:#x}", p.size)
            };
            let mut flags = Vec::new();
            if p.flags.encrypted {
                flags.push("encrypted");
            }
            if p.flags.readonly {
                flags.push("readonly");
            }
            let _ = writeln!(
                out,
                "{},{ty},{subtype},{:#x},{size},{}",
                p.name,
                p.offset,
                flags.join(":")
            );
        }
        out
    }
}
