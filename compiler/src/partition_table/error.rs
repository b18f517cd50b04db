//! Errors and warnings of the partition-table domain.

use std::fmt;

use miette::Diagnostic;
use thiserror::Error;

/// Which row an error or warning is about.
///
/// `row` is the 0-based index among partition rows (the index into the `rows` slice given to
/// [`layout`](super::layout), or of the entry in a binary); `line` is the 1-based physical CSV
/// line (comments and blank lines counted) when the table came from CSV text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowRef {
    /// 0-based index of the partition row.
    pub row: usize,
    /// 1-based CSV line, when the row came from CSV text.
    pub line: Option<usize>,
}

impl RowRef {
    /// A row that did not come from CSV text.
    pub fn row(row: usize) -> Self {
        RowRef { row, line: None }
    }
}

impl fmt::Display for RowRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}"),
            None => write!(f, "row {}", self.row + 1),
        }
    }
}

/// The field of a row a value was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Column 2, the type.
    Type,
    /// Column 3, the subtype.
    Subtype,
    /// Column 4, the offset.
    Offset,
    /// Column 5, the size.
    Size,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Type => "type",
            Field::Subtype => "subtype",
            Field::Offset => "offset",
            Field::Size => "size",
        })
    }
}

/// Which fixed bootloader row needs an offset option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootloaderSlot {
    /// `--primary-bootloader-offset`.
    Primary,
    /// `--recovery-bootloader-offset`.
    Recovery,
}

impl fmt::Display for BootloaderSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BootloaderSlot::Primary => "Primary",
            BootloaderSlot::Recovery => "Recovery",
        })
    }
}

/// Everything that can be wrong with a partition table, its CSV text, its binary or the options
/// it is built with. Messages follow gen_esp32part.py's wording where it has one.
///
/// Errors about one row carry a [`RowRef`] (see [`PartitionError::at`]). Lists of errors are
/// returned in the order gen_esp32part.py checks, so the first one is the one it reports.
#[derive(Debug, Clone, PartialEq, Eq, Error, Diagnostic)]
pub enum PartitionError {
    /// The CSV text is not valid UTF-8 (or UTF-16/32 after a byte-order mark).
    #[error("the CSV input is not valid {encoding} text")]
    #[diagnostic(
        code(espfleet::partition_table::csv_not_unicode),
        help("save the CSV as UTF-8; a binary table must start with the bytes AA 50")
    )]
    CsvNotUnicode {
        /// The encoding that was tried.
        encoding: &'static str,
    },

    /// A line starts with `$NAME` and `NAME` is not defined.
    #[error("unknown variable '{name}'")]
    #[diagnostic(
        code(espfleet::partition_table::unknown_variable),
        help("define the environment variable, or do not start the row with `$`")
    )]
    VariableUnknown {
        /// The line.
        at: RowRef,
        /// The variable name.
        name: String,
    },

    /// The type column is empty.
    #[error("Field 'type' can't be left empty.")]
    #[diagnostic(
        code(espfleet::partition_table::type_missing),
        help("give a type: app, data, bootloader, partition_table or a number 0-255")
    )]
    TypeMissing {
        /// The row.
        at: RowRef,
    },

    /// The type is neither a number nor a type keyword.
    #[error("Value '{value}' is not valid. Known keywords: {known}")]
    #[diagnostic(
        code(espfleet::partition_table::type_unknown),
        help("use app, data, bootloader, partition_table or a number such as 0x40")
    )]
    TypeUnknown {
        /// The row.
        at: RowRef,
        /// The text that was given.
        value: String,
        /// The keywords that would have been accepted.
        known: String,
    },

    /// An `app` row without a subtype.
    #[error("App partition cannot have an empty subtype")]
    #[diagnostic(
        code(espfleet::partition_table::subtype_missing),
        help("give the app subtype: factory, ota_0 ... ota_15, test, or a number")
    )]
    SubtypeMissing {
        /// The row.
        at: RowRef,
    },

    /// The subtype is neither a number nor a keyword of the row's type.
    #[error("{}", if known.is_empty() { format!("Invalid field value {value}") } else { format!("Value '{value}' is not valid. Known keywords: {known}") })]
    #[diagnostic(
        code(espfleet::partition_table::subtype_unknown),
        help("use a subtype keyword of this type, or a number; custom types only take numbers")
    )]
    SubtypeUnknown {
        /// The row.
        at: RowRef,
        /// The text that was given.
        value: String,
        /// The keywords of the row's type (empty for custom types).
        known: String,
    },

    /// A number field does not parse (`int(x, 0)` with an optional `k`/`m` suffix).
    #[error("Invalid field value {text}")]
    #[diagnostic(
        code(espfleet::partition_table::number_invalid),
        help(
            "write numbers as decimal (65536), hex (0x10000) or with a K/M suffix (64K, 1M); no fractions, no leading zeros"
        )
    )]
    NumberInvalid {
        /// The row.
        at: RowRef,
        /// The field.
        field: Field,
        /// The text that did not parse (after suffixes were taken off).
        text: String,
    },

    /// A number far beyond any flash size.
    #[error("the {field} value {text} is too large")]
    #[diagnostic(
        code(espfleet::partition_table::number_too_large),
        help("offsets and sizes must fit in 32 bits, types and subtypes in 8 bits")
    )]
    NumberTooLarge {
        /// The row.
        at: RowRef,
        /// The field.
        field: Field,
        /// The text.
        text: String,
    },

    /// The size column is empty.
    #[error("Size field can't be empty")]
    #[diagnostic(
        code(espfleet::partition_table::size_missing),
        help("give a size (such as 0x6000 or 1M), or a negative end address such as -0x400000")
    )]
    SizeMissing {
        /// The row.
        at: RowRef,
    },

    /// The flags column holds something other than `encrypted` and `readonly`.
    #[error("CSV flag column contains unknown flag '{flag}'")]
    #[diagnostic(
        code(espfleet::partition_table::flag_unknown),
        help("flags are `encrypted` and `readonly`, separated by `:` without spaces")
    )]
    FlagUnknown {
        /// The row.
        at: RowRef,
        /// The unknown flag.
        flag: String,
    },

    /// A `bootloader` row but no bootloader offset option.
    #[error("{slot} bootloader offset is not defined. Please use --{}-bootloader-offset", if matches!(slot, BootloaderSlot::Primary) { "primary" } else { "recovery" })]
    #[diagnostic(
        code(espfleet::partition_table::bootloader_offset_missing),
        help(
            "bootloader rows take their offset and size from --primary-bootloader-offset / --recovery-bootloader-offset"
        )
    )]
    BootloaderOffsetMissing {
        /// The row.
        at: RowRef,
        /// Which option is missing.
        slot: BootloaderSlot,
    },

    /// `--primary-bootloader-offset` is not below the table offset.
    #[error(
        "Unsupported configuration. Primary bootloader must be below partition table. Check --primary-bootloader-offset={primary:#x} and --offset={table:#x}"
    )]
    #[diagnostic(
        code(espfleet::partition_table::bootloader_above_table),
        help(
            "the primary bootloader lives below the partition table; lower --primary-bootloader-offset"
        )
    )]
    BootloaderAboveTable {
        /// The primary bootloader offset.
        primary: u32,
        /// The table offset.
        table: u32,
    },

    /// The first placed row sets an offset inside the partition table's sector (or below it).
    #[error(
        "Partitions overlap. Partition sets offset {}. But partition table occupies the whole sector {table_offset:#x}. Use a free offset {} or higher.",
        hx(.offset),
        hx(.next_free)
    )]
    #[diagnostic(
        code(espfleet::partition_table::offset_in_table_sector),
        help("leave the offset empty to place the partition automatically, or use a free offset")
    )]
    OffsetInTableSector {
        /// The row.
        at: RowRef,
        /// The offset it sets.
        offset: i128,
        /// The table offset.
        table_offset: u32,
        /// The first free offset.
        next_free: i128,
    },

    /// An explicit offset below the end of the previous row (explicit offsets must ascend).
    #[error(
        "Partitions overlap. Partition sets offset {}. Previous partition ends {}",
        hx(.offset),
        hx(.previous_end)
    )]
    #[diagnostic(
        code(espfleet::partition_table::offset_out_of_order),
        help(
            "explicit offsets must be in ascending order and must not overlap the previous partition"
        )
    )]
    OffsetOutOfOrder {
        /// The row.
        at: RowRef,
        /// The offset it sets.
        offset: i128,
        /// Where the previous row ends.
        previous_end: i128,
    },

    /// Offset not aligned (app 0x10000, everything else 0x1000).
    #[error("Partition {name} invalid: Offset {} is not aligned to {align:#x}", hx(.offset))]
    #[diagnostic(
        code(espfleet::partition_table::offset_misaligned),
        help("app partitions start on a 64 KiB boundary, all others on a 4 KiB boundary")
    )]
    OffsetMisaligned {
        /// The row.
        at: RowRef,
        /// The partition name.
        name: String,
        /// The offset.
        offset: i128,
        /// The required alignment.
        align: u32,
    },

    /// App size not aligned (0x1000, or 0x10000 with `--secure v1`).
    #[error("Partition {name} invalid: Size {} is not aligned to {align:#x}", hx(.size))]
    #[diagnostic(
        code(espfleet::partition_table::size_misaligned),
        help("round the app partition size up to the alignment")
    )]
    SizeMisaligned {
        /// The row.
        at: RowRef,
        /// The partition name.
        name: String,
        /// The size.
        size: i128,
        /// The required alignment.
        align: u32,
    },

    /// `readonly` on `data/ota` or `data/coredump`.
    #[error(
        "Partition {name} invalid: '{name}' partition of type {ty} and subtype {subtype} is always read-write and cannot be read-only"
    )]
    #[diagnostic(
        code(espfleet::partition_table::readonly_not_allowed),
        help("remove the readonly flag: otadata and coredump partitions are written at run time")
    )]
    ReadonlyNotAllowed {
        /// The row.
        at: RowRef,
        /// The partition name.
        name: String,
        /// Type.
        ty: i128,
        /// Subtype.
        subtype: i128,
    },

    /// A read/write `data/nvs` partition smaller than 0x3000.
    #[error(
        "Partition {name} invalid: '{name}' partition of type {ty} and subtype {subtype} of size {} must be flagged as 'readonly' (the size of read/write NVS has to be at least 0x3000)",
        hx(.size)
    )]
    #[diagnostic(
        code(espfleet::partition_table::nvs_too_small),
        help("make the NVS partition at least 0x3000 bytes, or flag it `readonly`")
    )]
    NvsTooSmall {
        /// The row.
        at: RowRef,
        /// The partition name.
        name: String,
        /// Type.
        ty: i128,
        /// Subtype.
        subtype: i128,
        /// Its size.
        size: i128,
    },

    /// Two rows with the same (full, untruncated) name.
    #[error("Partition names must be unique ('{name}' is also used at {first})")]
    #[diagnostic(
        code(espfleet::partition_table::name_duplicate),
        help("rename one of the partitions")
    )]
    NameDuplicate {
        /// The later row.
        at: RowRef,
        /// The name.
        name: String,
        /// The first row with that name.
        first: RowRef,
    },

    /// A partition starts below the end of the table's sector.
    #[error("Partition offset {} is below {}", hx(.offset), hx(.limit))]
    #[diagnostic(
        code(espfleet::partition_table::offset_below_table),
        help("partitions go after the partition table sector (table offset + 0x1000)")
    )]
    OffsetBelowTable {
        /// The row.
        at: RowRef,
        /// Its offset.
        offset: i128,
        /// The lowest allowed offset.
        limit: i128,
    },

    /// Two partitions overlap (checked in offset order).
    #[error("Partition at {} overlaps {}-{}", hx(.offset), hx(.other_start), hx(.other_last))]
    #[diagnostic(
        code(espfleet::partition_table::overlap),
        help("move or shrink one of the two partitions")
    )]
    Overlap {
        /// The row that starts inside the other.
        at: RowRef,
        /// Its offset.
        offset: i128,
        /// The row it overlaps.
        other: RowRef,
        /// Start of the other partition.
        other_start: i128,
        /// Last byte of the other partition.
        other_last: i128,
    },

    /// More than one `data/ota` (or `data/tee_ota`) partition.
    #[error("Found multiple {}otadata partitions. Only one partition can be defined with type=\"data\"(1) and subtype=\"{}\"({}).", if *tee { "TEE " } else { "" }, if *tee { "tee_ota" } else { "ota" }, if *tee { "0x90" } else { "0" })]
    #[diagnostic(
        code(espfleet::partition_table::otadata_duplicate),
        help("keep a single otadata partition")
    )]
    OtadataDuplicate {
        /// The second such row.
        at: RowRef,
        /// Whether this is about `tee_ota`.
        tee: bool,
    },

    /// The `data/ota` (or `data/tee_ota`) partition is not 0x2000 bytes.
    #[error("{}otadata partition must have size = 0x2000", if *tee { "TEE " } else { "" })]
    #[diagnostic(
        code(espfleet::partition_table::otadata_size),
        help("otadata holds two 4 KiB sectors: give it size 0x2000 (8K)")
    )]
    OtadataSize {
        /// The row.
        at: RowRef,
        /// Whether this is about `tee_ota`.
        tee: bool,
    },

    /// The partitions end beyond the flash size given with `--flash-size`.
    #[error("Partitions tables occupies {:.1}MB of flash ({end} bytes) which does not fit in configured flash size {}MB.", mib(*end), flash_size / (1024 * 1024))]
    #[diagnostic(
        code(espfleet::partition_table::flash_too_small),
        help("use a larger flash size or make the partitions smaller")
    )]
    FlashTooSmall {
        /// The partition with the highest offset.
        at: RowRef,
        /// Where it ends.
        end: i128,
        /// The flash size in bytes.
        flash_size: u64,
    },

    /// A value does not fit its binary field (gen_esp32part.py crashes with `struct.error`).
    #[error("the {field} value {} does not fit in the binary entry", hx(.value))]
    #[diagnostic(
        code(espfleet::partition_table::value_out_of_range),
        help(
            "types and subtypes are 0-255; offsets and sizes are 0-0xFFFFFFFF (a negative size is an end address and must lie after the offset)"
        )
    )]
    ValueOutOfRange {
        /// The row.
        at: RowRef,
        /// The field.
        field: Field,
        /// The value.
        value: i128,
    },

    /// Too many partitions for the 0xC00-byte table (94 with the MD5 record, 95 without).
    #[error("Binary partition table length ({bytes}) longer than max")]
    #[diagnostic(
        code(espfleet::partition_table::table_too_large),
        help(
            "the table holds at most 94 partitions with the MD5 record (95 without); merge or drop some"
        )
    )]
    TableTooLarge {
        /// The first row that does not fit.
        at: RowRef,
        /// The length the table would have.
        bytes: usize,
    },

    /// A binary whose length runs out in the middle of a 32-byte record.
    #[error("Partition table length must be a multiple of 32 bytes")]
    #[diagnostic(
        code(espfleet::partition_table::binary_length),
        help("the binary is truncated; read the whole 0xC00-byte table")
    )]
    BinaryLength {
        /// Byte offset of the partial record.
        offset: usize,
    },

    /// A binary without the 32 × `FF` end marker.
    #[error("Partition table is missing an end-of-table marker")]
    #[diagnostic(
        code(espfleet::partition_table::binary_end_missing),
        help(
            "a table ends with a record of 32 FF bytes; the binary is truncated or not a partition table"
        )
    )]
    BinaryEndMissing,

    /// The MD5 record does not match the entries before it.
    #[error("MD5 checksums don't match! (computed: 0x{computed}, parsed: 0x{stored})")]
    #[diagnostic(
        code(espfleet::partition_table::md5_mismatch),
        help(
            "the table is corrupt; or it was never meant to have an MD5 record (then use --disable-md5sum)"
        )
    )]
    Md5Mismatch {
        /// Byte offset of the MD5 record.
        offset: usize,
        /// The digest of the entries, hex.
        computed: String,
        /// The digest in the record, hex.
        stored: String,
    },

    /// A record that is neither a partition, the MD5 record nor the end marker.
    #[error("Invalid magic bytes ({magic:02x?}) for partition definition")]
    #[diagnostic(
        code(espfleet::partition_table::magic_invalid),
        help("partition entries start with AA 50; the binary is corrupt or not a partition table")
    )]
    MagicInvalid {
        /// The entry.
        at: RowRef,
        /// The first two bytes.
        magic: [u8; 2],
    },

    /// A name field that is not UTF-8 (gen_esp32part.py crashes with `UnicodeDecodeError`).
    #[error("the name of the partition entry is not valid UTF-8")]
    #[diagnostic(
        code(espfleet::partition_table::name_not_utf8),
        help("the binary is corrupt, or it holds an MD5 record read with --disable-md5sum")
    )]
    NameNotUtf8 {
        /// The entry.
        at: RowRef,
    },

    /// A bad `--extra-partition-subtypes` entry.
    #[error("Error parsing custom subtypes '{spec}': {reason}")]
    #[diagnostic(
        code(espfleet::partition_table::extra_subtype_invalid),
        help(
            "write entries as \"type,name,value\" with a type keyword, a new name and an unused hex value, e.g. \"data,my_data,40\""
        )
    )]
    ExtraSubtypeInvalid {
        /// The entry as given.
        spec: String,
        /// What is wrong.
        reason: String,
        /// Whether gen_esp32part.py crashes (exit 1) rather than reports (exit 2).
        crash: bool,
    },
}

/// Python's `"0x%x" % v`, which gen_esp32part.py uses in its messages (`0x-1000` when negative).
fn hx(v: &i128) -> String {
    if *v < 0 {
        format!("0x-{:x}", v.unsigned_abs())
    } else {
        format!("{v:#x}")
    }
}

#[allow(clippy::cast_precision_loss)] // only for the human-readable "3.1MB"
fn mib(bytes: i128) -> f64 {
    bytes as f64 / 1_048_576.0
}

impl PartitionError {
    /// The row the error is about, when it is about one row.
    pub fn at(&self) -> Option<RowRef> {
        use PartitionError as E;
        match self {
            E::VariableUnknown { at, .. }
            | E::TypeMissing { at }
            | E::TypeUnknown { at, .. }
            | E::SubtypeMissing { at }
            | E::SubtypeUnknown { at, .. }
            | E::NumberInvalid { at, .. }
            | E::NumberTooLarge { at, .. }
            | E::SizeMissing { at }
            | E::FlagUnknown { at, .. }
            | E::BootloaderOffsetMissing { at, .. }
            | E::OffsetInTableSector { at, .. }
            | E::OffsetOutOfOrder { at, .. }
            | E::OffsetMisaligned { at, .. }
            | E::SizeMisaligned { at, .. }
            | E::ReadonlyNotAllowed { at, .. }
            | E::NvsTooSmall { at, .. }
            | E::NameDuplicate { at, .. }
            | E::OffsetBelowTable { at, .. }
            | E::Overlap { at, .. }
            | E::OtadataDuplicate { at, .. }
            | E::OtadataSize { at, .. }
            | E::FlashTooSmall { at, .. }
            | E::ValueOutOfRange { at, .. }
            | E::TableTooLarge { at, .. }
            | E::MagicInvalid { at, .. }
            | E::NameNotUtf8 { at } => Some(*at),
            E::CsvNotUnicode { .. }
            | E::BootloaderAboveTable { .. }
            | E::BinaryLength { .. }
            | E::BinaryEndMissing
            | E::Md5Mismatch { .. }
            | E::ExtraSubtypeInvalid { .. } => None,
        }
    }

    /// The 0-based row index the error is about (see [`RowRef::row`]).
    pub fn row(&self) -> Option<usize> {
        self.at().map(|a| a.row)
    }

    /// The 1-based CSV line the error is about.
    pub fn line(&self) -> Option<usize> {
        self.at().and_then(|a| a.line)
    }

    /// Whether gen_esp32part.py 1.5 *crashes* on this input (a Python exception, exit status 1)
    /// instead of reporting it (exit status 2). A drop-in CLI uses this to pick its exit code.
    pub fn is_oracle_crash(&self) -> bool {
        match self {
            PartitionError::CsvNotUnicode { .. }
            | PartitionError::NumberTooLarge { .. }
            | PartitionError::ValueOutOfRange { .. }
            | PartitionError::NameNotUtf8 { .. } => true,
            PartitionError::ExtraSubtypeInvalid { crash, .. } => *crash,
            _ => false,
        }
    }
}

/// Things gen_esp32part.py warns about without failing.
#[derive(Debug, Clone, PartialEq, Eq, Error, Diagnostic)]
pub enum PartitionWarning {
    /// A partition named like a type keyword but of another type.
    #[error(
        "Partition has name '{name}' which is a partition type, but does not match this partition's type ({ty:#x}). Mistake in partition table?"
    )]
    #[diagnostic(
        code(espfleet::partition_table::name_is_type_keyword),
        severity(Warning)
    )]
    NameIsTypeKeyword {
        /// The row.
        at: RowRef,
        /// The name.
        name: String,
        /// Its type.
        ty: u8,
    },

    /// A partition named like a subtype keyword but of another type/subtype.
    #[error(
        "Partition has name '{name}' which is a partition subtype, but this partition has non-matching type {ty:#x} and subtype {subtype:#x}. Mistake in partition table?"
    )]
    #[diagnostic(
        code(espfleet::partition_table::name_is_subtype_keyword),
        severity(Warning)
    )]
    NameIsSubtypeKeyword {
        /// The row.
        at: RowRef,
        /// The name.
        name: String,
        /// Its type.
        ty: u8,
        /// Its subtype.
        subtype: u8,
    },

    /// A name longer than the 16-byte field: it is cut (gen_esp32part.py does so silently).
    #[error(
        "Partition name '{name}' is longer than 16 bytes and is cut to '{truncated}' in the binary"
    )]
    #[diagnostic(code(espfleet::partition_table::name_truncated), severity(Warning))]
    NameTruncated {
        /// The row.
        at: RowRef,
        /// The full name.
        name: String,
        /// What the binary holds (lossy if the cut splits a character).
        truncated: String,
    },

    /// A binary entry with flag bits other than `encrypted` and `readonly` (they are dropped).
    #[error("Partition definition had unknown flag(s) {bits:#010x}. Newer binary format?")]
    #[diagnostic(code(espfleet::partition_table::flags_unknown), severity(Warning))]
    FlagsUnknown {
        /// The entry.
        at: RowRef,
        /// The unknown bits.
        bits: u32,
    },
}
