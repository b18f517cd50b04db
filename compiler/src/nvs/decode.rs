//! The decoder: reads an NVS image back into pages and typed entries, and writes the
//! generator CSV (`dump`) that regenerates the same bytes.
//!
//! The decoder never panics on arbitrary input (fuzzed by `nvs_decode`); anything that does
//! not look like generator or device output is reported in [`DecodedImage::issues`] and
//! skipped.

use std::collections::HashMap;
use std::fmt::Write as _;

use base64::Engine as _;

use super::crc::{crc32, entry_crc};
use super::entry::{self, ItemType};
use super::page::{self, PAGE_SIZE, PageState, SLOT_SIZE, SLOTS_PER_PAGE, SlotState};
use super::{TrailingPages, Value, Version};

/// One page of a decoded image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageInfo {
    /// Position in the image (page number).
    pub index: usize,
    /// Header state word.
    pub state: PageState,
    /// Sequence number from the header (`None` for pages without a header).
    pub seq: Option<u32>,
    /// Format version from header byte 8.
    pub version: Option<Version>,
    /// Whether the header CRC matches.
    pub header_crc_ok: bool,
    /// Number of slots marked written.
    pub written_slots: usize,
}

/// What an item holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemValue {
    /// A namespace definition (namespace index 0, type u8) giving this name that index.
    Namespace(u8),
    /// A value; multipage blobs are already reassembled.
    Value(Value),
}

/// One decoded item, in image order (a multipage blob at the place of its first chunk).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    /// Page of the item's (first) header.
    pub page: usize,
    /// Slot of the item's (first) header.
    pub slot: usize,
    /// Namespace index byte.
    pub namespace_index: u8,
    /// Name of that namespace, if defined in the image.
    pub namespace: Option<String>,
    /// The key (bytes up to the first NUL; lossy UTF-8).
    pub key: String,
    /// The content.
    pub value: ItemValue,
}

/// A decoded image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DecodedImage {
    /// Image length in bytes.
    pub size: usize,
    /// Format version of the first page with a header.
    pub version: Option<Version>,
    /// Trailing-page form, inferred (legacy when a FULL page without entries exists).
    pub trailing: TrailingPages,
    /// Every page.
    pub pages: Vec<PageInfo>,
    /// Every item, in order.
    pub items: Vec<Item>,
    /// Problems found (bad CRCs, orphan chunks, …). Empty for generator output.
    pub issues: Vec<String>,
}

/// Decodes an image. Lengths that are not a multiple of 4096 are decoded up to the last
/// whole page (with an issue).
pub fn decode(image: &[u8]) -> DecodedImage {
    let mut issues = Vec::new();
    if image.len() % PAGE_SIZE != 0 {
        issues.push(format!(
            "image length {} is not a multiple of 4096; the tail is ignored",
            image.len()
        ));
    }
    let mut pages = Vec::new();
    let mut order: Vec<(u32, usize)> = Vec::new();
    for (index, p) in image.chunks_exact(PAGE_SIZE).enumerate() {
        let state = page::state(p);
        let has_header = state != PageState::Uninitialized || p[4..32].iter().any(|&b| b != 0xFF);
        let seq = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
        let header_crc_ok = crc32(&p[4..28]) == u32::from_le_bytes([p[28], p[29], p[30], p[31]]);
        let written_slots = (0..SLOTS_PER_PAGE)
            .filter(|&s| page::slot_state(p, s) == SlotState::Written)
            .count();
        if has_header {
            if !header_crc_ok {
                issues.push(format!("page {index}: header CRC mismatch"));
            }
            order.push((seq, index));
        }
        pages.push(PageInfo {
            index,
            state,
            seq: has_header.then_some(seq),
            version: if has_header {
                Version::from_header_byte(p[8])
            } else {
                None
            },
            header_crc_ok,
            written_slots,
        });
    }
    order.sort_unstable();
    let version = order.first().and_then(|&(_, i)| pages[i].version);
    let trailing = if pages
        .iter()
        .any(|p| p.state == PageState::Full && p.written_slots == 0)
    {
        TrailingPages::Legacy
    } else {
        TrailingPages::Erased
    };

    let mut items: Vec<Option<Item>> = Vec::new();
    let mut namespaces: HashMap<u8, String> = HashMap::new();
    let mut chunks: HashMap<(u8, Vec<u8>, u8), (Vec<u8>, Option<usize>)> = HashMap::new();
    let mut ns_count: u8 = 0;
    for &(_, pi) in &order {
        let p = &image[pi * PAGE_SIZE..(pi + 1) * PAGE_SIZE];
        let mut slot = 0;
        while slot < SLOTS_PER_PAGE {
            if page::slot_state(p, slot) != SlotState::Written {
                slot += 1;
                continue;
            }
            let off = page::slot_offset(slot);
            let e: &[u8; 32] = p[off..off + SLOT_SIZE].try_into().expect("32 bytes");
            let span = usize::from(e[2]);
            if span == 0 || slot + span > SLOTS_PER_PAGE {
                issues.push(format!("page {pi} slot {slot}: invalid span {span}"));
                slot += 1;
                continue;
            }
            if entry_crc(e) != u32::from_le_bytes([e[4], e[5], e[6], e[7]]) {
                issues.push(format!(
                    "page {pi} slot {slot}: entry CRC mismatch; skipped"
                ));
                slot += span;
                continue;
            }
            let ns = e[0];
            let key_bytes = entry::key_bytes(e).to_vec();
            let key = String::from_utf8_lossy(&key_bytes).into_owned();
            let Some(ty) = ItemType::from_code(e[1]) else {
                issues.push(format!(
                    "page {pi} slot {slot}: unknown type {:#04x}; skipped",
                    e[1]
                ));
                slot += span;
                continue;
            };
            let payload = || -> Option<Vec<u8>> {
                let size = usize::from(u16::from_le_bytes([e[24], e[25]]));
                if size > (span - 1) * SLOT_SIZE {
                    return None;
                }
                let data = p[off + SLOT_SIZE..off + SLOT_SIZE + size].to_vec();
                (crc32(&data) == u32::from_le_bytes([e[28], e[29], e[30], e[31]])).then_some(data)
            };
            let item = |value| Item {
                page: pi,
                slot,
                namespace_index: ns,
                namespace: None,
                key: key.clone(),
                value,
            };
            let prim = |le: &[u8]| -> Value {
                let mut b = [0u8; 8];
                b[..le.len()].copy_from_slice(le);
                match ty {
                    ItemType::U8 => Value::U8(b[0]),
                    ItemType::I8 => Value::I8(i8::from_le_bytes([b[0]])),
                    ItemType::U16 => Value::U16(u16::from_le_bytes([b[0], b[1]])),
                    ItemType::I16 => Value::I16(i16::from_le_bytes([b[0], b[1]])),
                    ItemType::U32 => Value::U32(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    ItemType::I32 => Value::I32(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    ItemType::U64 => Value::U64(u64::from_le_bytes(b)),
                    _ => Value::I64(i64::from_le_bytes(b)),
                }
            };
            match ty {
                _ if ty.primitive_width().is_some() => {
                    let w = ty.primitive_width().expect("primitive");
                    if ns == 0
                        && ty == ItemType::U8
                        && e[24] == ns_count.wrapping_add(1)
                        && e[24] != 0
                    {
                        ns_count = e[24];
                        namespaces.insert(e[24], key.clone());
                        items.push(Some(item(ItemValue::Namespace(e[24]))));
                    } else {
                        let v = prim(&e[24..24 + w]);
                        items.push(Some(item(ItemValue::Value(v))));
                    }
                }
                ItemType::Str | ItemType::Blob => {
                    if let Some(data) = payload() {
                        let v = if ty == ItemType::Blob {
                            Value::Blob(data)
                        } else {
                            string_value(data)
                        };
                        items.push(Some(item(ItemValue::Value(v))));
                    } else {
                        issues.push(format!(
                            "page {pi} slot {slot}: `{key}`: bad size or data CRC; skipped"
                        ));
                    }
                }
                ItemType::BlobData => {
                    if let Some(data) = payload() {
                        let placeholder = (e[3] == 0).then(|| {
                            items.push(None);
                            items.len() - 1
                        });
                        if let Some(old) =
                            chunks.insert((ns, key_bytes.clone(), e[3]), (data, placeholder))
                        {
                            issues.push(format!(
                                "page {pi} slot {slot}: `{key}` chunk {} appears twice",
                                e[3]
                            ));
                            let _ = old;
                        }
                    } else {
                        issues.push(format!("page {pi} slot {slot}: `{key}` chunk {}: bad size or data CRC; skipped", e[3]));
                    }
                }
                _ => {
                    // blob_idx: reassemble its chunks.
                    let total = u32::from_le_bytes([e[24], e[25], e[26], e[27]]) as usize;
                    let (count, start) = (e[28], e[29]);
                    let mut data = Vec::with_capacity(total.min(1 << 20));
                    let mut place = None;
                    let mut complete = true;
                    for c in 0..count {
                        match chunks.remove(&(ns, key_bytes.clone(), start.wrapping_add(c))) {
                            Some((d, ph)) => {
                                data.extend_from_slice(&d);
                                if c == 0 {
                                    place = ph;
                                }
                            }
                            None => complete = false,
                        }
                    }
                    if !complete || data.len() != total {
                        issues.push(format!("page {pi} slot {slot}: blob `{key}` is incomplete ({} of {total} bytes)", data.len()));
                    } else {
                        let it = item(ItemValue::Value(Value::Blob(data)));
                        match place {
                            Some(ph) => items[ph] = Some(it),
                            None => items.push(Some(it)),
                        }
                    }
                }
            }
            slot += span;
        }
    }
    if !chunks.is_empty() {
        issues.push(format!(
            "{} blob chunk(s) without a blob index",
            chunks.len()
        ));
    }
    let mut items: Vec<Item> = items.into_iter().flatten().collect();
    for it in &mut items {
        if it.namespace.is_none() {
            it.namespace = namespaces.get(&it.namespace_index).cloned();
        }
    }
    DecodedImage {
        size: image.len(),
        version,
        trailing,
        pages,
        items,
        issues,
    }
}

fn string_value(data: Vec<u8>) -> Value {
    if let Some((&0, text)) = data.split_last() {
        if let Ok(s) = std::str::from_utf8(text) {
            return Value::Str(s.to_owned());
        }
    }
    Value::RawStr(data)
}

/// Why a value cannot be written as an inline CSV field the generator reads back unchanged.
fn unrepresentable(text: &str) -> Option<&'static str> {
    if text.contains('\r') {
        Some("contains a carriage return (the generator reads CSV with universal newlines)")
    } else if text.contains("\n#") {
        Some("has a line starting with `#` (the generator drops such lines)")
    } else if text.chars().count() > super::csv::FIELD_SIZE_LIMIT {
        Some("is longer than Python's CSV field limit (131072)")
    } else {
        None
    }
}

fn csv_row(out: &mut String, key: &str, kind: &str, encoding: &str, value: &str) {
    let q = super::csv::quote_field;
    let _ = writeln!(out, "{},{kind},{encoding},{}", q(key), q(value));
}

impl DecodedImage {
    /// The generator CSV for this image, and warnings for anything that will not regenerate
    /// identically. Blobs are inline `base64` rows, so no side files are needed. Rows the
    /// generator adds by itself (the Wi-Fi extras after `sta.ssid`/`sta.pswd`, `ap.pmk_info`)
    /// are left out.
    pub fn to_csv(&self, name: &str) -> (String, Vec<String>) {
        let mut out = String::new();
        let mut warnings = Vec::new();
        let version = self.version.map_or(2, Version::number);
        let trailing = match self.trailing {
            TrailingPages::Erased => "",
            TrailingPages::Legacy => " --legacy-pages",
        };
        let _ = writeln!(
            out,
            "# espfleet nvs dump of {name}: regenerate with `espfleet nvs generate THIS.csv OUT.bin {:#x} --version {version}{trailing}`",
            self.size
        );
        out.push_str("key,type,encoding,value\n");
        let mut sta_done = false;
        let mut ap: [Option<String>; 3] = [None, None, None];
        let mut skip = 0usize;
        for (i, it) in self.items.iter().enumerate() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if !it.key.is_ascii() || it.key.contains(['\r', '\n']) {
                warnings.push(format!(
                    "key {:?} cannot be written to the generator's CSV; left out",
                    it.key
                ));
                continue;
            }
            let (kind, encoding, value) = match &it.value {
                ItemValue::Namespace(_) => ("namespace", String::new(), String::new()),
                ItemValue::Value(v) => {
                    let (enc, text) = match v {
                        Value::U8(x) => ("u8", x.to_string()),
                        Value::I8(x) => ("i8", x.to_string()),
                        Value::U16(x) => ("u16", x.to_string()),
                        Value::I16(x) => ("i16", x.to_string()),
                        Value::U32(x) => ("u32", x.to_string()),
                        Value::I32(x) => ("i32", x.to_string()),
                        Value::U64(x) => ("u64", x.to_string()),
                        Value::I64(x) => ("i64", x.to_string()),
                        Value::Str(s) => ("string", s.clone()),
                        Value::RawStr(b) => match std::str::from_utf8(b) {
                            Ok(s) => ("STRING", s.to_owned()),
                            Err(_) => {
                                warnings.push(format!("string `{}` is not UTF-8 and cannot be written to the generator's CSV; left out", it.key));
                                continue;
                            }
                        },
                        Value::Blob(b) => (
                            "base64",
                            base64::engine::general_purpose::STANDARD.encode(b),
                        ),
                    };
                    ("data", enc.to_owned(), text)
                }
            };
            if let Some(why) = unrepresentable(&value) {
                warnings.push(format!("value of `{}` {why}; left out", it.key));
                continue;
            }
            // ap.pmk_info generated for the next row: skip it.
            if it.key == "ap.pmk_info" {
                if let Some(next) = self.items.get(i + 1) {
                    if let Some(v) = ap_after(&ap, next) {
                        if let (Some(s), Some(p), Some(_)) = (&v[0], &v[1], &v[2]) {
                            if it.value == ItemValue::Value(Value::Blob(pmk_info(p, s))) {
                                continue;
                            }
                        }
                    }
                }
            }
            if let Some(v) = ap_after(&ap, it) {
                ap = v;
            }
            csv_row(&mut out, &it.key, kind, &encoding, &value);
            if matches!(it.key.as_str(), "sta.ssid" | "sta.pswd") && !sta_done {
                sta_done = true;
                let expected = [
                    ("sta.apinfo", vec![0xFF; 140]),
                    ("sta.pmk", vec![0; 32]),
                    ("sta.apsw", vec![0; 2]),
                ];
                let follows = expected.iter().enumerate().all(|(j, (k, b))| {
                    self.items.get(i + 1 + j).is_some_and(|n| {
                        n.key == *k && n.value == ItemValue::Value(Value::Blob(b.clone()))
                    })
                });
                if follows {
                    skip = 3;
                } else {
                    warnings.push(format!("`{}` makes the generator add sta.apinfo/sta.pmk/sta.apsw, which this image lacks", it.key));
                }
            }
        }
        (out, warnings)
    }

    /// A JSON document with pages and entries (blobs as base64).
    pub fn to_json(&self) -> serde_json::Value {
        let entries: Vec<serde_json::Value> = self
            .items
            .iter()
            .map(|it| {
                let (ty, value) = match &it.value {
                    ItemValue::Namespace(i) => ("namespace", serde_json::json!(i)),
                    ItemValue::Value(v) => match v {
                        Value::U8(x) => ("u8", serde_json::json!(x)),
                        Value::I8(x) => ("i8", serde_json::json!(x)),
                        Value::U16(x) => ("u16", serde_json::json!(x)),
                        Value::I16(x) => ("i16", serde_json::json!(x)),
                        Value::U32(x) => ("u32", serde_json::json!(x)),
                        Value::I32(x) => ("i32", serde_json::json!(x)),
                        Value::U64(x) => ("u64", serde_json::json!(x)),
                        Value::I64(x) => ("i64", serde_json::json!(x)),
                        Value::Str(s) => ("string", serde_json::json!(s)),
                        Value::RawStr(b) => (
                            "raw_string_base64",
                            serde_json::json!(base64::engine::general_purpose::STANDARD.encode(b)),
                        ),
                        Value::Blob(b) => (
                            "blob_base64",
                            serde_json::json!(base64::engine::general_purpose::STANDARD.encode(b)),
                        ),
                    },
                };
                serde_json::json!({
                    "page": it.page, "slot": it.slot, "namespace_index": it.namespace_index,
                    "namespace": it.namespace, "key": it.key, "type": ty, "value": value,
                })
            })
            .collect();
        serde_json::json!({
            "size": self.size,
            "version": self.version.map(Version::number),
            "trailing_pages": self.trailing,
            "pages": self.pages,
            "entries": entries,
            "issues": self.issues,
        })
    }
}

/// The generator's ap.* state after the row `it` (None if `it` is not an ap.* row).
fn ap_after(ap: &[Option<String>; 3], it: &Item) -> Option<[Option<String>; 3]> {
    let idx = match it.key.as_str() {
        "ap.ssid" => 0,
        "ap.passwd" => 1,
        "ap.authmode" => 2,
        _ => return None,
    };
    let text = match &it.value {
        ItemValue::Namespace(_) => String::new(),
        ItemValue::Value(v) => match v {
            Value::U8(x) => x.to_string(),
            Value::I8(x) => x.to_string(),
            Value::U16(x) => x.to_string(),
            Value::I16(x) => x.to_string(),
            Value::U32(x) => x.to_string(),
            Value::I32(x) => x.to_string(),
            Value::U64(x) => x.to_string(),
            Value::I64(x) => x.to_string(),
            Value::Str(s) => s.clone(),
            Value::RawStr(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Blob(b) => base64::engine::general_purpose::STANDARD.encode(b),
        },
    };
    let mut next = ap.clone();
    if idx == 2 && text == "0" {
        return Some(next);
    }
    next[idx] = (!text.is_empty()).then_some(text);
    Some(next)
}

fn pmk_info(password: &str, ssid: &str) -> Vec<u8> {
    let mut pmk = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password.as_bytes(), ssid.as_bytes(), 4096, &mut pmk);
    let mut out = vec![0u8; 100];
    out.extend_from_slice(&pmk);
    out
}
