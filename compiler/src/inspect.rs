//! `espfleet inspect`: a readable (text or JSON) account of any image espfleet writes, so a
//! reviewer can see what a build put on flash without reaching for five different tools.
//!
//! The kind of input is recognised from its content (magic bytes, see [`detect`]); every format
//! is decoded with the same decoder the round-trip tests use, so what is printed is what the
//! device reads. Private key material is never printed: keys, certificates and other blobs are
//! summarised (PEM label, certificate subject, length).

use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use crate::esp_at::{ble_data, factory_param, firmware, flasher_args, pki};
use crate::nvs;
use crate::partition_table::{self, Partition, PartitionTable};
use crate::target::{Chip, FlashFreq, FlashMode, FlashSize};

/// What an input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A binary partition table (primary or at_customize).
    PartitionTable,
    /// An NVS partition image (`mfg_nvs.bin`, ...).
    Nvs,
    /// An era A `factory_param.bin`.
    FactoryParam,
    /// An era A PKI container (`client_cert.bin`, ...).
    Pki,
    /// An era A `ble_data.bin`.
    BleData,
    /// An ESP app or bootloader image.
    Firmware,
    /// A merged factory image (`factory/factory_<MODULE>.bin`).
    Merged,
    /// `flasher_args.json`.
    FlasherArgs,
}

impl Kind {
    /// Every kind, for `--kind` and help texts.
    pub const ALL: [Kind; 8] = [
        Kind::PartitionTable,
        Kind::Nvs,
        Kind::FactoryParam,
        Kind::Pki,
        Kind::BleData,
        Kind::Firmware,
        Kind::Merged,
        Kind::FlasherArgs,
    ];

    /// The name used on the command line and in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Kind::PartitionTable => "partition-table",
            Kind::Nvs => "nvs",
            Kind::FactoryParam => "factory-param",
            Kind::Pki => "pki",
            Kind::BleData => "ble-data",
            Kind::Firmware => "firmware",
            Kind::Merged => "merged",
            Kind::FlasherArgs => "flasher-args",
        }
    }

    /// The kind of a command-line name.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Errors of `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum InspectError {
    /// Nothing known matches the content.
    #[error("unrecognised input: {detail}")]
    #[diagnostic(
        code(espfleet::inspect::unrecognised),
        help(
            "inspect reads partition tables, NVS images, era A bins (factory_param, PKI, ble_data), ESP app/bootloader images, merged factory images and flasher_args.json; pass --kind to force one"
        )
    )]
    Unrecognised {
        /// What the first bytes look like.
        detail: String,
    },
    /// The input is of the given kind but does not decode.
    #[error("not a valid {kind} image: {message}")]
    #[diagnostic(
        code(espfleet::inspect::malformed),
        help("the file is corrupt or truncated, or --kind names the wrong format")
    )]
    Malformed {
        /// The kind it was read as.
        kind: &'static str,
        /// The decoder's complaint.
        message: String,
    },
}

/// The result of inspecting one input.
#[derive(Debug, Clone)]
pub struct Report {
    /// What the input was read as.
    pub kind: Kind,
    /// The readable account.
    pub text: String,
    /// The same as JSON.
    pub json: Json,
}

const PT_MAGIC: [u8; 2] = [0xAA, 0x50];
/// The table length as a flash length.
const TABLE_LEN: u32 = 0xC00;

fn is_nvs(bytes: &[u8]) -> bool {
    if bytes.len() < 4096 || bytes.len() % 4096 != 0 {
        return false;
    }
    let state = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    matches!(state, 0xFFFF_FFFE | 0xFFFF_FFFC | 0xFFFF_FFF8)
}

/// Recognises an input from its content.
pub fn detect(bytes: &[u8]) -> Option<Kind> {
    let text_start = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if text_start == Some(&b'{') {
        return Some(Kind::FlasherArgs);
    }
    if bytes.len() > 0x8000 + 32 && bytes[0x8000..0x8002] == PT_MAGIC {
        return Some(Kind::Merged);
    }
    match bytes {
        [0xAA, 0x50, ..] => Some(Kind::PartitionTable),
        [0xFC, 0xFC, ..] => Some(Kind::FactoryParam),
        [0xF1, 0xF1, ..] => Some(Kind::Pki),
        [_, _, 0x27, 0x95, ..] => Some(Kind::BleData),
        [0xE9, ..] => Some(Kind::Firmware),
        _ if is_nvs(bytes) => Some(Kind::Nvs),
        _ => None,
    }
}

/// Inspects `bytes`, as `kind` or as whatever [`detect`] recognises.
pub fn inspect(bytes: &[u8], kind: Option<Kind>) -> Result<Report, InspectError> {
    let Some(kind) = kind.or_else(|| detect(bytes)) else {
        let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        return Err(InspectError::Unrecognised {
            detail: if bytes.is_empty() {
                "the file is empty".to_owned()
            } else {
                format!(
                    "{} bytes starting {} match no known format",
                    bytes.len(),
                    head.join(" ")
                )
            },
        });
    };
    let bad = |message: String| InspectError::Malformed {
        kind: kind.name(),
        message,
    };
    let (text, json) = match kind {
        Kind::PartitionTable => table(bytes).map_err(bad)?,
        Kind::Nvs => nvs_image(bytes),
        Kind::FactoryParam => factory(bytes).map_err(bad)?,
        Kind::Pki => pki_bin(bytes).map_err(bad)?,
        Kind::BleData => ble(bytes).map_err(bad)?,
        Kind::Firmware => firmware_image(bytes).map_err(bad)?,
        Kind::Merged => merged(bytes).map_err(bad)?,
        Kind::FlasherArgs => flasher(bytes).map_err(bad)?,
    };
    Ok(Report { kind, text, json })
}

type Out = (String, Json);

fn indent(text: &str, by: &str) -> String {
    text.lines().fold(String::new(), |mut out, l| {
        let _ = writeln!(out, "{by}{l}");
        out
    })
}

pub(crate) fn size_text(n: u32) -> String {
    if n % (1024 * 1024) == 0 {
        format!("{}M", n / (1024 * 1024))
    } else if n % 1024 == 0 {
        format!("{}K", n / 1024)
    } else {
        format!("{n}")
    }
}

fn table_rows(t: &PartitionTable) -> Out {
    let kw = partition_table::Keywords::esp_idf();
    let mut text = String::new();
    let mut rows = Vec::new();
    for p in t.partitions() {
        let ty = kw
            .type_name(p.ty)
            .map_or_else(|| format!("{:#04x}", p.ty), str::to_owned);
        let sub = kw
            .subtype_name(p.ty, p.subtype)
            .map_or_else(|| format!("{:#04x}", p.subtype), str::to_owned);
        let flags = match (p.flags.encrypted, p.flags.readonly) {
            (true, true) => "encrypted,readonly",
            (true, false) => "encrypted",
            (false, true) => "readonly",
            (false, false) => "",
        };
        let _ = writeln!(
            text,
            "  {:<16} {ty:<6} {sub:<9} {:#09x} {:>6} {flags}",
            p.name,
            p.offset,
            size_text(p.size)
        );
        rows.push(json!({
            "name": p.name, "type": p.ty, "subtype": p.subtype, "offset": p.offset,
            "size": p.size, "encrypted": p.flags.encrypted, "readonly": p.flags.readonly,
        }));
    }
    (text, Json::Array(rows))
}

fn table(bytes: &[u8]) -> Result<Out, String> {
    let has_md5 = bytes
        .chunks(32)
        .take_while(|r| r.len() == 32 && r.iter().any(|b| *b != 0xFF))
        .any(|r| r[..2] == [0xEB, 0xEB]);
    let t = PartitionTable::from_bytes(bytes).map_err(|e| e.to_string())?;
    let (rows, json) = table_rows(&t);
    let md5 = if has_md5 { "MD5 valid" } else { "no MD5" };
    let text = format!(
        "Partition table: {} partition(s), {md5}\n  name             type   subtype   offset      size flags\n{rows}",
        t.partitions().len()
    );
    Ok((
        text,
        json!({"kind": "partition-table", "md5": has_md5, "partitions": json}),
    ))
}

/// A one-line summary of a certificate, key or other blob that never shows its content.
pub fn describe_blob(data: &[u8]) -> String {
    use der::Decode as _;
    let n = data.len();
    let cert_subject = |der: &[u8]| {
        x509_cert::Certificate::from_der(der)
            .ok()
            .map(|c| c.tbs_certificate.subject.to_string())
    };
    if let Ok(p) = pem::parse(data) {
        let tag = p.tag();
        if tag.contains("CERTIFICATE") {
            if let Some(s) = cert_subject(p.contents()) {
                return format!("PEM certificate, subject {s}, {n} bytes");
            }
        }
        if tag.contains("PRIVATE KEY") {
            let algo = tag.trim_end_matches("PRIVATE KEY").trim();
            return if algo.is_empty() {
                format!("PEM private key (PKCS#8), {n} bytes")
            } else {
                format!("PEM private key ({algo}), {n} bytes")
            };
        }
        return format!("PEM {tag}, {n} bytes");
    }
    if let Some(s) = cert_subject(data) {
        return format!("DER certificate, subject {s}, {n} bytes");
    }
    if data.first() == Some(&0x30) {
        return format!("DER data (key or other ASN.1), {n} bytes");
    }
    format!("binary, {n} bytes")
}

fn nvs_value(v: &nvs::Value) -> (String, Json) {
    match v {
        nvs::Value::U8(x) => (format!("u8 {x}"), json!(x)),
        nvs::Value::I8(x) => (format!("i8 {x}"), json!(x)),
        nvs::Value::U16(x) => (format!("u16 {x}"), json!(x)),
        nvs::Value::I16(x) => (format!("i16 {x}"), json!(x)),
        nvs::Value::U32(x) => (format!("u32 {x}"), json!(x)),
        nvs::Value::I32(x) => (format!("i32 {x}"), json!(x)),
        nvs::Value::U64(x) => (format!("u64 {x}"), json!(x)),
        nvs::Value::I64(x) => (format!("i64 {x}"), json!(x)),
        nvs::Value::Str(s) => (format!("string {s:?}"), json!(s)),
        nvs::Value::RawStr(b) => (
            format!("string (raw, {} bytes)", b.len()),
            json!({"raw_string_bytes": b.len()}),
        ),
        nvs::Value::Blob(b) => {
            let d = describe_blob(b);
            (format!("blob: {d}"), json!({"blob": d}))
        }
    }
}

fn nvs_image(bytes: &[u8]) -> Out {
    let d = nvs::decode(bytes);
    let mut text = format!(
        "NVS image: {} bytes, {} page(s), version {}, trailing pages {}\n",
        d.size,
        d.pages.len(),
        d.version
            .map_or_else(|| "?".to_owned(), |v| v.number().to_string()),
        match d.trailing {
            nvs::TrailingPages::Legacy => "legacy (all Full)",
            nvs::TrailingPages::Erased => "active (last data page Active, rest erased)",
        }
    );
    let mut pages = Vec::new();
    let mut erased_run: Option<(usize, usize)> = None;
    let flush = |text: &mut String, run: &mut Option<(usize, usize)>| {
        if let Some((a, b)) = run.take() {
            if a == b {
                let _ = writeln!(text, "  page {a}: erased");
            } else {
                let _ = writeln!(text, "  pages {a}..={b}: erased");
            }
        }
    };
    for p in &d.pages {
        pages.push(json!({"index": p.index, "state": format!("{:?}", p.state), "seq": p.seq, "written_slots": p.written_slots}));
        if p.state == nvs::page::PageState::Uninitialized && p.written_slots == 0 {
            erased_run = Some(erased_run.map_or((p.index, p.index), |(a, _)| (a, p.index)));
            continue;
        }
        flush(&mut text, &mut erased_run);
        let _ = writeln!(
            text,
            "  page {}: {:?}{}, {} slot(s) written{}",
            p.index,
            p.state,
            p.seq.map_or_else(String::new, |s| format!(" seq {s}")),
            p.written_slots,
            if p.header_crc_ok || p.seq.is_none() {
                ""
            } else {
                ", header CRC BAD"
            }
        );
    }
    flush(&mut text, &mut erased_run);
    let mut entries = Vec::new();
    for item in &d.items {
        match &item.value {
            nvs::decode::ItemValue::Namespace(i) => {
                let _ = writeln!(text, "  namespace {} (index {i})", item.key);
                entries.push(json!({"namespace": item.key, "index": i}));
            }
            nvs::decode::ItemValue::Value(v) => {
                let (t, j) = nvs_value(v);
                let _ = writeln!(text, "    {}: {t}", item.key);
                entries.push(json!({"namespace_of": item.namespace, "key": item.key, "value": j}));
            }
        }
    }
    for i in &d.issues {
        let _ = writeln!(text, "  issue: {i}");
    }
    (
        text,
        json!({"kind": "nvs", "size": d.size, "pages": pages, "items": entries, "issues": d.issues}),
    )
}

fn factory(bytes: &[u8]) -> Result<Out, String> {
    let f = factory_param::FactoryParam::decode(bytes).map_err(|e| e.to_string())?;
    let text = format!(
        "factory_param (era A), version {}\n  module {} ({})\n  UART{} {} baud, tx {} rx {} cts {} rts {}\n  Wi-Fi country {:?}, channels {}..+{}, max TX power {} (0.25 dBm)\n",
        f.version,
        f.module_name,
        f.platform,
        f.uart_port,
        f.uart_baudrate,
        f.uart_tx_pin,
        f.uart_rx_pin,
        f.uart_cts_pin,
        f.uart_rts_pin,
        f.country_code,
        f.start_channel,
        f.channel_num,
        f.tx_max_power
    );
    Ok((
        text,
        json!({"kind": "factory-param", "version": f.version, "platform": f.platform,
            "module_name": f.module_name, "uart_port": f.uart_port, "uart_baudrate": f.uart_baudrate,
            "uart_tx_pin": f.uart_tx_pin, "uart_rx_pin": f.uart_rx_pin, "uart_cts_pin": f.uart_cts_pin,
            "uart_rts_pin": f.uart_rts_pin, "country_code": f.country_code, "start_channel": f.start_channel,
            "channel_num": f.channel_num, "tx_max_power": f.tx_max_power}),
    ))
}

fn pki_bin(bytes: &[u8]) -> Result<Out, String> {
    let items = pki::decode(bytes).map_err(|e| e.to_string())?;
    let mut text = format!("PKI container (era A): {} item(s)\n", items.len());
    let mut js = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let kind = match item.kind {
            pki::ItemKind::Ca => "ca",
            pki::ItemKind::Cert => "cert",
            pki::ItemKind::Key => "key",
        };
        let what = describe_blob(&item.content);
        let _ = writeln!(
            text,
            "  [{i}] type {:#04x} ({kind}) id {}: {what}",
            item.kind.byte(),
            item.id
        );
        js.push(json!({"type": item.kind.byte(), "id": item.id, "length": item.content.len(), "content": what}));
    }
    Ok((text, json!({"kind": "pki", "items": js})))
}

fn ble(bytes: &[u8]) -> Result<Out, String> {
    let t = ble_data::decode_bin(bytes).map_err(|e| e.to_string())?;
    let mut text = format!("ble_data (era A): {} GATTS row(s)\n", t.0.len());
    let mut rows = Vec::new();
    for row in &t.0 {
        let mut line = String::new();
        let mut obj = serde_json::Map::new();
        for (k, v) in &row.0 {
            match v {
                ble_data::JsonValue::Int(n) if k == "perm" => {
                    let _ = write!(line, " {k}={n:#04x}");
                    obj.insert(k.clone(), json!(i64::try_from(*n).unwrap_or(i64::MAX)));
                }
                ble_data::JsonValue::Int(n) => {
                    let _ = write!(line, " {k}={n}");
                    obj.insert(k.clone(), json!(i64::try_from(*n).unwrap_or(i64::MAX)));
                }
                ble_data::JsonValue::Str(s) => {
                    if k == "uuid" {
                        let _ = write!(line, " {k}=0x{s}");
                    } else if s.len() > 32 {
                        let _ = write!(line, " {k}={}… ({} bytes)", &s[..32], s.len() / 2);
                    } else {
                        let _ = write!(line, " {k}={s}");
                    }
                    obj.insert(k.clone(), json!(s));
                }
            }
        }
        let _ = writeln!(text, " {line}");
        rows.push(Json::Object(obj));
    }
    Ok((text, json!({"kind": "ble-data", "rows": rows})))
}

/// The flash settings in an image header, named; `None` for codes this chip does not use.
pub fn header_flash(
    chip: Chip,
    mode: u8,
    size_freq: u8,
) -> (Option<FlashMode>, Option<FlashFreq>, Option<FlashSize>) {
    let m = [
        FlashMode::Qio,
        FlashMode::Qout,
        FlashMode::Dio,
        FlashMode::Dout,
    ]
    .into_iter()
    .find(|m| m.header_code() == mode);
    let f = [
        FlashFreq::F80m,
        FlashFreq::F40m,
        FlashFreq::F26m,
        FlashFreq::F20m,
    ]
    .into_iter()
    .find(|f| chip.flash_freq_code(*f) == size_freq & 0xF);
    let s = ["1MB", "2MB", "4MB", "8MB", "16MB"]
        .into_iter()
        .filter_map(FlashSize::parse)
        .find(|s| s.header_code() == size_freq >> 4);
    (m, f, s)
}

/// The chip an image header names (extended header chip id).
pub fn chip_of_id(id: u16) -> Option<Chip> {
    match id {
        0 => Some(Chip::Esp32),
        5 => Some(Chip::Esp32c3),
        _ => None,
    }
}

fn firmware_image(bytes: &[u8]) -> Result<Out, String> {
    let l = firmware::layout(bytes).map_err(|e| e.to_string())?;
    let len = l.data_length + if l.hash_appended { 32 } else { 0 };
    let img = firmware::FirmwareImage::decode(&bytes[..len.min(bytes.len())])
        .map_err(|e| e.to_string())?;
    let chip = chip_of_id(img.extended.chip_id);
    let (m, f, s) = header_flash(
        chip.unwrap_or(Chip::Esp32),
        img.flash_mode,
        img.flash_size_freq,
    );
    let mut text = format!(
        "Firmware image: {len} bytes, chip {}, flash {} {} {}\n",
        chip.map_or("unknown", Chip::name),
        m.map_or("?", FlashMode::name),
        f.map_or("?", FlashFreq::name),
        s.map_or_else(|| "?".to_owned(), FlashSize::name)
    );
    text.push_str(&indent(&img.describe(), "  "));
    if bytes.len() > len {
        let _ = writeln!(text, "  {} byte(s) after the image", bytes.len() - len);
    }
    let checksum_ok = img.checksum == img.computed_checksum();
    let digest_ok = img.digest.map(|d| d == img.computed_digest());
    Ok((
        text,
        json!({"kind": "firmware", "length": len, "chip": chip.map(Chip::name),
            "flash_mode": m.map(FlashMode::name), "flash_freq": f.map(FlashFreq::name),
            "flash_size": s.map(FlashSize::name), "entry": img.entry,
            "segments": img.segments.iter().map(|(a, d)| json!({"load": a, "length": d.len()})).collect::<Vec<_>>(),
            "checksum_valid": checksum_ok, "digest_valid": digest_ok}),
    ))
}

fn flasher(bytes: &[u8]) -> Result<Out, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let a = flasher_args::FlasherArgs::parse_json(text).map_err(|e| e.to_string())?;
    let mut out = format!(
        "flasher_args.json: chip {}, flash {}\n",
        a.chip.map_or("?", Chip::name),
        a.flash_options()
    );
    let mut parts = Vec::new();
    for p in &a.parts {
        let _ = writeln!(
            out,
            "  {:#09x} {:<18} {}{}",
            p.offset,
            p.name,
            p.file,
            if p.encrypted { " (encrypted)" } else { "" }
        );
        parts.push(
            json!({"name": p.name, "offset": p.offset, "file": p.file, "encrypted": p.encrypted}),
        );
    }
    Ok((
        out,
        json!({"kind": "flasher-args", "chip": a.chip.map(Chip::name), "flash": a.flash_options(), "parts": parts}),
    ))
}

/// Where a merged factory image keeps its tables and bootloader.
#[derive(Debug, Clone)]
pub struct MergedLayout {
    /// The chip, from the bootloader header.
    pub chip: Chip,
    /// Bootloader offset.
    pub bootloader: u32,
    /// Primary table offset.
    pub table_offset: u32,
    /// The primary table.
    pub primary: PartitionTable,
    /// The at_customize table, when the primary table has an `at_customize` partition.
    pub at_customize: Option<(u32, PartitionTable)>,
}

/// Finds the bootloader, primary table and at_customize table of a merged image.
pub fn merged_layout(bytes: &[u8]) -> Result<MergedLayout, String> {
    let (bootloader, chip) = [0u32, 0x1000]
        .into_iter()
        .find_map(|o| {
            let at = o as usize;
            let b = bytes.get(at..at + firmware::HEADER_LEN)?;
            (b[0] == firmware::MAGIC)
                .then(|| chip_of_id(u16::from_le_bytes([b[12], b[13]])))
                .flatten()
                .filter(|c| c.bootloader_offset() == o)
                .map(|c| (o, c))
        })
        .ok_or("no bootloader image at 0x0 or 0x1000")?;
    let table_offset = std::iter::once(partition_table::DEFAULT_TABLE_OFFSET)
        .chain((0x1000..0x20000).step_by(0x1000))
        .find(|&o| bytes.get(o as usize..o as usize + 2) == Some(&PT_MAGIC[..]))
        .ok_or("no partition table (AA 50) found below 0x20000")?;
    let slice = |o: u32| {
        bytes
            .get(o as usize..(o as usize + partition_table::TABLE_BYTES).min(bytes.len()))
            .unwrap_or(&[])
    };
    let primary = PartitionTable::from_bytes(slice(table_offset))
        .map_err(|e| format!("primary table at {table_offset:#x}: {e}"))?;
    let at_customize = match primary
        .partitions()
        .iter()
        .find(|p| p.name == "at_customize")
    {
        Some(p) if bytes.get(p.offset as usize..p.offset as usize + 2) == Some(&PT_MAGIC[..]) => {
            let t = PartitionTable::from_bytes(slice(p.offset))
                .map_err(|e| format!("at_customize table at {:#x}: {e}", p.offset))?;
            Some((p.offset, t))
        }
        _ => None,
    };
    Ok(MergedLayout {
        chip,
        bootloader,
        table_offset,
        primary,
        at_customize,
    })
}

/// The bytes of a region of a merged image (clamped to the image's end).
pub fn region(bytes: &[u8], offset: u32, size: u32) -> &[u8] {
    let start = (offset as usize).min(bytes.len());
    let end = (offset as usize + size as usize).min(bytes.len());
    &bytes[start..end]
}

fn decode_region(p: &Partition, data: &[u8]) -> Out {
    if data.iter().all(|b| *b == 0xFF) {
        return ("erased (all FF)\n".to_owned(), json!({"kind": "erased"}));
    }
    let by_name = |name: &str| -> Option<Kind> {
        match name {
            "factory_param" => Some(Kind::FactoryParam),
            "ble_data" => Some(Kind::BleData),
            n if pki::ItemKind::for_partition(n).is_some() && p.ty == 0x40 => Some(Kind::Pki),
            _ => None,
        }
    };
    let kind = match (p.ty, p.subtype) {
        (0x00, _) => Some(Kind::Firmware),
        (0x01, 0x02) => Some(Kind::Nvs),
        _ => by_name(&p.name),
    };
    if let Some(k) = kind {
        let data = match (k, firmware::layout(data)) {
            (Kind::Firmware, Ok(x)) => {
                &data[..(x.data_length + if x.hash_appended { 32 } else { 0 }).min(data.len())]
            }
            _ => data,
        };
        if let Ok(r) = inspect(data, Some(k)) {
            return (r.text, r.json);
        }
    }
    let used = data.len() - data.iter().rev().take_while(|b| **b == 0xFF).count();
    (
        format!("raw data, {used} byte(s) before the erased tail\n"),
        json!({"kind": "raw", "length": used}),
    )
}

fn merged(bytes: &[u8]) -> Result<Out, String> {
    let l = merged_layout(bytes)?;
    let mut text = format!(
        "Merged factory image: {} bytes, chip {}\n",
        bytes.len(),
        l.chip
    );
    let boot = &bytes[l.bootloader as usize..(l.table_offset as usize).min(bytes.len())];
    let boot_len = firmware::layout(boot)
        .map(|x| x.data_length + if x.hash_appended { 32 } else { 0 })
        .map_err(|e| format!("bootloader: {e}"))?;
    let (bt, bj) = firmware_image(&boot[..boot_len.min(boot.len())])?;
    let _ = writeln!(text, "\n[{:#x}] bootloader", l.bootloader);
    text.push_str(&indent(&bt, "  "));
    let (pt, pj) = table(region(bytes, l.table_offset, TABLE_LEN))?;
    let _ = writeln!(text, "\n[{:#x}] primary partition table", l.table_offset);
    text.push_str(&indent(&pt, "  "));
    let mut regions = Vec::new();
    let mut atc_json = Json::Null;
    let mut all: Vec<(&Partition, bool)> =
        l.primary.partitions().iter().map(|p| (p, true)).collect();
    if let Some((off, t)) = &l.at_customize {
        let (at, aj) = table(region(bytes, *off, TABLE_LEN))?;
        let _ = writeln!(text, "\n[{off:#x}] at_customize table");
        text.push_str(&indent(&at, "  "));
        atc_json = aj;
        all.extend(t.partitions().iter().map(|p| (p, false)));
    }
    all.sort_by_key(|(p, _)| p.offset);
    for (p, primary) in all {
        if p.name == "at_customize" && primary && l.at_customize.is_some() {
            continue;
        }
        let (t, j) = decode_region(p, region(bytes, p.offset, p.size));
        let _ = writeln!(
            text,
            "\n[{:#x}] {} ({}, {})",
            p.offset,
            p.name,
            if primary { "primary" } else { "at_customize" },
            size_text(p.size)
        );
        text.push_str(&indent(&t, "  "));
        regions.push(json!({"name": p.name, "offset": p.offset, "size": p.size, "content": j}));
    }
    Ok((
        text,
        json!({"kind": "merged", "length": bytes.len(), "chip": l.chip.name(), "bootloader": bj,
            "partition_table": pj, "at_customize": atc_json, "regions": regions}),
    ))
}
