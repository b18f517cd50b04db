//! Per-device identity, the pure half: MAC addresses, serial-number and text templates, and
//! [`personalize`], which turns a resolved [`Plan`] and one allocated [`DeviceIdentity`] into
//! that board's plan (its certificate and key in the manifest's ESP-AT slot, its user NVS
//! partition encoded with its serial and MAC). Emitting that plan gives the board's images.
//!
//! Allocation (the store, minting, the certificate pool) is I/O and lives in the
//! `espfleet-identity` crate; this module never touches a file. The manifest side is
//! [`crate::manifest::identity`]; the design and threat model are in `docs/identity.md`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;

use crate::manifest::identity::{IdentityPlan, NvsText, TextEncoding, UserNvsValue};
use crate::manifest::plan::{PkiPlan, Plan};
use crate::nvs::{self, NvsEntry, Value};
use crate::release::Era;
use crate::secret::Secret;

/// A board's factory MAC address (the one the ROM loader reads from eFuse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Twelve lower-case hex digits without separators (`240ac4123456`): file names, `{mac_hex}`.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Mac {
    /// `24:0a:c4:12:34:56`, as everything else in espfleet writes MACs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::device_match::format_mac(self.0))
    }
}

impl FromStr for Mac {
    type Err = String;
    /// `24:0a:c4:12:34:56`, `24-0A-C4-12-34-56` or `240ac4123456`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Some(m) = crate::device_match::parse_mac(t) {
            return Ok(Mac(m));
        }
        if t.len() == 12 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut m = [0u8; 6];
            if hex::decode_to_slice(t, &mut m).is_ok() {
                return Ok(Mac(m));
            }
        }
        Err(format!(
            "`{s}` is not a MAC address (expected six hex bytes, e.g. 24:0a:c4:12:34:56)"
        ))
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A problem in a serial-number or text template, with the byte offset it starts at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// What is wrong.
    pub message: String,
    /// Byte offset in the template text.
    pub offset: usize,
}

fn template_error(offset: usize, message: impl Into<String>) -> TemplateError {
    TemplateError {
        message: message.into(),
        offset,
    }
}

/// Longest serial number a template may produce.
pub const SERIAL_MAX_LEN: usize = 64;

/// A serial-number template: literal text around exactly one counter, `{n}` (decimal) or
/// `{n:06}` (zero-padded to 6 digits), e.g. `ACME-{n:06}`. Literal text is limited to
/// `A-Z a-z 0-9 - _ . /` so that a serial is safe in a file name, a certificate subject, an NVS
/// string and a CSV cell without quoting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SerialTemplate {
    /// The template as written (the store keys its counter by it).
    pub text: String,
    /// First counter value.
    pub start: u64,
    #[serde(skip)]
    prefix: String,
    #[serde(skip)]
    width: usize,
    #[serde(skip)]
    suffix: String,
}

impl SerialTemplate {
    /// Parses `text`; the counter starts at `start`.
    pub fn parse(text: &str, start: u64) -> Result<Self, TemplateError> {
        let Some(open) = text.find('{') else {
            return Err(template_error(
                0,
                "a serial template needs a counter: `{n}` or `{n:06}`",
            ));
        };
        let Some(close_rel) = text[open..].find('}') else {
            return Err(template_error(open, "`{` without a closing `}`"));
        };
        let close = open + close_rel;
        let inner = &text[open + 1..close];
        let width = match inner {
            "n" => 0,
            _ => match inner
                .strip_prefix("n:0")
                .or_else(|| inner.strip_prefix("n:"))
            {
                Some(w)
                    if !w.is_empty() && w.len() <= 2 && w.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    let w: usize = w.parse().unwrap_or(0);
                    if !(1..=20).contains(&w) {
                        return Err(template_error(open, "the counter width must be 1 to 20"));
                    }
                    w
                }
                _ => {
                    return Err(template_error(
                        open,
                        format!("`{{{inner}}}` is not a counter: write `{{n}}` or `{{n:06}}`"),
                    ));
                }
            },
        };
        let (prefix, suffix) = (&text[..open], &text[close + 1..]);
        if let Some(i) = suffix.find(['{', '}']) {
            return Err(template_error(
                close + 1 + i,
                "a serial template has exactly one counter",
            ));
        }
        for (base, part) in [(0, prefix), (close + 1, suffix)] {
            if let Some((i, c)) = part
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || "-_./".contains(*c)))
            {
                return Err(template_error(
                    base + i,
                    format!("`{c}` cannot be in a serial number (use A-Z a-z 0-9 - _ . /)"),
                ));
            }
        }
        let t = SerialTemplate {
            text: text.to_owned(),
            start,
            prefix: prefix.to_owned(),
            width,
            suffix: suffix.to_owned(),
        };
        if t.format(u64::MAX).len() > SERIAL_MAX_LEN {
            return Err(template_error(
                0,
                format!("serial numbers could be longer than {SERIAL_MAX_LEN} characters"),
            ));
        }
        Ok(t)
    }

    /// The serial number of counter value `n`.
    pub fn format(&self, n: u64) -> String {
        format!(
            "{}{:0width$}{}",
            self.prefix,
            n,
            self.suffix,
            width = self.width
        )
    }
}

/// A field of a device identity that text templates may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// `{serial}`: the serial number.
    Serial,
    /// `{mac}`: `24:0a:c4:12:34:56`.
    Mac,
    /// `{mac_hex}`: `240ac4123456`.
    MacHex,
}

impl Field {
    /// Every field, with its placeholder name.
    pub const ALL: [(Field, &'static str); 3] = [
        (Field::Serial, "serial"),
        (Field::Mac, "mac"),
        (Field::MacHex, "mac_hex"),
    ];
}

/// The values of the identity fields of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// The MAC.
    pub mac: Mac,
    /// The serial number.
    pub serial: String,
}

impl Fields {
    fn get(&self, f: Field) -> String {
        match f {
            Field::Serial => self.serial.clone(),
            Field::Mac => self.mac.to_string(),
            Field::MacHex => self.mac.hex(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field),
}

/// Text with `{serial}`, `{mac}` and `{mac_hex}` placeholders (`{{` and `}}` for literal
/// braces), filled in per device: certificate subjects, NVS values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextTemplate {
    text: String,
    pieces: Vec<Piece>,
}

impl Serialize for TextTemplate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl TextTemplate {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text.char_indices().peekable();
        while let Some((i, c)) = rest.next() {
            match c {
                '{' if rest.peek().map(|p| p.1) == Some('{') => {
                    rest.next();
                    lit.push('{');
                }
                '}' if rest.peek().map(|p| p.1) == Some('}') => {
                    rest.next();
                    lit.push('}');
                }
                '{' => {
                    let Some(len) = text[i..].find('}') else {
                        return Err(template_error(
                            i,
                            "`{` without a closing `}` (write `{{` for a literal brace)",
                        ));
                    };
                    let name = &text[i + 1..i + len];
                    let Some((field, _)) = Field::ALL.iter().find(|(_, n)| *n == name) else {
                        return Err(template_error(
                            i,
                            format!(
                                "unknown placeholder `{{{name}}}`: use {{serial}}, {{mac}} or {{mac_hex}}"
                            ),
                        ));
                    };
                    if !lit.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Field(*field));
                    for _ in 0..=name.chars().count() {
                        rest.next();
                    }
                }
                '}' => {
                    return Err(template_error(
                        i,
                        "`}` without an opening `{` (write `}}` for a literal brace)",
                    ));
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(TextTemplate {
            text: text.to_owned(),
            pieces,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the template names `field`.
    pub fn uses(&self, field: Field) -> bool {
        self.pieces.contains(&Piece::Field(field))
    }

    /// Fills the placeholders; `escape` transforms each field value first (for example RFC 4514
    /// escaping in a certificate subject).
    pub fn render_with(&self, fields: &Fields, escape: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(f) => out.push_str(&escape(&fields.get(*f))),
            }
        }
        out
    }

    /// Fills the placeholders.
    pub fn render(&self, fields: &Fields) -> String {
        self.render_with(fields, str::to_owned)
    }
}

/// One board's identity as allocated: what [`personalize`] bakes into its images.
#[derive(Debug, Clone)]
pub struct DeviceIdentity {
    /// The board's MAC.
    pub mac: Mac,
    /// Its serial number.
    pub serial: String,
    /// Its certificate, PEM.
    pub certificate_pem: String,
    /// Its private key, PEM.
    pub key_pem: Secret<String>,
}

impl DeviceIdentity {
    /// The fields text templates may use.
    pub fn fields(&self) -> Fields {
        Fields {
            mac: self.mac,
            serial: self.serial.clone(),
        }
    }
}

/// Why a board's plan could not be made. Messages name slots, partitions and sizes, never key
/// material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum IdentityError {
    /// The manifest has no `identity` section.
    #[error("manifest `{manifest}` has no identity section")]
    #[diagnostic(
        code(espfleet::identity::not_configured),
        help("add an `identity {{ ... }}` section to the manifest (see manifests/README.md)")
    )]
    NotConfigured {
        /// Manifest name.
        manifest: String,
    },
    /// The user NVS partition's values do not encode (too large for the partition, bad hex, ...).
    #[error("user NVS partition `{partition}` for {mac}: {reason}")]
    #[diagnostic(
        code(espfleet::identity::nvs_invalid),
        help(
            "grow the partition in at-customize or shorten its values; hex2bin values must be hex after {{...}} is filled in"
        )
    )]
    NvsInvalid {
        /// Partition name.
        partition: String,
        /// The board.
        mac: Mac,
        /// The encoder's message.
        reason: String,
    },
    /// An era A PKI partition would overflow with the device's certificate or key.
    #[error(
        "{name} needs {needed} bytes with the certificate of {mac}, but its partition holds {size}"
    )]
    #[diagnostic(
        code(espfleet::identity::pki_partition_overflow),
        help("grow `{name}` in at-customize")
    )]
    PkiPartitionOverflow {
        /// ESP-AT partition name.
        name: String,
        /// The board.
        mac: Mac,
        /// Bytes the container needs.
        needed: usize,
        /// Partition size.
        size: u32,
    },
}

/// Where a device's generated files appear in its plan's [`crate::manifest::plan::InputFiles`]:
/// a relative path that names no real file (`<identity 240ac4123456>/client_cert.pem`).
fn virtual_path(mac: Mac, file: &str) -> PathBuf {
    PathBuf::from(format!("<identity {}>/{file}", mac.hex()))
}

/// The board's plan: `plan` with the device certificate and key in the identity slot and the
/// user NVS partition filled with the device's values. Pure; emitting the result (through the
/// cache like any plan) gives exactly the bytes to flash on that board.
pub fn personalize(plan: &Plan, device: &DeviceIdentity) -> Result<Plan, IdentityError> {
    let Some(id) = plan.identity.as_ref() else {
        return Err(IdentityError::NotConfigured {
            manifest: plan.name.clone(),
        });
    };
    let mut out = plan.clone();
    let slot = &id.slot;
    let cert_path = virtual_path(device.mac, &format!("{}.pem", slot.cert_name));
    let key_path = virtual_path(device.mac, &format!("{}.pem", slot.key_name));
    out.files.0.insert(
        cert_path.clone(),
        Arc::from(device.certificate_pem.as_bytes()),
    );
    out.files.0.insert(
        key_path.clone(),
        Arc::from(device.key_pem.expose().as_bytes()),
    );
    for (role, name, path) in [
        (slot.cert_role, &slot.cert_name, cert_path),
        (slot.key_role, &slot.key_name, key_path),
    ] {
        let pos = pki_position(&mut out.pki, role, name, id.place.as_ref());
        let files = &mut out.pki[pos].files;
        if slot.index < files.len() {
            files[slot.index] = path;
        } else {
            files.push(path);
        }
        if out.era == Era::A {
            let needed = 8 + files
                .iter()
                .filter_map(|f| out.files.get(f))
                .map(|b| 4 + b.len().div_ceil(4) * 4)
                .sum::<usize>();
            if let Some(p) = out.at_customize.partition(name) {
                if needed as u64 > u64::from(p.size) {
                    return Err(IdentityError::PkiPartitionOverflow {
                        name: name.clone(),
                        mac: device.mac,
                        needed,
                        size: p.size,
                    });
                }
            }
        }
    }
    if let Some(nvs_plan) = &id.nvs {
        let bytes = user_nvs_image(id, device)?;
        let path = virtual_path(device.mac, &format!("{}.bin", nvs_plan.partition));
        out.files.0.insert(path.clone(), Arc::from(bytes));
        if let Some(row) = out
            .at_customize
            .rows
            .iter_mut()
            .find(|r| r.name == nvs_plan.partition)
        {
            row.file = Some(path);
        }
    }
    Ok(out)
}

/// Why a board's images could not be made.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DeviceBuildError {
    /// The identity does not fit the plan.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Identity(#[from] IdentityError),
    /// Emitting failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Emit(#[from] crate::manifest::Diagnostics),
}

/// The images of one board: [`personalize`], then emit through `cache` (the jobs the device's
/// identity does not touch — tables, firmware — are shared by every board and come from the
/// cache; `on_event` hears about each job as [`crate::build::emit_with`] reports it).
pub fn device_images(
    plan: &Plan,
    device: &DeviceIdentity,
    jobs: crate::build::Jobs,
    cache: Option<&crate::cache::Cache>,
    on_event: &(dyn Fn(crate::cache::JobEvent) + Sync),
) -> Result<Vec<crate::build::Image>, DeviceBuildError> {
    let plan = personalize(plan, device)?;
    Ok(crate::build::emit_with(&plan, jobs, cache, on_event)?)
}

/// The images a board is flashed with (those with an offset), sorted by offset: what the
/// daemon writes after reading a MAC. Like [`device_images`] without the files that are not
/// flashed (flash arguments, merged factory images), each job through `cache`. Jobs run in
/// parallel unless `jobs` says not; the result is in offset order either way.
pub fn device_flash_images(
    plan: &Plan,
    device: &DeviceIdentity,
    jobs: crate::build::Jobs,
    cache: Option<&crate::cache::Cache>,
) -> Result<Vec<crate::build::Image>, DeviceBuildError> {
    use rayon::prelude::*;
    let plan = personalize(plan, device)?;
    let run = |job: &crate::build::Job| {
        let key = cache.map(|_| job.key(&plan).finish());
        if let (Some(c), Some(k)) = (cache, &key) {
            if let crate::cache::Lookup::Hit(images) = c.get(k) {
                return Ok(images);
            }
        }
        let images = job.emit(&plan)?;
        if let (Some(c), Some(k)) = (cache, &key) {
            let _ = c.put(k, &images);
        }
        Ok(images)
    };
    let list = crate::build::job_list(&plan);
    let results: Vec<Result<Vec<crate::build::Image>, crate::manifest::ManifestError>> = match jobs
    {
        crate::build::Jobs::Parallel => list.par_iter().map(run).collect(),
        crate::build::Jobs::Sequential => list.iter().map(run).collect(),
    };
    let mut diags = crate::manifest::Diagnostics::new(plan.manifest.display().to_string());
    let mut images = Vec::new();
    for r in results {
        match r {
            Ok(i) => images.extend(i.into_iter().filter(|i| i.offset.is_some())),
            Err(e) => diags.push(e),
        }
    }
    if diags.has_errors() {
        return Err(diags.into());
    }
    images.sort_by_key(|i| i.offset);
    Ok(images)
}

/// The index of `role` in `pki`, adding an empty entry (in ESP-AT's dependency-file order of
/// roles) when the manifest gives no files for it.
fn pki_position(
    pki: &mut Vec<PkiPlan>,
    role: crate::manifest::document::PkiRole,
    name: &str,
    place: Option<&crate::manifest::Place>,
) -> usize {
    if let Some(pos) = pki.iter().position(|p| p.role == role) {
        return pos;
    }
    let rank = |r| {
        crate::manifest::document::PkiRole::ALL
            .iter()
            .position(|x| *x == r)
    };
    let at = pki
        .iter()
        .position(|p| rank(p.role) > rank(role))
        .unwrap_or(pki.len());
    pki.insert(
        at,
        PkiPlan {
            role,
            name: name.to_owned(),
            files: Vec::new(),
            issuer: None,
            place: place.cloned(),
        },
    );
    at
}

/// The user NVS partition image of one device (version 2, erased trailing pages: what the
/// current `esp-idf-nvs-partition-gen` writes).
pub fn user_nvs_image(
    id: &IdentityPlan,
    device: &DeviceIdentity,
) -> Result<Vec<u8>, IdentityError> {
    let Some(nvs_plan) = &id.nvs else {
        return Ok(Vec::new());
    };
    let fields = device.fields();
    let fail = |reason: String| IdentityError::NvsInvalid {
        partition: nvs_plan.partition.clone(),
        mac: device.mac,
        reason,
    };
    let entries = user_nvs_entries(nvs_plan, &fields).map_err(fail)?;
    nvs::encode(&entries, &nvs::Options::new(u64::from(nvs_plan.size)))
        .map_err(|e| fail(e.to_string()))
}

/// The entries of the user NVS partition with `fields` filled in, in manifest order.
pub fn user_nvs_entries(
    nvs_plan: &crate::manifest::identity::UserNvsPlan,
    fields: &Fields,
) -> Result<Vec<NvsEntry>, String> {
    let mut entries = Vec::new();
    for ns in &nvs_plan.namespaces {
        for e in &ns.entries {
            let value = match &e.value {
                UserNvsValue::Fixed(v) => v.clone(),
                UserNvsValue::Text(NvsText { encoding, template }) => {
                    let text = template.render(fields);
                    match encoding {
                        TextEncoding::String => Value::Str(text),
                        TextEncoding::Hex2bin => {
                            Value::Blob(hex::decode(text.trim()).map_err(|_| {
                                format!("`{}`: `{text}` is not an even number of hex digits", e.key)
                            })?)
                        }
                        TextEncoding::Base64 => {
                            use base64::Engine as _;
                            Value::Blob(
                                base64::engine::general_purpose::STANDARD
                                    .decode(text.trim())
                                    .map_err(|_| format!("`{}`: `{text}` is not base64", e.key))?,
                            )
                        }
                    }
                }
            };
            entries.push(NvsEntry::new(ns.name.clone(), e.key.clone(), value));
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_templates_format_as_written() {
        let t = SerialTemplate::parse("ACME-{n:06}", 1000).unwrap();
        assert_eq!(t.format(1000), "ACME-001000");
        assert_eq!(t.format(1_234_567), "ACME-1234567");
        let t = SerialTemplate::parse("{n}-B", 1).unwrap();
        assert_eq!(t.format(7), "7-B");
        let t = SerialTemplate::parse("X{n:3}Y", 1).unwrap();
        assert_eq!(t.format(7), "X007Y");
    }

    #[test]
    fn serial_templates_reject_what_they_cannot_be() {
        for (bad, offset) in [
            ("ACME", 0),
            ("A-{n}-{n}", 6),
            ("A {n}", 1),
            ("A-{x}", 2),
            ("A-{n:00}", 2),
            ("A-{n:21}", 2),
            ("A-{n", 2),
            ("A,{n}", 1),
        ] {
            let e = SerialTemplate::parse(bad, 0).unwrap_err();
            assert_eq!(e.offset, offset, "{bad}: {e}");
        }
        let long = format!("{}{{n}}", "A".repeat(60));
        assert!(SerialTemplate::parse(&long, 0).is_err());
    }

    #[test]
    fn text_templates_fill_fields_and_escape_braces() {
        let fields = Fields {
            mac: "24:0a:c4:12:34:56".parse().unwrap(),
            serial: "ACME-001000".to_owned(),
        };
        let t = TextTemplate::parse("CN={serial},OU={mac} {{x}} {mac_hex}").unwrap();
        assert_eq!(
            t.render(&fields),
            "CN=ACME-001000,OU=24:0a:c4:12:34:56 {x} 240ac4123456"
        );
        assert!(t.uses(Field::Serial) && t.uses(Field::MacHex));
        assert_eq!(TextTemplate::parse("a{seria}").unwrap_err().offset, 1);
        assert_eq!(TextTemplate::parse("a}b").unwrap_err().offset, 1);
        assert_eq!(TextTemplate::parse("ab{").unwrap_err().offset, 2);
        assert_eq!(
            TextTemplate::parse("é{mac}").unwrap().render(&fields),
            "é24:0a:c4:12:34:56"
        );
    }

    #[test]
    fn macs_parse_in_three_spellings() {
        let want = Mac([0x24, 0x0a, 0xc4, 0x12, 0x34, 0x56]);
        for s in ["24:0a:c4:12:34:56", "24-0A-C4-12-34-56", "240AC4123456"] {
            assert_eq!(s.parse::<Mac>().unwrap(), want, "{s}");
        }
        assert_eq!(want.to_string(), "24:0a:c4:12:34:56");
        assert_eq!(want.hex(), "240ac4123456");
        assert!("24:0a:c4:12:34".parse::<Mac>().is_err());
        assert!("24:0a:c4:12:34:5g".parse::<Mac>().is_err());
    }
}
