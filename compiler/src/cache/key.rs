//! Cache keys: a blake3 hash over a versioned, length-prefixed description of an image's inputs.
//!
//! Keys are fed field by field into [`KeyBuilder`], never through `#[derive(Hash)]`: the byte
//! stream is ours, documented in the module docs of [`crate::cache`], and the same on every
//! machine, Rust version and platform.

use std::fmt;

/// Version of the key byte stream. Bump it whenever the description of any job changes or
/// emission starts producing different bytes for the same inputs.
pub const KEY_FORMAT: u32 = 1;

/// A 32-byte blake3 cache key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Lower-case hex: the entry's file name.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.to_hex())
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Builds a [`CacheKey`] from named fields.
///
/// Stream: `"espfleet-cache-key\0"`, [`KEY_FORMAT`] (u32 LE), the compiler version and the job
/// kind as fields, then each field as `u64 LE name length, name, u64 LE value length, value`.
/// Length prefixes make the stream unambiguous: no two field lists give the same bytes.
pub struct KeyBuilder {
    hasher: blake3::Hasher,
    fields: Vec<String>,
}

impl KeyBuilder {
    /// Starts a key for one kind of job (`mfg_nvs`, `pki`, `factory`, ...).
    pub fn new(kind: &str) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"espfleet-cache-key\0");
        hasher.update(&KEY_FORMAT.to_le_bytes());
        let mut b = KeyBuilder {
            hasher,
            fields: Vec::new(),
        };
        b.str("compiler", env!("CARGO_PKG_VERSION"));
        b.str("kind", kind);
        b
    }

    /// Adds a field holding raw bytes (file contents, encoded values).
    pub fn bytes(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.hasher.update(&(name.len() as u64).to_le_bytes());
        self.hasher.update(name.as_bytes());
        self.hasher.update(&(value.len() as u64).to_le_bytes());
        self.hasher.update(value);
        self.fields.push(name.to_owned());
        self
    }

    /// Adds a text field (UTF-8 bytes).
    pub fn str(&mut self, name: &str, value: &str) -> &mut Self {
        self.bytes(name, value.as_bytes())
    }

    /// Adds an integer field (i64 LE).
    pub fn int(&mut self, name: &str, value: i64) -> &mut Self {
        self.bytes(name, &value.to_le_bytes())
    }

    /// Adds a boolean field (one byte, 0 or 1).
    pub fn flag(&mut self, name: &str, value: bool) -> &mut Self {
        self.bytes(name, &[u8::from(value)])
    }

    /// Adds an optional integer: absent is the empty value, present is 8 bytes.
    pub fn opt_int(&mut self, name: &str, value: Option<i64>) -> &mut Self {
        match value {
            Some(v) => self.int(name, v),
            None => self.bytes(name, &[]),
        }
    }

    /// Adds the compact JSON text of a value. Only for small types whose serde form is fixed
    /// by their definition (enums as names, structs with fields in declaration order).
    pub fn json<T: serde::Serialize + ?Sized>(&mut self, name: &str, value: &T) -> &mut Self {
        let text = serde_json::to_vec(value).expect("key fields serialise");
        self.bytes(name, &text)
    }

    /// The names of the fields added so far, in order (for `--explain`-style debugging and
    /// the tests that check paths never enter a key).
    pub fn field_names(&self) -> &[String] {
        &self.fields
    }

    /// The key.
    pub fn finish(&self) -> CacheKey {
        CacheKey(*self.hasher.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixes_keep_fields_apart() {
        let mut a = KeyBuilder::new("t");
        a.str("x", "ab").str("y", "c");
        let mut b = KeyBuilder::new("t");
        b.str("x", "a").str("y", "bc");
        assert_ne!(a.finish(), b.finish());
        let mut c = KeyBuilder::new("t");
        c.str("x", "ab").str("y", "c");
        assert_eq!(a.finish(), c.finish());
    }

    #[test]
    fn kind_is_part_of_the_key() {
        assert_ne!(KeyBuilder::new("a").finish(), KeyBuilder::new("b").finish());
    }
}
