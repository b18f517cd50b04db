//! The generator's CSV dialect: reading (`generate`) and writing (`dump`).
//!
//! Reading follows the Python tool step by step (`docs/formats/nvs.md` §7): universal newlines, lines
//! whose first character is `#` dropped, then `csv.DictReader` with the excel dialect; each row
//! goes through the generator's `write_entry` wrapper (Wi-Fi extras, `file` rows, namespaces)
//! and its value conversion (encodings, upper-case quirks, `blob_fill`) before it reaches the
//! [`NvsBuilder`].

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use miette::{NamedSource, SourceSpan};

use super::encode::{NvsBuilder, check_key};
use super::error::{Location, NvsError, NvsErrorKind};
use super::python::{self, PyInt};
use super::{Options, Value};

/// Python's `csv.field_size_limit()` default: longer fields are an error.
pub const FIELD_SIZE_LIMIT: usize = 131_072;

/// One CSV input: its name (for messages) and its text.
#[derive(Debug, Clone)]
pub struct CsvInput {
    /// File name as the user gave it.
    pub name: String,
    /// The whole file, decoded as UTF-8.
    pub text: String,
}

impl CsvInput {
    /// Reads a CSV file (UTF-8, no BOM handling, as the generator).
    pub fn read(path: &Path) -> Result<Self, NvsError> {
        let name = path.display().to_string();
        let bytes = crate::input::read(path, crate::input::InputKind::NVS_CSV).map_err(|e| {
            NvsErrorKind::FileRead {
                key: "(CSV input)".into(),
                path: path.to_path_buf(),
                source: e.into_io_error(),
            }
            .into_error()
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            NvsErrorKind::NotUtf8 {
                key: format!("(CSV file {name})"),
            }
            .into_error()
        })?;
        Ok(Self { name, text })
    }
}

impl NvsErrorKind {
    fn into_error(self) -> NvsError {
        self.into()
    }
}

/// One CSV record and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// The fields after unquoting.
    pub fields: Vec<Cow<'a, str>>,
    /// 1-based line number of the record's first line in the original file.
    pub line: usize,
    /// Byte span of the record's lines in the original file.
    pub span: (usize, usize),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    StartRecord,
    StartField,
    InField,
    InQuotedField,
    QuoteInQuotedField,
    EatCrnl,
}

/// Splits `text` into records exactly as `csv.reader(filter(lambda l: l[0] != '#', f))` does
/// with `f` opened in text mode (universal newlines).
///
/// Works on bytes: the characters that drive the state machine (`,` `"` CR LF) are ASCII and
/// never occur inside a multi-byte UTF-8 sequence, so fields stay valid UTF-8.
pub fn read_records(text: &str) -> Result<Vec<Record<'_>>, (usize, (usize, usize), String)> {
    let mut records = Vec::new();
    for_each_record(text, |r| {
        records.push(r);
        Ok(())
    })?;
    Ok(records)
}

#[allow(clippy::too_many_lines)] // the CPython reader's state machine, kept in one piece
/// Streaming form of [`read_records`]: calls `each` for every record as soon as it is read
/// (errors from `each` stop the reading and are returned).
pub fn for_each_record<'a, F>(
    text: &'a str,
    mut each: F,
) -> Result<(), (usize, (usize, usize), String)>
where
    F: FnMut(Record<'a>) -> Result<(), (usize, (usize, usize), String)>,
{
    let bytes = text.as_bytes();
    let mut state = State::StartRecord;
    let mut fields: Vec<Cow<'_, str>> = Vec::new();
    let mut field: Vec<u8> = Vec::new();
    let mut rec_start: Option<(usize, usize)> = None;
    let mut pos = 0usize;
    let mut line_no = 0usize;
    let take = |field: &mut Vec<u8>, fields: &mut Vec<Cow<'_, str>>| -> Result<(), String> {
        let f =
            String::from_utf8(std::mem::take(field)).expect("split at ASCII bytes of valid UTF-8");
        if f.len() > FIELD_SIZE_LIMIT && f.chars().count() > FIELD_SIZE_LIMIT {
            return Err(format!(
                "field larger than field limit ({FIELD_SIZE_LIMIT})"
            ));
        }
        fields.push(Cow::Owned(f));
        Ok(())
    };
    while pos < bytes.len() {
        // One physical line: up to \n, \r\n or \r (all read as \n).
        line_no += 1;
        let start = pos;
        let end = memchr2(bytes, pos);
        let has_newline = end < bytes.len();
        pos = if !has_newline {
            end
        } else if bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n') {
            end + 2
        } else {
            end + 1
        };
        let content = &bytes[start..end];
        if content.first() == Some(&b'#') {
            continue;
        }
        let err = |m: String| (line_no, (start, end), m);
        // Fast path: a whole record on one line without quotes splits on commas exactly as
        // the state machine below would.
        if state == State::StartRecord && !content.is_empty() {
            if let Some(fields) = split_simple_line(&text[start..end]) {
                if fields
                    .iter()
                    .any(|f| f.len() > FIELD_SIZE_LIMIT && f.chars().count() > FIELD_SIZE_LIMIT)
                {
                    return Err(err(format!(
                        "field larger than field limit ({FIELD_SIZE_LIMIT})"
                    )));
                }
                each(Record {
                    fields,
                    line: line_no,
                    span: (start, end),
                })?;
                continue;
            }
        }
        if rec_start.is_none() {
            rec_start = Some((line_no, start));
        }
        // `None` is the end-of-line marker the C reader feeds after each line.
        let n = content.len();
        let total = n + usize::from(has_newline) + 1;
        let mut i = 0;
        while i < total {
            // Copy runs of ordinary bytes in one go.
            if i < n && matches!(state, State::InQuotedField | State::InField) {
                let stops: &[u8] = if state == State::InQuotedField {
                    b"\""
                } else {
                    b","
                };
                let run = content[i..]
                    .iter()
                    .position(|b| stops.contains(b))
                    .unwrap_or(n - i);
                if run > 0 {
                    field.extend_from_slice(&content[i..i + run]);
                    i += run;
                    continue;
                }
            }
            let c = if i < n {
                Some(content[i])
            } else if i == n && has_newline {
                Some(b'\n')
            } else {
                None
            };
            i += 1;
            let mut reprocess = true;
            while reprocess {
                reprocess = false;
                match state {
                    State::StartRecord => match c {
                        None => {}
                        Some(b'\n' | b'\r') => state = State::EatCrnl,
                        Some(_) => {
                            state = State::StartField;
                            reprocess = true;
                        }
                    },
                    State::StartField => match c {
                        None | Some(b'\n' | b'\r') => {
                            take(&mut field, &mut fields).map_err(err)?;
                            state = if c.is_none() {
                                State::StartRecord
                            } else {
                                State::EatCrnl
                            };
                        }
                        Some(b'"') => state = State::InQuotedField,
                        Some(b',') => take(&mut field, &mut fields).map_err(err)?,
                        Some(ch) => {
                            field.push(ch);
                            state = State::InField;
                        }
                    },
                    State::InField => match c {
                        None | Some(b'\n' | b'\r') => {
                            take(&mut field, &mut fields).map_err(err)?;
                            state = if c.is_none() {
                                State::StartRecord
                            } else {
                                State::EatCrnl
                            };
                        }
                        Some(b',') => {
                            take(&mut field, &mut fields).map_err(err)?;
                            state = State::StartField;
                        }
                        Some(ch) => field.push(ch),
                    },
                    State::InQuotedField => match c {
                        None => {}
                        Some(b'"') => state = State::QuoteInQuotedField,
                        Some(ch) => field.push(ch),
                    },
                    State::QuoteInQuotedField => match c {
                        Some(b'"') => {
                            field.push(b'"');
                            state = State::InQuotedField;
                        }
                        Some(b',') => {
                            take(&mut field, &mut fields).map_err(err)?;
                            state = State::StartField;
                        }
                        None | Some(b'\n' | b'\r') => {
                            take(&mut field, &mut fields).map_err(err)?;
                            state = if c.is_none() {
                                State::StartRecord
                            } else {
                                State::EatCrnl
                            };
                        }
                        Some(ch) => {
                            field.push(ch);
                            state = State::InField;
                        }
                    },
                    State::EatCrnl => match c {
                        Some(b'\n' | b'\r') => {}
                        None => state = State::StartRecord,
                        Some(_) => {
                            return Err(err("new-line character seen in unquoted field".into()));
                        }
                    },
                }
            }
        }
        if state == State::StartRecord {
            let (first_line, first_byte) = rec_start.take().expect("set above");
            // Empty lines give an empty record, which DictReader skips.
            if !fields.is_empty() {
                each(Record {
                    fields: std::mem::take(&mut fields),
                    line: first_line,
                    span: (first_byte, end),
                })?;
            }
        }
    }
    // End of input inside a record: the reader saves the pending field (non-strict mode).
    if let Some((first_line, first_byte)) = rec_start {
        if !field.is_empty() || state == State::InQuotedField {
            take(&mut field, &mut fields).map_err(|m| (first_line, (first_byte, text.len()), m))?;
        }
        if !fields.is_empty() {
            each(Record {
                fields,
                line: first_line,
                span: (first_byte, text.len()),
            })?;
        }
    }
    Ok(())
}

/// Position of the next CR or LF at or after `from` (or the end).
fn memchr2(bytes: &[u8], from: usize) -> usize {
    memchr::memchr2(b'\n', b'\r', &bytes[from..]).map_or(bytes.len(), |i| from + i)
}

/// Splits one physical line that holds a whole record the way the reader's state machine
/// would, for the common shapes: unquoted fields, and quoted fields that close on this line
/// and are followed by a comma or the end of the line. Returns `None` for anything else (a
/// quoted field running onto the next line, text after a closing quote), which the state
/// machine then handles.
fn split_simple_line(line: &str) -> Option<Vec<Cow<'_, str>>> {
    // Lines are short (tens of bytes): plain byte loops beat vectorised searches here.
    let b = line.as_bytes();
    let mut fields = Vec::with_capacity(4);
    let mut i = 0;
    loop {
        if b.get(i) == Some(&b'"') {
            // Quoted: up to the closing quote; `""` stands for one quote.
            let mut j = i + 1;
            let mut escaped = false;
            loop {
                let q = j + b[j..].iter().position(|&c| c == b'"')?;
                if b.get(q + 1) == Some(&b'"') {
                    escaped = true;
                    j = q + 2;
                    continue;
                }
                let inner = &line[i + 1..q];
                fields.push(if escaped {
                    Cow::Owned(inner.replace("\"\"", "\""))
                } else {
                    Cow::Borrowed(inner)
                });
                match b.get(q + 1) {
                    None => return Some(fields),
                    Some(b',') => {
                        i = q + 2;
                        break;
                    }
                    Some(_) => return None,
                }
            }
        } else {
            // Unquoted: up to the next comma (a quote inside is an ordinary character).
            if let Some(n) = b[i..].iter().position(|&c| c == b',') {
                fields.push(Cow::Borrowed(&line[i..i + n]));
                i += n + 1;
            } else {
                fields.push(Cow::Borrowed(&line[i..]));
                return Some(fields);
            }
        }
    }
}

/// A row's value before conversion: text from a `data` row, bytes from a `file` row.
#[derive(Debug, Clone)]
enum Raw<'a> {
    Text(Cow<'a, str>),
    Bytes(Vec<u8>),
}

#[allow(clippy::too_many_lines)] // mirrors NVS.write_entry step by step
/// Converts a value per its encoding, as the generator's `NVS.write_entry` does.
fn convert(key: &str, encoding: &str, value: Option<Raw<'_>>) -> Result<Value, NvsErrorKind> {
    let mut encoding = std::borrow::Cow::Borrowed(encoding);
    let mut value = value;
    if encoding.starts_with("blob_fill") || encoding.starts_with("blob_sz_fill") {
        let (len, pad) =
            parse_fill(&encoding).ok_or_else(|| NvsErrorKind::InvalidFillEncoding {
                encoding: encoding.to_string(),
            })?;
        let text: Vec<u8> = match &value {
            None => Vec::new(),
            Some(Raw::Text(t)) => t.as_bytes().to_vec(),
            Some(Raw::Bytes(b)) if b.is_empty() => Vec::new(),
            Some(Raw::Bytes(_)) => {
                return Err(NvsErrorKind::UnsupportedFileEncoding {
                    key: key.to_owned(),
                    encoding: encoding.to_string(),
                });
            }
        };
        if text.len() > len {
            return Err(NvsErrorKind::FillValueTooLong {
                key: key.to_owned(),
                len: text.len(),
                max: len,
            });
        }
        let mut data = Vec::with_capacity(len + 4);
        if encoding.starts_with("blob_sz_fill") {
            let n = u32::try_from(text.len()).map_err(|_| NvsErrorKind::BlobTooLarge {
                key: key.to_owned(),
            })?;
            data.extend_from_slice(&n.to_le_bytes());
        }
        data.extend_from_slice(&text);
        data.resize(data.len() + (len - text.len()), pad);
        value = Some(Raw::Text(Cow::Owned(hex::encode(data))));
        encoding = std::borrow::Cow::Borrowed("hex2bin");
    }
    let missing = || NvsErrorKind::MissingField { column: "value" };
    match &*encoding {
        "hex2bin" => {
            let stripped: Vec<u8> = match value.ok_or_else(missing)? {
                Raw::Text(t) => {
                    let s = python::py_strip(&t);
                    let chars = s.chars().count();
                    if chars % 2 != 0 {
                        return Err(NvsErrorKind::HexOddLength {
                            key: key.to_owned(),
                            len: chars,
                        });
                    }
                    if !s.is_ascii() {
                        return Err(NvsErrorKind::InvalidHex {
                            key: key.to_owned(),
                        });
                    }
                    s.as_bytes().to_vec()
                }
                Raw::Bytes(b) => {
                    let s = python::py_strip_bytes(&b);
                    if s.len() % 2 != 0 {
                        return Err(NvsErrorKind::HexOddLength {
                            key: key.to_owned(),
                            len: s.len(),
                        });
                    }
                    s.to_vec()
                }
            };
            value = Some(Raw::Bytes(python::a2b_hex(&stripped).ok_or_else(|| {
                NvsErrorKind::InvalidHex {
                    key: key.to_owned(),
                }
            })?));
        }
        "base64" => {
            let bytes = match value.ok_or_else(missing)? {
                Raw::Text(t) if !t.is_ascii() => {
                    return Err(NvsErrorKind::InvalidBase64 {
                        key: key.to_owned(),
                        reason: "string argument should contain only ASCII characters".into(),
                    });
                }
                Raw::Text(t) => t.into_owned().into_bytes(),
                Raw::Bytes(b) => b,
            };
            let decoded =
                python::a2b_base64(&bytes).map_err(|reason| NvsErrorKind::InvalidBase64 {
                    key: key.to_owned(),
                    reason,
                })?;
            value = Some(Raw::Bytes(decoded));
        }
        "string" => {
            let mut text = match value.ok_or_else(missing)? {
                Raw::Text(t) => t.into_owned(),
                Raw::Bytes(b) => String::from_utf8(b).map_err(|_| NvsErrorKind::NotUtf8 {
                    key: key.to_owned(),
                })?,
            };
            text.push('\0');
            value = Some(Raw::Text(Cow::Owned(text)));
        }
        _ => {}
    }
    let lower = if encoding
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        encoding.clone()
    } else {
        std::borrow::Cow::Owned(encoding.to_lowercase())
    };
    let int = |value: Option<Raw>,
               name: &'static str,
               min: i128,
               max: i128|
     -> Result<i128, NvsErrorKind> {
        let value = value.ok_or_else(missing)?;
        let parsed = match &value {
            Raw::Text(t) => python::int_from_str(t),
            Raw::Bytes(b) => python::int_from_bytes(b),
        };
        // The text as shown in an error, built only when there is one.
        let shown = || match &value {
            Raw::Text(t) => t.to_string(),
            Raw::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        };
        match parsed {
            PyInt::Value(v) if (min..=max).contains(&v) => Ok(v),
            PyInt::Value(_) | PyInt::Huge => Err(NvsErrorKind::ValueOutOfRange {
                key: key.to_owned(),
                encoding: name,
                value: shown().trim().to_owned(),
                min,
                max,
            }),
            PyInt::Invalid => Err(NvsErrorKind::InvalidInteger {
                key: key.to_owned(),
                value: shown(),
            }),
        }
    };
    let v = match &*lower {
        "u8" => {
            Value::U8(u8::try_from(int(value, "u8", 0, u8::MAX.into())?).expect("range checked"))
        }
        "i8" => Value::I8(
            i8::try_from(int(value, "i8", i8::MIN.into(), i8::MAX.into())?).expect("range checked"),
        ),
        "u16" => Value::U16(
            u16::try_from(int(value, "u16", 0, u16::MAX.into())?).expect("range checked"),
        ),
        "i16" => Value::I16(
            i16::try_from(int(value, "i16", i16::MIN.into(), i16::MAX.into())?)
                .expect("range checked"),
        ),
        "u32" => Value::U32(
            u32::try_from(int(value, "u32", 0, u32::MAX.into())?).expect("range checked"),
        ),
        "i32" => Value::I32(
            i32::try_from(int(value, "i32", i32::MIN.into(), i32::MAX.into())?)
                .expect("range checked"),
        ),
        "u64" => Value::U64(
            u64::try_from(int(value, "u64", 0, u64::MAX.into())?).expect("range checked"),
        ),
        "i64" => Value::I64(
            i64::try_from(int(value, "i64", i64::MIN.into(), i64::MAX.into())?)
                .expect("range checked"),
        ),
        "string" => match value.ok_or_else(missing)? {
            Raw::Text(t) => Value::RawStr(t.into_owned().into_bytes()),
            Raw::Bytes(_) => {
                return Err(NvsErrorKind::UnsupportedFileEncoding {
                    key: key.to_owned(),
                    encoding: encoding.to_string(),
                });
            }
        },
        "binary" | "hex2bin" | "base64" => match value.ok_or_else(missing)? {
            Raw::Text(t) if !t.is_ascii() => {
                return Err(NvsErrorKind::NonAsciiBlobText {
                    key: key.to_owned(),
                    encoding: encoding.to_string(),
                });
            }
            Raw::Text(t) => Value::Blob(t.into_owned().into_bytes()),
            Raw::Bytes(b) => Value::Blob(b),
        },
        _ => {
            return Err(NvsErrorKind::UnknownEncoding {
                encoding: encoding.to_string(),
            });
        }
    };
    Ok(v)
}

/// Parses `blob_fill(N;0xHH)` / `blob_sz_fill(N;0xHH)` like the generator's `re.match` (a
/// prefix match: anything after the closing parenthesis is ignored).
fn parse_fill(encoding: &str) -> Option<(usize, u8)> {
    let rest = encoding
        .strip_prefix("blob_fill(")
        .or_else(|| encoding.strip_prefix("blob_sz_fill("))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let len: usize = rest[..digits].parse().ok()?;
    let rest = rest[digits..].strip_prefix(";0x")?;
    let hex = rest.get(..2)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) || !rest[2..].starts_with(')') {
        return None;
    }
    Some((len, u8::from_str_radix(hex, 16).ok()?))
}

/// State the generator's row wrapper keeps across rows (Wi-Fi extras, `docs/formats/nvs.md` §7.4).
#[derive(Debug, Default)]
struct WifiState {
    sta_extras_written: bool,
    ap_ssid: Option<String>,
    ap_passwd: Option<String>,
    ap_authmode: Option<String>,
}

/// Feeds CSV rows into an [`NvsBuilder`] with all of the generator's row-level behaviour.
#[derive(Debug)]
pub struct CsvGenerator {
    builder: NvsBuilder,
    base_dir: PathBuf,
    wifi: WifiState,
}

impl CsvGenerator {
    /// A generator for an image with `options`; relative `file` paths resolve against `base_dir`
    /// (the generator uses the current directory).
    pub fn new(options: Options, base_dir: impl Into<PathBuf>) -> Result<Self, NvsError> {
        Ok(Self {
            builder: NvsBuilder::new(options)?,
            base_dir: base_dir.into(),
            wifi: WifiState::default(),
        })
    }

    /// Adds every row of one CSV file (files are processed in order into one image; namespace
    /// and Wi-Fi state carry over, as in the generator).
    pub fn add_csv(&mut self, input: &CsvInput) -> Result<(), NvsError> {
        let source = || NamedSource::new(input.name.clone(), input.text.clone());
        // A CSV holding a private key inline is never quoted: its errors name the line only,
        // and an error whose message would repeat key material is withheld.
        let secret = crate::input::holds_private_key(input.text.as_bytes());
        let key_lines = if secret {
            crate::input::private_key_lines(&input.text)
        } else {
            Vec::new()
        };
        let located = |e: NvsErrorKind, line: usize, span: (usize, usize)| {
            let e = if secret && crate::input::quotes_key_material(&e.to_string(), &key_lines) {
                let code = miette::Diagnostic::code(&e).map_or_else(String::new, |c| c.to_string());
                NvsErrorKind::SecretRowInvalid { code }
            } else {
                e
            };
            let e = e.at(Location::Line {
                file: input.name.clone(),
                line,
            });
            if secret {
                e
            } else {
                e.with_source(source(), SourceSpan::from(span.0..span.1))
            }
        };
        let names = ["key", "type", "encoding", "value"];
        let mut cols: Option<[Option<usize>; 4]> = None;
        let mut failure: Option<NvsError> = None;
        let parsed = for_each_record(&input.text, |rec| {
            let Some(cols) = cols else {
                let col = |name: &str| rec.fields.iter().rposition(|f| f == name);
                cols = Some(names.map(col));
                return Ok(());
            };
            let result =
                if let Some((_, column)) = cols.iter().zip(names).find(|(c, _)| c.is_none()) {
                    Err(NvsErrorKind::MissingColumn { column })
                } else {
                    let get = |i: usize| cols[i].and_then(|c| rec.fields.get(c)).map(|f| &**f);
                    self.row(get(0), get(1), get(2), get(3))
                };
            result.map_err(|e| {
                failure = Some(located(e, rec.line, rec.span));
                (0, (0, 0), String::new())
            })
        });
        if let Some(f) = failure {
            return Err(f);
        }
        parsed.map_err(|(line, span, message)| {
            located(NvsErrorKind::CsvSyntax { message }, line, span)
        })
    }

    /// One row, as the generator's `generate()` loop and `write_entry` wrapper handle it.
    /// `None` stands for a field missing from a short row.
    pub fn row(
        &mut self,
        key: Option<&str>,
        kind: Option<&str>,
        encoding: Option<&str>,
        value: Option<&str>,
    ) -> Result<(), NvsErrorKind> {
        let key = key.ok_or(NvsErrorKind::MissingField { column: "key" })?;
        check_key(key)?;
        if matches!(key, "ap.ssid" | "ap.passwd" | "ap.authmode") {
            let v = value.map(str::to_owned);
            match key {
                "ap.ssid" => self.wifi.ap_ssid = v,
                "ap.passwd" => self.wifi.ap_passwd = v,
                _ if value != Some("0") => self.wifi.ap_authmode = v,
                _ => {}
            }
            let set = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
            if set(&self.wifi.ap_ssid) && set(&self.wifi.ap_passwd) && set(&self.wifi.ap_authmode) {
                let pmk = ap_pmk_info(
                    self.wifi.ap_passwd.as_deref().unwrap_or(""),
                    self.wifi.ap_ssid.as_deref().unwrap_or(""),
                );
                self.builder.entry_inner("ap.pmk_info", &Value::Blob(pmk))?;
            }
        }
        if matches!(key, "sta.ssid" | "sta.pswd") {
            let encoding = encoding.ok_or(NvsErrorKind::MissingField { column: "encoding" })?;
            let v = convert(key, encoding, value.map(|v| Raw::Text(Cow::Borrowed(v))))?;
            self.builder.entry_inner(key, &v)?;
            if !self.wifi.sta_extras_written {
                self.builder
                    .entry_inner("sta.apinfo", &Value::Blob(vec![0xFF; 140]))?;
                self.builder
                    .entry_inner("sta.pmk", &Value::Blob(vec![0; 32]))?;
                self.builder
                    .entry_inner("sta.apsw", &Value::Blob(vec![0; 2]))?;
                self.wifi.sta_extras_written = true;
            }
            return Ok(());
        }
        let raw = if kind == Some("file") {
            let path = value.ok_or(NvsErrorKind::MissingField { column: "value" })?;
            let path = self.base_dir.join(path);
            let bytes = crate::input::read(&path, crate::input::InputKind::IMAGE).map_err(|e| {
                NvsErrorKind::FileRead {
                    key: key.to_owned(),
                    path,
                    source: e.into_io_error(),
                }
            })?;
            Some(Raw::Bytes(bytes))
        } else {
            value.map(|v| Raw::Text(Cow::Borrowed(v)))
        };
        if kind == Some("namespace") {
            return self.builder.namespace_inner(key);
        }
        let encoding = encoding.ok_or(NvsErrorKind::MissingField { column: "encoding" })?;
        let v = convert(key, encoding, raw)?;
        self.builder.entry_inner(key, &v)
    }

    /// Finishes the image.
    pub fn finish(self) -> Vec<u8> {
        self.builder.finish()
    }
}

/// The `ap.pmk_info` blob: 100 zero bytes, then PBKDF2-HMAC-SHA1(password, ssid, 4096, 32).
fn ap_pmk_info(password: &str, ssid: &str) -> Vec<u8> {
    let mut pmk = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password.as_bytes(), ssid.as_bytes(), 4096, &mut pmk);
    let mut out = vec![0u8; 100];
    out.extend_from_slice(&pmk);
    out
}

/// Generates an image from CSV inputs, like `python -m esp_idf_nvs_partition_gen generate`.
/// `file` rows are read relative to `base_dir`.
pub fn generate(
    inputs: &[CsvInput],
    options: &Options,
    base_dir: &Path,
) -> Result<Vec<u8>, NvsError> {
    let mut g = CsvGenerator::new(options.clone(), base_dir)?;
    for input in inputs {
        g.add_csv(input)?;
    }
    Ok(g.finish())
}

/// Parses SIZE as the generator does (`int(text, 0)`); beyond the generator, a size larger
/// than any flash ([`super::encode::MAX_PARTITION_SIZE`]) is refused here, before anything is
/// allocated.
pub fn parse_size(text: &str) -> Result<u64, NvsError> {
    match python::int_base0(text) {
        PyInt::Value(v) => {
            let max = super::encode::MAX_PARTITION_SIZE;
            if v > i128::from(max) {
                return Err(NvsErrorKind::SizeTooLarge {
                    size: u64::try_from(v).unwrap_or(u64::MAX),
                    max,
                }
                .into());
            }
            if v % 4096 != 0 {
                return Err(NvsErrorKind::SizeNotMultiple { size: v }.into());
            }
            if v < 4096 {
                return Err(NvsErrorKind::SizeTooSmall { size: v, min: 4096 }.into());
            }
            u64::try_from(v).map_err(|_| {
                NvsErrorKind::InvalidSize {
                    text: text.to_owned(),
                }
                .into()
            })
        }
        PyInt::Huge | PyInt::Invalid => Err(NvsErrorKind::InvalidSize {
            text: text.to_owned(),
        }
        .into()),
    }
}

/// Quotes one field for the generator's CSV reader: quoted when it contains a delimiter,
/// quote or line break, or starts with `#` (such a line would be dropped as a comment).
pub fn quote_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) || field.starts_with('#') {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        read_records(text)
            .unwrap()
            .into_iter()
            .map(|r| r.fields.into_iter().map(Cow::into_owned).collect())
            .collect()
    }

    // Expected results: Python 3.11 `csv.reader` on the same lines (checked by hand).
    #[test]
    fn reader_matches_python_csv() {
        assert_eq!(fields("\"ab\"c,d\nx\n"), vec![vec!["abc", "d"], vec!["x"]]);
        assert_eq!(
            fields("a,\"b,c\",\"say \"\"hi\"\"\"\r\n\r\n#c\n e ,\n"),
            vec![vec!["a", "b,c", "say \"hi\""], vec![" e ", ""]]
        );
        assert_eq!(fields("\"a\n#b\nc\"\n"), vec![vec!["a\nc"]]);
        assert_eq!(fields("k\r\"x\ry\"\n"), vec![vec!["k"], vec!["x\ny"]]);
        assert_eq!(fields("a,b"), vec![vec!["a", "b"]]);
        assert_eq!(fields("\"open"), vec![vec!["open"]]);
        // The one-line fast path and the state machine agree (Python 3.11 csv.reader).
        assert_eq!(fields("a\"b,c\n"), vec![vec!["a\"b", "c"]]);
        assert_eq!(fields("\"\",x\n"), vec![vec!["", "x"]]);
        assert_eq!(fields("x,\"\"\n"), vec![vec!["x", ""]]);
        assert_eq!(fields("\"a\"\"\nb\"\n"), vec![vec!["a\"\nb"]]);
        assert_eq!(fields("\"a\"\"b\",c\n"), vec![vec!["a\"b", "c"]]);
        let recs = read_records("# c\nkey,type\n\nx,y\n").unwrap();
        assert_eq!(recs.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 4]);
    }

    #[test]
    fn fill_encodings() {
        assert_eq!(parse_fill("blob_fill(6;0xff)"), Some((6, 0xFF)));
        assert_eq!(parse_fill("blob_sz_fill(6;0xAb)junk"), Some((6, 0xAB)));
        assert_eq!(parse_fill("blob_fill(6;0xf)"), None);
        // nvs-format.md 7.4: blob_sz_fill(6;0xff) with `hi`.
        let v = convert(
            "k",
            "blob_sz_fill(6;0xff)",
            Some(Raw::Text(Cow::Borrowed("hi"))),
        )
        .unwrap();
        assert_eq!(
            v,
            Value::Blob(vec![2, 0, 0, 0, 0x68, 0x69, 0xFF, 0xFF, 0xFF, 0xFF])
        );
    }

    #[test]
    fn upper_case_encodings_skip_conversion() {
        assert_eq!(
            convert("k", "STRING", Some(Raw::Text(Cow::Borrowed("ab")))).unwrap(),
            Value::RawStr(b"ab".to_vec())
        );
        assert_eq!(
            convert("k", "string", Some(Raw::Text(Cow::Borrowed("ab")))).unwrap(),
            Value::RawStr(b"ab\0".to_vec())
        );
        assert_eq!(
            convert("k", "HEX2BIN", Some(Raw::Text(Cow::Borrowed("0a")))).unwrap(),
            Value::Blob(b"0a".to_vec())
        );
        assert_eq!(
            convert("k", "hex2bin", Some(Raw::Text(Cow::Borrowed(" 0a ")))).unwrap(),
            Value::Blob(vec![10])
        );
        assert_eq!(
            convert("k", "U8", Some(Raw::Text(Cow::Borrowed("7")))).unwrap(),
            Value::U8(7)
        );
    }
}
