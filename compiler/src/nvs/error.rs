//! Errors of the NVS encoder, decoder, CSV reader and encryption.
//!
//! [`NvsErrorKind`] says what went wrong (stable code, help text); [`NvsError`] adds where:
//! the index of the entry handed to the builder or the CSV file and line, with the line as a
//! labelled source span when the CSV text is known.

use std::fmt;
use std::path::PathBuf;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};

/// Where an error happened in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The `index`-th (0-based) call of [`super::NvsBuilder`] (namespace or entry).
    Entry(usize),
    /// A row of a CSV file (1-based line number of the row's first line).
    Line {
        /// The CSV file as given by the user.
        file: String,
        /// 1-based line number.
        line: usize,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Entry(i) => write!(f, "entry {i}"),
            Self::Line { file, line } => write!(f, "{file}:{line}"),
        }
    }
}

/// What went wrong. Every variant has a stable code `espfleet::nvs::…`.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum NvsErrorKind {
    /// Keys and namespace names are stored in 16 bytes with a NUL terminator.
    #[error("key `{key}` is {len} characters long; NVS keys hold at most 15")]
    #[diagnostic(
        code(espfleet::nvs::key_too_long),
        help("shorten the key (or namespace name) to 15 characters or fewer")
    )]
    KeyTooLong {
        /// The key as written.
        key: String,
        /// Its length in characters.
        len: usize,
    },
    /// The Python generator writes a malformed entry for non-ASCII keys; we refuse them.
    #[error("key `{key}` contains non-ASCII characters")]
    #[diagnostic(
        code(espfleet::nvs::key_not_ascii),
        help(
            "use ASCII keys: esp-idf-nvs-partition-gen counts characters but stores UTF-8 bytes, which corrupts the entry"
        )
    )]
    KeyNotAscii {
        /// The key as written.
        key: String,
    },
    /// A number does not fit the chosen integer type.
    #[error("value {value} of `{key}` is out of range for {encoding} ({min}..={max})")]
    #[diagnostic(
        code(espfleet::nvs::value_out_of_range),
        help("pick a wider type (for example i32 or u64) or correct the value")
    )]
    ValueOutOfRange {
        /// The key.
        key: String,
        /// The encoding (u8 … i64).
        encoding: &'static str,
        /// The value read.
        value: String,
        /// Smallest allowed value.
        min: i128,
        /// Largest allowed value.
        max: i128,
    },
    /// An integer value is not a base-10 integer as Python's `int()` reads it.
    #[error("value `{value}` of `{key}` is not a decimal integer")]
    #[diagnostic(
        code(espfleet::nvs::invalid_integer),
        help(
            "write integers in base 10 (an optional sign, digits, `_` separators); hex like 0x10 is not accepted by the generator"
        )
    )]
    InvalidInteger {
        /// The key.
        key: String,
        /// The text read.
        value: String,
    },
    /// The encoding column names no encoding the generator knows.
    #[error("unsupported encoding `{encoding}`")]
    #[diagnostic(
        code(espfleet::nvs::unknown_encoding),
        help(
            "use one of u8 i8 u16 i16 u32 i32 u64 i64 string binary hex2bin base64 blob_fill(N;0xHH) blob_sz_fill(N;0xHH)"
        )
    )]
    UnknownEncoding {
        /// The encoding as written.
        encoding: String,
    },
    /// A `blob_fill`/`blob_sz_fill` encoding with a malformed argument list.
    #[error("invalid encoding format `{encoding}`")]
    #[diagnostic(
        code(espfleet::nvs::invalid_fill_encoding),
        help("write it as blob_fill(LENGTH;0xHH), e.g. blob_fill(32;0xff)")
    )]
    InvalidFillEncoding {
        /// The encoding as written.
        encoding: String,
    },
    /// A `blob_fill` value longer than the fill length.
    #[error("value of `{key}` is {len} bytes, longer than the fill length {max}")]
    #[diagnostic(
        code(espfleet::nvs::fill_value_too_long),
        help("shorten the value or raise N in blob_fill(N;0xHH)")
    )]
    FillValueTooLong {
        /// The key.
        key: String,
        /// Value length in bytes.
        len: usize,
        /// The fill length.
        max: usize,
    },
    /// The CSV header lacks a column the generator needs.
    #[error("the CSV header has no `{column}` column")]
    #[diagnostic(
        code(espfleet::nvs::missing_column),
        help(
            "the first non-comment line must be exactly `key,type,encoding,value` (lower case, no spaces, no BOM)"
        )
    )]
    MissingColumn {
        /// The missing column name.
        column: &'static str,
    },
    /// A row has fewer fields than the header, and the missing one is needed.
    #[error("the row has no `{column}` field")]
    #[diagnostic(
        code(espfleet::nvs::missing_field),
        help(
            "give every row the four fields key,type,encoding,value (use empty fields for namespace rows)"
        )
    )]
    MissingField {
        /// The missing column.
        column: &'static str,
    },
    /// The CSV text cannot be parsed the way Python's `csv` module parses it.
    #[error("CSV syntax: {message}")]
    #[diagnostic(code(espfleet::nvs::csv_syntax), help("check the quoting of this row"))]
    CsvSyntax {
        /// What the reader found.
        message: String,
    },
    /// A `file` row names a file that cannot be read.
    #[error("cannot read `{}` for `{key}`: {source}", path.display())]
    #[diagnostic(
        code(espfleet::nvs::missing_file),
        help(
            "`file` paths are relative to the current directory (as with the Python generator), not to the CSV"
        )
    )]
    FileRead {
        /// The key.
        key: String,
        /// The path as resolved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// hex2bin data of odd length.
    #[error("hex2bin value of `{key}` has odd length {len}")]
    #[diagnostic(
        code(espfleet::nvs::hex_odd_length),
        help("hex data needs two digits per byte")
    )]
    HexOddLength {
        /// The key.
        key: String,
        /// Length after stripping whitespace.
        len: usize,
    },
    /// hex2bin data with a non-hex character.
    #[error("hex2bin value of `{key}` contains a non-hexadecimal character")]
    #[diagnostic(
        code(espfleet::nvs::invalid_hex),
        help("use only 0-9, a-f, A-F (no spaces inside the value)")
    )]
    InvalidHex {
        /// The key.
        key: String,
    },
    /// base64 data Python's `binascii.a2b_base64` rejects.
    #[error("base64 value of `{key}` is invalid: {reason}")]
    #[diagnostic(
        code(espfleet::nvs::invalid_base64),
        help("check the padding (`=`) of the base64 text")
    )]
    InvalidBase64 {
        /// The key.
        key: String,
        /// Python's reason.
        reason: String,
    },
    /// Text that must be UTF-8 (a `string` file) is not.
    #[error("file data of `{key}` is not valid UTF-8 text")]
    #[diagnostic(
        code(espfleet::nvs::not_utf8),
        help("store binary data with the binary, hex2bin or base64 encoding")
    )]
    NotUtf8 {
        /// The key.
        key: String,
    },
    /// Input the Python generator would store corruptly (it counts characters, writes bytes).
    #[error(
        "non-ASCII text in a `{encoding}` data row (`{key}`) is stored corruptly by the generator"
    )]
    #[diagnostic(
        code(espfleet::nvs::non_ascii_blob_text),
        help("write the bytes with hex2bin or base64, or put them in a file and use a `file` row")
    )]
    NonAsciiBlobText {
        /// The key.
        key: String,
        /// The encoding as written.
        encoding: String,
    },
    /// The combination of row type and encoding makes the generator crash.
    #[error("encoding `{encoding}` cannot be used with a `file` row (`{key}`)")]
    #[diagnostic(
        code(espfleet::nvs::unsupported_file_encoding),
        help("use a `data` row, or a lower-case encoding")
    )]
    UnsupportedFileEncoding {
        /// The key.
        key: String,
        /// The encoding.
        encoding: String,
    },
    /// A string or version-1 blob over the generator's size check.
    #[error("`{key}` is {len} bytes, more than the {max} bytes allowed for this item")]
    #[diagnostic(
        code(espfleet::nvs::value_too_long),
        help(
            "version 2 strings hold at most 3968 bytes (incl. NUL), version 1 strings and blobs 1984; use a version 2 blob for more"
        )
    )]
    ValueTooLong {
        /// The key.
        key: String,
        /// Size in bytes.
        len: usize,
        /// Limit checked.
        max: usize,
    },
    /// A string that passes the size check but fits on no page (3968..=4000 bytes).
    #[error(
        "string `{key}` is {len} bytes and does not fit on a page (at most 3968 bytes incl. NUL)"
    )]
    #[diagnostic(
        code(espfleet::nvs::string_does_not_fit),
        help("shorten the string to 3967 characters, or store it as a blob")
    )]
    StringDoesNotFit {
        /// The key.
        key: String,
        /// Size in bytes incl. NUL.
        len: usize,
    },
    /// The data needs more pages than the partition has.
    #[error("the data does not fit in a {size:#x}-byte partition")]
    #[diagnostic(
        code(espfleet::nvs::data_too_large),
        help("raise SIZE (one 4096-byte page stays reserved), or store less data")
    )]
    DataTooLarge {
        /// The partition size.
        size: u64,
    },
    /// The partition size is not a whole number of pages.
    #[error("partition size {size:#x} is not a multiple of 4096")]
    #[diagnostic(
        code(espfleet::nvs::size_not_multiple),
        help("NVS partitions are whole 4 KiB pages, e.g. 0x6000")
    )]
    SizeNotMultiple {
        /// The size given.
        size: i128,
    },
    /// The partition size is below one page (or below 0x3000 where no read-only form exists).
    #[error("partition size {size:#x} is below the minimum {min:#x}")]
    #[diagnostic(
        code(espfleet::nvs::size_too_small),
        help(
            "read/write NVS partitions need at least 0x3000 bytes; 0x1000 and 0x2000 make read-only images"
        )
    )]
    SizeTooSmall {
        /// The size given.
        size: i128,
        /// The minimum.
        min: u64,
    },
    /// Larger than any flash chip: refused before anything is allocated.
    #[error("partition size {size:#x} is larger than any flash ({max:#x} bytes)")]
    #[diagnostic(
        code(espfleet::nvs::size_too_large),
        help("an NVS partition lives in flash; the largest flash chip has 128 MB (0x8000000)")
    )]
    SizeTooLarge {
        /// The size given.
        size: u64,
        /// The largest size accepted.
        max: u64,
    },
    /// SIZE is not a number.
    #[error("`{text}` is not a partition size")]
    #[diagnostic(
        code(espfleet::nvs::invalid_size),
        help("give SIZE in bytes, decimal or with a 0x/0o/0b prefix, e.g. 0x6000")
    )]
    InvalidSize {
        /// The text given.
        text: String,
    },
    /// More than 255 namespaces.
    #[error("namespace `{name}` would be number {index}; at most 255 fit in the one-byte index")]
    #[diagnostic(code(espfleet::nvs::too_many_namespaces), help("merge namespaces"))]
    TooManyNamespaces {
        /// The namespace name.
        name: String,
        /// Its would-be index.
        index: usize,
    },
    /// The builder API was asked to switch back to an older namespace.
    #[error(
        "entry `{key}` is in namespace `{namespace}`, but a newer namespace has been opened since"
    )]
    #[diagnostic(
        code(espfleet::nvs::namespace_not_current),
        help("group entries by namespace: the generator always writes into the newest namespace")
    )]
    NamespaceNotCurrent {
        /// The key.
        key: String,
        /// The namespace asked for.
        namespace: String,
    },
    /// A blob needs more than 255 chunks.
    #[error("blob `{key}` needs more than 255 chunks")]
    #[diagnostic(
        code(espfleet::nvs::blob_too_large),
        help("split the blob; the chunk index is one byte")
    )]
    BlobTooLarge {
        /// The key.
        key: String,
    },
    /// Legacy trailing pages only exist for read/write partitions.
    #[error("--legacy-pages needs a partition of at least 0x3000 bytes (got {size:#x})")]
    #[diagnostic(
        code(espfleet::nvs::legacy_read_only),
        help("older generators rejected read-only sizes; drop --legacy-pages or raise SIZE")
    )]
    LegacyReadOnly {
        /// The size.
        size: u64,
    },
    /// Keys file too short.
    #[error("the keys file has {len} bytes; it needs 64 (32-byte XTS data key, 32-byte tweak key)")]
    #[diagnostic(
        code(espfleet::nvs::key_file_too_short),
        help("create one with `espfleet nvs generate-key`")
    )]
    KeyFileTooShort {
        /// Its length.
        len: usize,
    },
    /// XTS rejects equal key halves (OpenSSL and the generator refuse them too).
    #[error("the two halves of the XTS key are identical")]
    #[diagnostic(
        code(espfleet::nvs::xts_duplicate_keys),
        help("generate a fresh key with `espfleet nvs generate-key`")
    )]
    XtsDuplicateKeys,
    /// The OS random number generator failed.
    #[error("the system random number generator failed: {message}")]
    #[diagnostic(
        code(espfleet::nvs::rng_failed),
        help("check /dev/urandom or getrandom(2) availability")
    )]
    RngFailed {
        /// The error.
        message: String,
    },
    /// A row of a CSV holding a private key is invalid, and the usual message would quote key
    /// material: the details are withheld (docs/input-limits.md).
    #[error(
        "this row is invalid ({code}); its text is not shown because the CSV holds a private key"
    )]
    #[diagnostic(
        code(espfleet::nvs::secret_row_invalid),
        help("look at the row named above in the file itself")
    )]
    SecretRowInvalid {
        /// The code of the withheld error.
        code: String,
    },
    /// An image that is not a whole number of pages.
    #[error("the image is {len} bytes, not a multiple of 4096")]
    #[diagnostic(
        code(espfleet::nvs::image_length),
        help("pass a whole NVS partition image")
    )]
    ImageLength {
        /// Its length.
        len: usize,
    },
}

impl NvsErrorKind {
    /// Attaches a location to this error.
    pub fn at(self, location: Location) -> NvsError {
        NvsError(Box::new(Inner {
            kind: self,
            location: Some(location),
            source_code: None,
            span: None,
        }))
    }
}

/// An NVS error with its location (entry index or CSV line) and, for CSV input, the source line.
/// (Boxed: results stay one pointer wide.)
#[derive(Debug)]
pub struct NvsError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: NvsErrorKind,
    location: Option<Location>,
    source_code: Option<NamedSource<String>>,
    span: Option<SourceSpan>,
}

impl NvsError {
    /// What went wrong.
    pub fn kind(&self) -> &NvsErrorKind {
        &self.0.kind
    }

    /// Where, when known.
    pub fn location(&self) -> Option<&Location> {
        self.0.location.as_ref()
    }

    /// The 1-based CSV line of the row that failed, for CSV input.
    pub fn csv_line(&self) -> Option<usize> {
        match self.0.location {
            Some(Location::Line { line, .. }) => Some(line),
            _ => None,
        }
    }

    /// The 0-based index of the builder call that failed, for the builder API.
    pub fn entry_index(&self) -> Option<usize> {
        match self.0.location {
            Some(Location::Entry(i)) => Some(i),
            _ => None,
        }
    }

    /// Attaches the CSV text and the byte span of the failing row.
    pub(crate) fn with_source(mut self, source: NamedSource<String>, span: SourceSpan) -> Self {
        self.0.source_code = Some(source);
        self.0.span = Some(span);
        self
    }
}

impl From<NvsErrorKind> for NvsError {
    fn from(kind: NvsErrorKind) -> Self {
        Self(Box::new(Inner {
            kind,
            location: None,
            source_code: None,
            span: None,
        }))
    }
}

impl fmt::Display for NvsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.location {
            Some(loc) => write!(f, "{loc}: {}", self.0.kind),
            None => write!(f, "{}", self.0.kind),
        }
    }
}

impl std::error::Error for NvsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0.kind)
    }
}

impl Diagnostic for NvsError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.kind.code()
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.kind.help()
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.0.source_code.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.0.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some("this row".into()),
            span,
        ))))
    }
}
