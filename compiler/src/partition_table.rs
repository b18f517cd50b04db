//! ESP-IDF partition tables: CSV and binary, byte-identical to `gen_esp32part.py` 1.5.
//!
//! ESP-AT needs tables the `esp-idf-part` crate cannot produce (no app partition, numeric
//! data subtypes, no MD5 record, other table offsets, negative sizes ...), so this module
//! implements the tool's rules itself; `docs/formats/partition-table.md` describes them.
//!
//! # Entry points
//!
//! | you have | call | you get |
//! |---|---|---|
//! | rows from a manifest | [`layout`]`(&rows, &opts)` | a placed and verified [`PartitionTable`] |
//! | CSV text | [`parse_csv`]`(text, &opts)` | the same, errors naming the CSV line |
//! | CSV file bytes (BOM, UTF-16/32) | [`decode_csv_text`] then [`parse_csv`] | |
//! | a binary | [`PartitionTable::from_bytes`] / [`PartitionTable::decode`] | the table (+ warnings) |
//! | a table | [`PartitionTable::to_bytes`]`(md5)`, [`PartitionTable::to_csv`] | 3072 bytes / CSV text |
//!
//! Both [`layout`] and [`parse_csv`] run the whole pipeline of the tool: automatic offsets and
//! negative sizes, verification (unless [`TableOptions::verify`] is off), the `--flash-size`
//! check, the range of every binary field and the table-size limit for
//! [`TableOptions::md5`]. They collect every error they can (one per row for syntax errors;
//! layout, verification and size errors once the syntax is clean), in the order the tool
//! checks them, so `errors[0]` is the message gen_esp32part.py would print. Every
//! [`PartitionError`] about a row carries a [`RowRef`]: the row index and, for CSV, the line.
//!
//! # Where we differ from the tool (on purpose, or on inputs no one writes)
//!
//! * All errors are collected; the tool stops at the first. `errors[0]` is the tool's error.
//! * Numbers beyond ±2^64, and more than 900 stacked `k`/`m` suffixes, are refused at once
//!   ([`PartitionError::NumberTooLarge`], an "oracle crash"); Python would carry the number on
//!   and crash later (`struct.error`, `RecursionError`) unless another error came first.
//! * Python's `int()` also reads non-ASCII decimal digits (`"١٢"`); we do not.
//! * [`TableOptions::variables`] defaults to no variables; the CLI uses the environment.
//! * [`PartitionTable::warnings`] also reports names cut to 16 bytes, which the tool does silently.
//!
//! ```
//! use espfleet_compiler::partition_table::{layout, Row, SizeSpec, SubtypeSpec, TableOptions, TypeSpec};
//!
//! let rows = [
//!     Row::new("nvs", TypeSpec::keyword("data"), SubtypeSpec::keyword("nvs"), SizeSpec::Bytes(0x6000)),
//!     Row::new("factory", TypeSpec::keyword("app"), SubtypeSpec::keyword("factory"), SizeSpec::Bytes(0x10_0000)),
//! ];
//! let table = layout(&rows, &TableOptions::default()).unwrap();
//! assert_eq!(table.partitions()[1].offset, 0x10000);
//! let bin = table.to_bytes(true).unwrap();
//! assert_eq!(bin.len(), 0xC00);
//! ```

mod binary;
mod csv;
mod csv_text;
mod error;
mod keywords;
mod layout;

pub use binary::Decoded;
pub use csv::{decode_csv_text, parse_csv};
pub use csv_text::{Variables, parse_option_int};
pub use error::{BootloaderSlot, Field, PartitionError, PartitionWarning, RowRef};
pub use keywords::{Keywords, TYPE_APP, TYPE_BOOTLOADER, TYPE_DATA, TYPE_PARTITION_TABLE};
pub use layout::layout;

/// Size of the binary table file gen_esp32part.py writes (it is flashed into a 4 KiB sector).
pub const TABLE_BYTES: usize = 0xC00;
/// Size of one binary record.
pub const ENTRY_BYTES: usize = 32;
/// Default `--offset`: where the table is flashed.
pub const DEFAULT_TABLE_OFFSET: u32 = 0x8000;

/// The flag bits of an entry (`encrypted` is bit 0, `readonly` bit 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    /// The partition is flash-encrypted.
    pub encrypted: bool,
    /// The partition is mounted read-only (IDF 5.x).
    pub readonly: bool,
}

impl Flags {
    /// The flags word of the binary entry.
    pub fn bits(self) -> u32 {
        u32::from(self.encrypted) | (u32::from(self.readonly) << 1)
    }
}

/// One placed partition: exactly the fields of a binary entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partition {
    /// The name as written (the binary keeps only its first 16 bytes).
    pub name: String,
    /// Type byte (0 app, 1 data, 2 bootloader, 3 partition_table, others custom).
    pub ty: u8,
    /// Subtype byte.
    pub subtype: u8,
    /// Absolute flash address.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// Flags.
    pub flags: Flags,
}

/// A partition table: partitions in their given order (never sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PartitionTable {
    partitions: Vec<Partition>,
}

impl PartitionTable {
    /// A table of already placed partitions, as they are (no checks; see
    /// [`PartitionTable::validate`]).
    pub fn new(partitions: Vec<Partition>) -> Self {
        PartitionTable { partitions }
    }

    /// The partitions in table order.
    pub fn partitions(&self) -> &[Partition] {
        &self.partitions
    }

    /// Consumes the table.
    pub fn into_partitions(self) -> Vec<Partition> {
        self.partitions
    }
}

/// App size alignment required by secure boot (`--secure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureBoot {
    /// Secure boot v1: app sizes aligned to 0x10000.
    V1,
    /// Secure boot v2: app sizes aligned to 0x1000 (as without secure boot).
    V2,
}

/// The options of gen_esp32part.py that change how a table is laid out or checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    /// `--offset`: where the table is flashed; automatic placement starts 0x1000 above it.
    pub table_offset: u32,
    /// `--disable-md5sum` when false. Only the table-size limit depends on it here (94
    /// partitions with the record, 95 without); pass the same value to
    /// [`PartitionTable::to_bytes`].
    pub md5: bool,
    /// `--no-verify` when false: skips alignment, naming, overlap and otadata checks (not the
    /// ordering of explicit offsets, the flash size or the table size).
    pub verify: bool,
    /// `--secure v1|v2`.
    pub secure: Option<SecureBoot>,
    /// `--primary-bootloader-offset`, needed by `bootloader` rows.
    pub primary_bootloader_offset: Option<u32>,
    /// `--recovery-bootloader-offset`, needed by `bootloader, recovery` rows.
    pub recovery_bootloader_offset: Option<u32>,
    /// `--flash-size` in bytes: partitions must end within it.
    pub flash_size: Option<u64>,
    /// Type and subtype keywords (with any `--extra-partition-subtypes`).
    pub keywords: Keywords,
    /// Where `$VAR` in CSV text comes from (the tool uses the environment; default: nowhere).
    pub variables: Variables,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            table_offset: DEFAULT_TABLE_OFFSET,
            md5: true,
            verify: true,
            secure: None,
            primary_bootloader_offset: None,
            recovery_bootloader_offset: None,
            flash_size: None,
            keywords: Keywords::esp_idf(),
            variables: Variables::None,
        }
    }
}

/// A partition type as a manifest gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeSpec {
    /// `app`, `data`, `bootloader` or `partition_table` (case-insensitive).
    Keyword(String),
    /// Any type byte (0x40 for ESP-AT's custom partitions).
    Number(u8),
}

impl TypeSpec {
    /// A keyword type.
    pub fn keyword(k: &str) -> Self {
        TypeSpec::Keyword(k.to_owned())
    }
}

/// A partition subtype as a manifest gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubtypeSpec {
    /// Left out: an error for `app`, 0x06 (`undefined`) for every other type.
    Default,
    /// A keyword of the row's type (case-insensitive), e.g. `nvs`, `ota_0`.
    Keyword(String),
    /// Any subtype byte.
    Number(u8),
}

impl SubtypeSpec {
    /// A keyword subtype.
    pub fn keyword(k: &str) -> Self {
        SubtypeSpec::Keyword(k.to_owned())
    }
}

/// A partition size as a manifest gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSpec {
    /// That many bytes.
    Bytes(u64),
    /// Up to (not including) this flash address: size = address − offset (a negative size in
    /// the CSV). `UpTo(0)` is size 0, as `-0` is in the CSV.
    UpTo(u64),
}

/// One partition row without CSV text: what a manifest resolver hands to [`layout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Name (longer than 16 bytes is cut in the binary, as the tool does).
    pub name: String,
    /// Type.
    pub ty: TypeSpec,
    /// Subtype.
    pub subtype: SubtypeSpec,
    /// Offset; `None` places the row after the previous one, aligned for its type.
    /// Ignored for primary/recovery bootloader and primary partition-table rows.
    pub offset: Option<u64>,
    /// Size; required except for `bootloader` and `partition_table` rows, whose size is fixed.
    pub size: Option<SizeSpec>,
    /// Flags.
    pub flags: Flags,
}

impl Row {
    /// An automatically placed row without flags.
    pub fn new(name: &str, ty: TypeSpec, subtype: SubtypeSpec, size: SizeSpec) -> Self {
        Row {
            name: name.to_owned(),
            ty,
            subtype,
            offset: None,
            size: Some(size),
            flags: Flags::default(),
        }
    }
}
