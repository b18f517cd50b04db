//! The encoder: the generator's placement algorithm (`docs/formats/nvs.md` §5), fed through
//! [`NvsBuilder`] one namespace or entry at a time.

use std::collections::HashMap;

use super::entry::{self, CHUNK_ANY, ItemType};
use super::error::{Location, NvsError, NvsErrorKind};
use super::page::{self, PAGE_SIZE, PageState, SLOT_SIZE, SLOTS_PER_PAGE};
use super::{NvsEntry, Options, TrailingPages, Value, Version};

/// Largest key or namespace name, in bytes (16-byte field incl. NUL).
pub const MAX_KEY_LEN: usize = 15;

/// The largest NVS partition accepted: the largest flash size there is
/// ([`crate::target::FlashSize::KNOWN`], 128 MB). The Python generator has no bound and
/// allocates whatever SIZE says; espfleet refuses before allocating.
pub const MAX_PARTITION_SIZE: u64 = 128 * 1024 * 1024;

/// Builds an NVS image the way `esp-idf-nvs-partition-gen` 0.3.0 does, one call per CSV row.
///
/// Entries always go into the most recently *created* namespace (or index 0 before the
/// first one), and naming an existing namespace again writes nothing and does not switch
/// back — exactly the generator's behaviour. Errors carry the 0-based index of the call.
#[derive(Debug)]
pub struct NvsBuilder {
    options: Options,
    read_only: bool,
    pages_left: usize,
    image: Vec<u8>,
    used: usize,
    namespace_count: usize,
    namespaces: HashMap<String, u8>,
    newest_namespace: Option<String>,
    calls: usize,
}

impl NvsBuilder {
    /// Starts an image: checks the size and creates page 0.
    pub fn new(options: Options) -> Result<Self, NvsError> {
        let size = options.size;
        if size % PAGE_SIZE as u64 != 0 {
            return Err(NvsErrorKind::SizeNotMultiple {
                size: i128::from(size),
            }
            .into());
        }
        if size < PAGE_SIZE as u64 {
            return Err(NvsErrorKind::SizeTooSmall {
                size: i128::from(size),
                min: PAGE_SIZE as u64,
            }
            .into());
        }
        // Bounded before the image is allocated (`Vec::with_capacity` below).
        if size > MAX_PARTITION_SIZE {
            return Err(NvsErrorKind::SizeTooLarge {
                size,
                max: MAX_PARTITION_SIZE,
            }
            .into());
        }
        let pages = usize::try_from(size / PAGE_SIZE as u64)
            .map_err(|_| NvsErrorKind::DataTooLarge { size })?;
        let read_only = pages < 3;
        if read_only && options.trailing == TrailingPages::Legacy {
            return Err(NvsErrorKind::LegacyReadOnly { size }.into());
        }
        let mut builder = Self {
            options,
            read_only,
            pages_left: if read_only { pages } else { pages - 1 },
            // finish() grows the image to the full size anyway: allocate once.
            image: Vec::with_capacity(pages * PAGE_SIZE),
            used: 0,
            namespace_count: 0,
            namespaces: HashMap::new(),
            newest_namespace: None,
            calls: 0,
        };
        builder.new_page().map_err(NvsError::from)?;
        Ok(builder)
    }

    /// The options this image is built with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Whether the size makes a read-only image (0x1000 or 0x2000: no reserved page, and only
    /// the used pages are output).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Index the next data entry will get: the number of namespaces created so far.
    pub fn current_namespace_index(&self) -> u8 {
        u8::try_from(self.namespace_count).unwrap_or(u8::MAX)
    }

    /// Name of the most recently created namespace.
    pub fn current_namespace(&self) -> Option<&str> {
        self.newest_namespace.as_deref()
    }

    /// Whether a namespace of this name has been created.
    pub fn has_namespace(&self, name: &str) -> bool {
        self.namespaces.contains_key(name)
    }

    /// A `namespace` row: creates the namespace, or does nothing if it exists.
    pub fn namespace(&mut self, name: &str) -> Result<(), NvsError> {
        let at = self.next_call();
        self.namespace_inner(name).map_err(|k| k.at(at))
    }

    /// A data row: writes `value` under `key` in the current namespace.
    pub fn entry(&mut self, key: &str, value: &Value) -> Result<(), NvsError> {
        let at = self.next_call();
        self.entry_inner(key, value).map_err(|k| k.at(at))
    }

    /// Finishes the image: trailing pages per [`TrailingPages`], then the reserved page.
    pub fn finish(mut self) -> Vec<u8> {
        if self.read_only {
            return self.image;
        }
        let size = usize::try_from(self.options.size).expect("checked in new");
        if self.options.trailing == TrailingPages::Legacy {
            // Old generators kept creating pages until the budget ran out; each creation
            // (and the final failed one) marked the previous page FULL.
            while self.new_page().is_ok() {}
        }
        self.image.resize(size, 0xFF);
        self.image
    }

    fn next_call(&mut self) -> Location {
        let at = Location::Entry(self.calls);
        self.calls += 1;
        at
    }

    pub(crate) fn namespace_inner(&mut self, name: &str) -> Result<(), NvsErrorKind> {
        check_key(name)?;
        if self.namespaces.contains_key(name) {
            return Ok(());
        }
        let index = self.namespace_count + 1;
        let Ok(byte) = u8::try_from(index) else {
            return Err(NvsErrorKind::TooManyNamespaces {
                name: name.to_owned(),
                index,
            });
        };
        self.namespace_count = index;
        self.write_primitive(0, name.as_bytes(), ItemType::U8, &[byte])?;
        self.namespaces.insert(name.to_owned(), byte);
        self.newest_namespace = Some(name.to_owned());
        Ok(())
    }

    pub(crate) fn entry_inner(&mut self, key: &str, value: &Value) -> Result<(), NvsErrorKind> {
        check_key(key)?;
        let ns = self.current_namespace_index();
        let k = key.as_bytes();
        match value {
            Value::U8(v) => self.write_primitive(ns, k, ItemType::U8, &v.to_le_bytes()),
            Value::I8(v) => self.write_primitive(ns, k, ItemType::I8, &v.to_le_bytes()),
            Value::U16(v) => self.write_primitive(ns, k, ItemType::U16, &v.to_le_bytes()),
            Value::I16(v) => self.write_primitive(ns, k, ItemType::I16, &v.to_le_bytes()),
            Value::U32(v) => self.write_primitive(ns, k, ItemType::U32, &v.to_le_bytes()),
            Value::I32(v) => self.write_primitive(ns, k, ItemType::I32, &v.to_le_bytes()),
            Value::U64(v) => self.write_primitive(ns, k, ItemType::U64, &v.to_le_bytes()),
            Value::I64(v) => self.write_primitive(ns, k, ItemType::I64, &v.to_le_bytes()),
            Value::Str(s) => {
                let mut payload = Vec::with_capacity(s.len() + 1);
                payload.extend_from_slice(s.as_bytes());
                payload.push(0);
                self.write_varlen(ns, key, &payload, false)
            }
            Value::RawStr(bytes) => self.write_varlen(ns, key, bytes, false),
            Value::Blob(bytes) => self.write_varlen(ns, key, bytes, true),
        }
    }

    fn current_page(&mut self) -> &mut [u8] {
        let start = self.image.len() - PAGE_SIZE;
        &mut self.image[start..]
    }

    /// Marks the current page FULL (if ACTIVE) and opens the next one, if the budget allows.
    fn new_page(&mut self) -> Result<(), NvsErrorKind> {
        if !self.image.is_empty() {
            let page = self.current_page();
            if page::state(page) == PageState::Active {
                page::set_state(page, PageState::Full);
            }
        }
        if self.pages_left == 0 {
            return Err(NvsErrorKind::DataTooLarge {
                size: self.options.size,
            });
        }
        self.pages_left -= 1;
        let seq = u32::try_from(self.image.len() / PAGE_SIZE).expect("page count fits u32");
        self.image.resize(self.image.len() + PAGE_SIZE, 0xFF);
        let version = self.options.version;
        page::write_header(self.current_page(), seq, version);
        self.used = 0;
        Ok(())
    }

    fn put_slot(&mut self, entry: &[u8; 32]) {
        let slot = self.used;
        let page = self.current_page();
        let off = page::slot_offset(slot);
        page[off..off + SLOT_SIZE].copy_from_slice(entry);
        page::mark_written(page, slot);
        self.used += 1;
    }

    fn put_payload(&mut self, data: &[u8]) {
        let slots = data.len().div_ceil(SLOT_SIZE);
        let first = self.used;
        let page = self.current_page();
        let off = page::slot_offset(first);
        page[off..off + data.len()].copy_from_slice(data);
        for slot in first..first + slots {
            page::mark_written(page, slot);
        }
        self.used += slots;
    }

    fn write_primitive(
        &mut self,
        ns: u8,
        key: &[u8],
        ty: ItemType,
        le: &[u8],
    ) -> Result<(), NvsErrorKind> {
        if self.used >= SLOTS_PER_PAGE {
            self.new_page()?;
        }
        let mut e = entry::header(ns, ty, 1, CHUNK_ANY, key);
        e[24..24 + le.len()].copy_from_slice(le);
        entry::seal(&mut e);
        self.put_slot(&e);
        Ok(())
    }

    fn write_varlen(
        &mut self,
        ns: u8,
        key: &str,
        data: &[u8],
        blob: bool,
    ) -> Result<(), NvsErrorKind> {
        let version = self.options.version;
        let len = data.len();
        let multipage = version == Version::V2 && blob;
        let max = match version {
            Version::V1 => 1984,
            Version::V2 => 4000,
        };
        if !multipage && len > max {
            return Err(NvsErrorKind::ValueTooLong {
                key: key.to_owned(),
                len,
                max,
            });
        }
        let span = 1 + len.div_ceil(SLOT_SIZE);
        let mut retried = false;
        while self.used >= SLOTS_PER_PAGE || (!multipage && self.used + span >= SLOTS_PER_PAGE) {
            if retried {
                return Err(NvsErrorKind::StringDoesNotFit {
                    key: key.to_owned(),
                    len,
                });
            }
            self.new_page()?;
            retried = true;
        }
        let key_bytes = key.as_bytes();
        if multipage {
            return self.write_multipage_blob(ns, key, data);
        }
        let ty = if blob { ItemType::Blob } else { ItemType::Str };
        let mut e = entry::header(
            ns,
            ty,
            u8::try_from(span).expect("span ≤ 126"),
            CHUNK_ANY,
            key_bytes,
        );
        e[24..26].copy_from_slice(&u16::try_from(len).expect("len ≤ 4000").to_le_bytes());
        e[28..32].copy_from_slice(&super::crc::crc32(data).to_le_bytes());
        entry::seal(&mut e);
        self.put_slot(&e);
        self.put_payload(data);
        Ok(())
    }

    fn write_multipage_blob(&mut self, ns: u8, key: &str, data: &[u8]) -> Result<(), NvsErrorKind> {
        let key_bytes = key.as_bytes();
        let mut offset = 0;
        let mut chunks = 0usize;
        loop {
            let tailroom = (SLOTS_PER_PAGE - self.used - 1) * SLOT_SIZE;
            let chunk_len = tailroom.min(data.len() - offset);
            let chunk = &data[offset..offset + chunk_len];
            let Ok(index) = u8::try_from(chunks) else {
                return Err(NvsErrorKind::BlobTooLarge {
                    key: key.to_owned(),
                });
            };
            let span = u8::try_from(1 + chunk_len.div_ceil(SLOT_SIZE)).expect("span ≤ 126");
            let mut e = entry::header(ns, ItemType::BlobData, span, index, key_bytes);
            e[24..26].copy_from_slice(
                &u16::try_from(chunk_len)
                    .expect("chunk ≤ 4000")
                    .to_le_bytes(),
            );
            e[28..32].copy_from_slice(&super::crc::crc32(chunk).to_le_bytes());
            entry::seal(&mut e);
            self.put_slot(&e);
            self.put_payload(chunk);
            chunks += 1;
            offset += chunk_len;
            let remaining = data.len() - offset;
            if remaining > 0 || tailroom - chunk_len < SLOT_SIZE {
                self.new_page()?;
            }
            if remaining == 0 {
                let Ok(count) = u8::try_from(chunks) else {
                    return Err(NvsErrorKind::BlobTooLarge {
                        key: key.to_owned(),
                    });
                };
                let mut e = entry::header(ns, ItemType::BlobIdx, 1, CHUNK_ANY, key_bytes);
                let total = u32::try_from(data.len()).map_err(|_| NvsErrorKind::BlobTooLarge {
                    key: key.to_owned(),
                })?;
                e[24..28].copy_from_slice(&total.to_le_bytes());
                e[28] = count;
                e[29] = 0;
                entry::seal(&mut e);
                self.put_slot(&e);
                return Ok(());
            }
        }
    }
}

/// Checks a key or namespace name: at most 15 characters (as the generator counts), ASCII.
pub(crate) fn check_key(key: &str) -> Result<(), NvsErrorKind> {
    if key.len() <= MAX_KEY_LEN && key.is_ascii() {
        return Ok(());
    }
    let chars = key.chars().count();
    if chars > MAX_KEY_LEN {
        return Err(NvsErrorKind::KeyTooLong {
            key: key.to_owned(),
            len: chars,
        });
    }
    if !key.is_ascii() {
        return Err(NvsErrorKind::KeyNotAscii {
            key: key.to_owned(),
        });
    }
    Ok(())
}

/// Encodes `entries` in order into an image. A namespace row is written whenever an entry's
/// namespace differs from the current one; going back to an older namespace is an error
/// (the generator cannot express it). Errors carry the index into `entries`.
pub fn encode(entries: &[NvsEntry], options: &Options) -> Result<Vec<u8>, NvsError> {
    let mut builder = NvsBuilder::new(options.clone())?;
    for (i, e) in entries.iter().enumerate() {
        let at = Location::Entry(i);
        if builder.current_namespace() != Some(e.namespace.as_str()) {
            if builder.has_namespace(&e.namespace) {
                return Err(NvsErrorKind::NamespaceNotCurrent {
                    key: e.key.clone(),
                    namespace: e.namespace.clone(),
                }
                .at(at));
            }
            builder
                .namespace_inner(&e.namespace)
                .map_err(|k| k.at(at.clone()))?;
        }
        builder
            .entry_inner(&e.key, &e.value)
            .map_err(|k| k.at(at))?;
    }
    Ok(builder.finish())
}
