//! Automatic offsets, negative sizes, verification and the final range/size checks: the part
//! of gen_esp32part.py that runs after a CSV line has been split into fields.
//!
//! Values are carried as `i128` until the end because the tool computes with unbounded Python
//! integers: a negative size, or an offset beyond 4 GiB, is legal until the last step.

use std::collections::HashMap;

use super::error::{BootloaderSlot, Field, PartitionError, PartitionWarning, RowRef};
use super::keywords::{Keywords, TYPE_APP, TYPE_BOOTLOADER, TYPE_DATA, TYPE_PARTITION_TABLE};
use super::{
    ENTRY_BYTES, Flags, Partition, PartitionTable, Row, SecureBoot, SizeSpec, SubtypeSpec,
    TABLE_BYTES, TableOptions, TypeSpec,
};

/// The sector the table occupies.
const TABLE_SECTOR: i128 = 0x1000;
/// Smallest read/write NVS partition.
const NVS_RW_MIN: i128 = 0x3000;
/// Size of otadata.
const OTADATA_SIZE: i128 = 0x2000;
/// Values beyond this are refused at parse time (the tool would crash on them later).
pub(crate) const MAX_MAGNITUDE: i128 = 1 << 64;

/// A row after its fields were read, before placement. Negative `size` means "up to -size".
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) name: String,
    pub(crate) ty: i128,
    pub(crate) subtype: i128,
    pub(crate) offset: Option<i128>,
    pub(crate) size: i128,
    pub(crate) flags: Flags,
    pub(crate) at: RowRef,
}

/// A placed row, still with unbounded values.
#[derive(Debug, Clone)]
struct Placed {
    name: String,
    ty: i128,
    subtype: i128,
    offset: i128,
    size: i128,
    flags: Flags,
    at: RowRef,
}

/// Checks the options themselves (the tool does this before reading its input).
pub(crate) fn check_options(opts: &TableOptions) -> Result<(), PartitionError> {
    match opts.primary_bootloader_offset {
        Some(primary) if primary >= opts.table_offset => {
            Err(PartitionError::BootloaderAboveTable {
                primary,
                table: opts.table_offset,
            })
        }
        _ => Ok(()),
    }
}

fn is_fixed_primary(ty: i128, subtype: i128, kw: &Keywords) -> bool {
    (ty == i128::from(TYPE_BOOTLOADER) && Some(subtype) == kw.builtin(TYPE_BOOTLOADER, "primary"))
        || (ty == i128::from(TYPE_PARTITION_TABLE)
            && Some(subtype) == kw.builtin(TYPE_PARTITION_TABLE, "primary"))
}

/// The offset a fixed row gets from the options, or `None` when its own offset applies.
pub(crate) fn dictated_offset(
    ty: i128,
    subtype: i128,
    opts: &TableOptions,
    at: RowRef,
) -> Result<Option<i128>, PartitionError> {
    let kw = &opts.keywords;
    if ty == i128::from(TYPE_BOOTLOADER) {
        if Some(subtype) == kw.builtin(TYPE_BOOTLOADER, "primary") {
            let off =
                opts.primary_bootloader_offset
                    .ok_or(PartitionError::BootloaderOffsetMissing {
                        at,
                        slot: BootloaderSlot::Primary,
                    })?;
            return Ok(Some(i128::from(off)));
        }
        if Some(subtype) == kw.builtin(TYPE_BOOTLOADER, "recovery") {
            let off =
                opts.recovery_bootloader_offset
                    .ok_or(PartitionError::BootloaderOffsetMissing {
                        at,
                        slot: BootloaderSlot::Recovery,
                    })?;
            return Ok(Some(i128::from(off)));
        }
    }
    if ty == i128::from(TYPE_PARTITION_TABLE)
        && Some(subtype) == kw.builtin(TYPE_PARTITION_TABLE, "primary")
    {
        return Ok(Some(i128::from(opts.table_offset)));
    }
    Ok(None)
}

/// The size a fixed row gets from the options, or `None` when its own size applies.
pub(crate) fn dictated_size(
    ty: i128,
    opts: &TableOptions,
    at: RowRef,
) -> Result<Option<i128>, PartitionError> {
    if ty == i128::from(TYPE_BOOTLOADER) {
        let primary =
            opts.primary_bootloader_offset
                .ok_or(PartitionError::BootloaderOffsetMissing {
                    at,
                    slot: BootloaderSlot::Primary,
                })?;
        return Ok(Some(i128::from(opts.table_offset) - i128::from(primary)));
    }
    if ty == i128::from(TYPE_PARTITION_TABLE) {
        return Ok(Some(TABLE_SECTOR));
    }
    Ok(None)
}

/// Places and verifies partition rows that did not come from CSV text.
///
/// This is gen_esp32part.py's pipeline from the point where a CSV line has been split into
/// fields: keywords are resolved with [`TableOptions::keywords`], empty offsets are placed after
/// the previous row (aligned to 0x10000 for apps, 0x1000 otherwise, starting at
/// `table_offset + 0x1000`), [`SizeSpec::UpTo`] becomes `end − offset`, and the table is verified
/// and size-checked. Row `i` of the input is partition `i` of the result, and every error names
/// the index of the row it is about ([`PartitionError::row`]).
pub fn layout(rows: &[Row], opts: &TableOptions) -> Result<PartitionTable, Vec<PartitionError>> {
    check_options(opts).map_err(|e| vec![e])?;
    let mut parsed = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match parse_row(row, opts, RowRef::row(i)) {
            Ok(p) => parsed.push(p),
            Err(e) => errors.push(e),
        }
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

fn parse_row(row: &Row, opts: &TableOptions, at: RowRef) -> Result<Parsed, PartitionError> {
    let kw = &opts.keywords;
    let ty = match &row.ty {
        TypeSpec::Number(n) => *n,
        TypeSpec::Keyword(k) => kw
            .type_value(k)
            .ok_or_else(|| PartitionError::TypeUnknown {
                at,
                value: k.clone(),
                known: known(kw.types()),
            })?,
    };
    let subtype = match &row.subtype {
        SubtypeSpec::Number(n) => i128::from(*n),
        SubtypeSpec::Default => default_subtype(i128::from(ty), kw, at)?,
        SubtypeSpec::Keyword(k) => kw.subtype_value(ty, k).map(i128::from).ok_or_else(|| {
            PartitionError::SubtypeUnknown {
                at,
                value: k.clone(),
                known: known(kw.subtypes_of(i128::from(ty))),
            }
        })?,
    };
    let ty = i128::from(ty);
    let offset = match dictated_offset(ty, subtype, opts, at)? {
        Some(o) => Some(o),
        None => row.offset.map(i128::from),
    };
    let size = match dictated_size(ty, opts, at)? {
        Some(s) => s,
        None => match row.size {
            None => return Err(PartitionError::SizeMissing { at }),
            Some(SizeSpec::Bytes(n)) => i128::from(n),
            Some(SizeSpec::UpTo(end)) => -i128::from(end),
        },
    };
    Ok(Parsed {
        name: row.name.clone(),
        ty,
        subtype,
        offset,
        size,
        flags: row.flags,
        at,
    })
}

/// The subtype of a row whose subtype was left out.
pub(crate) fn default_subtype(ty: i128, kw: &Keywords, at: RowRef) -> Result<i128, PartitionError> {
    if ty == i128::from(TYPE_APP) {
        return Err(PartitionError::SubtypeMissing { at });
    }
    Ok(kw.builtin(TYPE_DATA, "undefined").unwrap_or(0x06))
}

/// Placement, verification, flash-size, range and table-size checks, in the tool's order.
pub(crate) fn finish(
    parsed: Vec<Parsed>,
    opts: &TableOptions,
) -> Result<PartitionTable, Vec<PartitionError>> {
    let placed = place(parsed, opts)?;
    let mut errors = Vec::new();
    if opts.verify {
        errors.extend(verify(&placed, opts));
    }
    errors.extend(check_flash_size(&placed, opts.flash_size));
    let rows: Vec<RowRef> = placed.iter().map(|p| p.at).collect();
    let mut partitions = Vec::with_capacity(placed.len());
    for p in placed {
        match to_partition(p) {
            Ok(p) => partitions.push(p),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        if let Err(PartitionError::TableTooLarge { at, bytes }) =
            check_capacity(partitions.len(), opts.md5)
        {
            errors.push(PartitionError::TableTooLarge {
                at: rows.get(at.row).copied().unwrap_or(at),
                bytes,
            });
        }
    }
    if errors.is_empty() {
        Ok(PartitionTable { partitions })
    } else {
        Err(errors)
    }
}

/// Automatic offsets and negative sizes (the tool's "fix up" loop, with its ordering check).
fn place(parsed: Vec<Parsed>, opts: &TableOptions) -> Result<Vec<Placed>, Vec<PartitionError>> {
    let kw = &opts.keywords;
    let table_offset = i128::from(opts.table_offset);
    let mut last_end = table_offset + TABLE_SECTOR;
    let mut placed: Vec<Placed> = Vec::with_capacity(parsed.len());
    let mut errors = Vec::new();
    for (i, e) in parsed.into_iter().enumerate() {
        if is_fixed_primary(e.ty, e.subtype, kw) {
            placed.push(Placed {
                offset: e.offset.unwrap_or(0),
                name: e.name,
                ty: e.ty,
                subtype: e.subtype,
                size: e.size,
                flags: e.flags,
                at: e.at,
            });
            continue;
        }
        let offset = if let Some(offset) = e.offset {
            if offset < last_end {
                // The tool compares with `==` against the first row (name, type, subtype,
                // offset, size), so a copy of the first row gets the first-row message.
                let like_first = placed.first().is_none_or(|f| {
                    i == 0
                        || (f.name == e.name
                            && f.ty == e.ty
                            && f.subtype == e.subtype
                            && f.offset == offset
                            && f.size == e.size)
                });
                errors.push(if like_first {
                    PartitionError::OffsetInTableSector {
                        at: e.at,
                        offset,
                        table_offset: opts.table_offset,
                        next_free: last_end,
                    }
                } else {
                    PartitionError::OffsetOutOfOrder {
                        at: e.at,
                        offset,
                        previous_end: last_end,
                    }
                });
            }
            offset
        } else {
            let align = if e.ty == i128::from(TYPE_APP) {
                0x10000
            } else {
                0x1000
            };
            let rem = last_end.rem_euclid(align);
            if rem != 0 {
                last_end += align - rem;
            }
            last_end
        };
        let size = if e.size < 0 { -e.size - offset } else { e.size };
        last_end = offset + size;
        placed.push(Placed {
            name: e.name,
            ty: e.ty,
            subtype: e.subtype,
            offset,
            size,
            flags: e.flags,
            at: e.at,
        });
    }
    if errors.is_empty() {
        Ok(placed)
    } else {
        Err(errors)
    }
}

/// The tool's `verify()`: per-partition checks (first failure of each partition), then names,
/// offsets/overlaps and otadata.
fn verify(parts: &[Placed], opts: &TableOptions) -> Vec<PartitionError> {
    let mut errors: Vec<PartitionError> = parts
        .iter()
        .filter_map(|p| verify_partition(p, opts))
        .collect();
    errors.extend(check_names(parts));
    errors.extend(check_overlaps(parts, opts));
    errors.extend(check_otadata(parts, &opts.keywords));
    errors
}

/// The first per-partition rule a partition breaks: alignment, app size, read-only rules.
fn verify_partition(p: &Placed, opts: &TableOptions) -> Option<PartitionError> {
    let kw = &opts.keywords;
    let data = i128::from(TYPE_DATA);
    let is_app = p.ty == i128::from(TYPE_APP);
    let align: i128 = if is_app { 0x10000 } else { 0x1000 };
    let size_align: i128 = if opts.secure == Some(SecureBoot::V1) {
        0x10000
    } else {
        0x1000
    };
    let is_data = |keyword: &str| p.ty == data && Some(p.subtype) == kw.builtin(TYPE_DATA, keyword);
    if p.offset.rem_euclid(align) != 0 {
        Some(PartitionError::OffsetMisaligned {
            at: p.at,
            name: p.name.clone(),
            offset: p.offset,
            align: u32::try_from(align).unwrap_or(u32::MAX),
        })
    } else if is_app && p.size.rem_euclid(size_align) != 0 {
        Some(PartitionError::SizeMisaligned {
            at: p.at,
            name: p.name.clone(),
            size: p.size,
            align: u32::try_from(size_align).unwrap_or(u32::MAX),
        })
    } else if (is_data("ota") || is_data("coredump")) && p.flags.readonly {
        Some(PartitionError::ReadonlyNotAllowed {
            at: p.at,
            name: p.name.clone(),
            ty: p.ty,
            subtype: p.subtype,
        })
    } else if is_data("nvs") && p.size < NVS_RW_MIN && !p.flags.readonly {
        Some(PartitionError::NvsTooSmall {
            at: p.at,
            name: p.name.clone(),
            ty: p.ty,
            subtype: p.subtype,
            size: p.size,
        })
    } else {
        None
    }
}

/// Full (untruncated) names must be unique.
fn check_names(parts: &[Placed]) -> Vec<PartitionError> {
    let mut errors = Vec::new();
    let mut first_by_name: HashMap<&str, RowRef> = HashMap::new();
    for p in parts {
        match first_by_name.get(p.name.as_str()) {
            Some(first) => errors.push(PartitionError::NameDuplicate {
                at: p.at,
                name: p.name.clone(),
                first: *first,
            }),
            None => {
                first_by_name.insert(&p.name, p.at);
            }
        }
    }
    errors
}

/// In offset order: nothing below the table's sector (except the fixed primary rows), no overlaps.
fn check_overlaps(parts: &[Placed], opts: &TableOptions) -> Vec<PartitionError> {
    let mut errors = Vec::new();
    let limit = i128::from(opts.table_offset) + TABLE_SECTOR;
    let mut sorted: Vec<&Placed> = parts.iter().collect();
    sorted.sort_by_key(|p| p.offset); // stable, like Python's sorted()
    let mut last: Option<&Placed> = None;
    for p in sorted {
        if p.offset < limit && !is_fixed_primary(p.ty, p.subtype, &opts.keywords) {
            errors.push(PartitionError::OffsetBelowTable {
                at: p.at,
                offset: p.offset,
                limit,
            });
        } else if let Some(l) = last {
            if p.offset < l.offset + l.size {
                errors.push(PartitionError::Overlap {
                    at: p.at,
                    offset: p.offset,
                    other: l.at,
                    other_start: l.offset,
                    other_last: l.offset + l.size - 1,
                });
            }
        }
        last = Some(p);
    }
    errors
}

/// At most one `data/ota` and one `data/tee_ota`, each 0x2000 bytes.
fn check_otadata(parts: &[Placed], kw: &Keywords) -> Vec<PartitionError> {
    let mut errors = Vec::new();
    for (keyword, tee) in [("ota", false), ("tee_ota", true)] {
        let Some(subtype) = kw.builtin(TYPE_DATA, keyword) else {
            continue;
        };
        let otadata: Vec<&Placed> = parts
            .iter()
            .filter(|p| p.ty == i128::from(TYPE_DATA) && p.subtype == subtype)
            .collect();
        match otadata.as_slice() {
            [] => {}
            [one] => {
                if one.size != OTADATA_SIZE {
                    errors.push(PartitionError::OtadataSize { at: one.at, tee });
                }
            }
            [_, second, ..] => errors.push(PartitionError::OtadataDuplicate { at: second.at, tee }),
        }
    }
    errors
}

/// `--flash-size`: the partition with the highest offset (the first of equals) must end within it.
fn check_flash_size(parts: &[Placed], flash_size: Option<u64>) -> Option<PartitionError> {
    let flash_size = flash_size?;
    let mut highest: Option<&Placed> = None;
    for p in parts {
        if highest.is_none_or(|h| p.offset > h.offset) {
            highest = Some(p);
        }
    }
    let h = highest?;
    let end = h.offset + h.size;
    (i128::from(flash_size) < end).then_some(PartitionError::FlashTooSmall {
        at: h.at,
        end,
        flash_size,
    })
}

fn to_partition(p: Placed) -> Result<Partition, PartitionError> {
    let range = |field: Field, value: i128| PartitionError::ValueOutOfRange {
        at: p.at,
        field,
        value,
    };
    Ok(Partition {
        ty: u8::try_from(p.ty).map_err(|_| range(Field::Type, p.ty))?,
        subtype: u8::try_from(p.subtype).map_err(|_| range(Field::Subtype, p.subtype))?,
        offset: u32::try_from(p.offset).map_err(|_| range(Field::Offset, p.offset))?,
        size: u32::try_from(p.size).map_err(|_| range(Field::Size, p.size))?,
        flags: p.flags,
        name: p.name,
    })
}

/// The table must stay below 0xC00 bytes so that at least one `FF` record ends it.
pub(crate) fn check_capacity(entries: usize, md5: bool) -> Result<(), PartitionError> {
    let bytes = entries * ENTRY_BYTES + if md5 { ENTRY_BYTES } else { 0 };
    if bytes < TABLE_BYTES {
        return Ok(());
    }
    let fit = (TABLE_BYTES - 1) / ENTRY_BYTES - usize::from(md5);
    Err(PartitionError::TableTooLarge {
        at: RowRef::row(fit),
        bytes,
    })
}

impl PartitionTable {
    /// Runs the checks gen_esp32part.py applies to a table read from a binary: verification
    /// (unless [`TableOptions::verify`] is off) and `--flash-size`. Tables from [`layout`] and
    /// [`parse_csv`](super::parse_csv) have passed them already.
    pub fn validate(&self, opts: &TableOptions) -> Result<(), Vec<PartitionError>> {
        let placed: Vec<Placed> = self
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| Placed {
                name: p.name.clone(),
                ty: i128::from(p.ty),
                subtype: i128::from(p.subtype),
                offset: i128::from(p.offset),
                size: i128::from(p.size),
                flags: p.flags,
                at: RowRef::row(i),
            })
            .collect();
        let mut errors = if opts.verify {
            verify(&placed, opts)
        } else {
            Vec::new()
        };
        errors.extend(check_flash_size(&placed, opts.flash_size));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// What gen_esp32part.py warns about while verifying (names that look like another
    /// type/subtype), plus names longer than the 16-byte field, which it cuts silently.
    pub fn warnings(&self, keywords: &Keywords) -> Vec<PartitionWarning> {
        let mut out = Vec::new();
        for (i, p) in self.partitions.iter().enumerate() {
            let at = RowRef::row(i);
            if let Some(t) = keywords
                .types()
                .iter()
                .find(|(k, _)| *k == p.name)
                .map(|(_, v)| *v)
            {
                if t != p.ty {
                    out.push(PartitionWarning::NameIsTypeKeyword {
                        at,
                        name: p.name.clone(),
                        ty: p.ty,
                    });
                }
            }
            if keywords.is_any_subtype_keyword(&p.name)
                && keywords.exact_subtype(i128::from(p.ty), &p.name) != Some(p.subtype)
            {
                out.push(PartitionWarning::NameIsSubtypeKeyword {
                    at,
                    name: p.name.clone(),
                    ty: p.ty,
                    subtype: p.subtype,
                });
            }
            if p.name.len() > 16 {
                out.push(PartitionWarning::NameTruncated {
                    at,
                    name: p.name.clone(),
                    truncated: String::from_utf8_lossy(&p.name.as_bytes()[..16]).into_owned(),
                });
            }
        }
        out
    }
}
