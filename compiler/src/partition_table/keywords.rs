//! Type and subtype keywords (`app`, `data`, `nvs`, `ota_0`, ...), including the ones added with
//! `--extra-partition-subtypes`.

use super::csv_text::{parse_hex_int, py_strip};
use super::error::PartitionError;

/// Partition type `app`.
pub const TYPE_APP: u8 = 0x00;
/// Partition type `data`.
pub const TYPE_DATA: u8 = 0x01;
/// Partition type `bootloader` (IDF 5.4+).
pub const TYPE_BOOTLOADER: u8 = 0x02;
/// Partition type `partition_table` (IDF 5.4+).
pub const TYPE_PARTITION_TABLE: u8 = 0x03;

/// Type keywords in gen_esp32part.py's dictionary order (which decides the CSV it prints).
const TYPE_KEYWORDS: [(&str, u8); 4] = [
    ("bootloader", TYPE_BOOTLOADER),
    ("partition_table", TYPE_PARTITION_TABLE),
    ("app", TYPE_APP),
    ("data", TYPE_DATA),
];

/// The keyword tables a table is read and printed with.
///
/// Lookups are case-insensitive; the order of the entries matters when printing a CSV (the
/// first keyword with a matching value wins), so it follows the Python dictionaries exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keywords {
    /// Subtype tables of the four built-in types, indexed by type value.
    subtypes: [Vec<(String, u8)>; 4],
    /// The type table as `(keyword, value)` pairs (fixed, but stored for uniform lookups).
    types: Vec<(String, u8)>,
}

impl Default for Keywords {
    fn default() -> Self {
        Self::esp_idf()
    }
}

fn table(entries: &[(&str, u8)]) -> Vec<(String, u8)> {
    entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

impl Keywords {
    /// The keywords of gen_esp32part.py 1.5 (ESP-IDF v5.4 and later).
    pub fn esp_idf() -> Self {
        let mut app = table(&[("factory", 0x00), ("test", 0x20)]);
        for slot in 0..16u8 {
            app.push((format!("ota_{slot}"), 0x10 + slot));
        }
        app.push(("tee_0".to_owned(), 0x30));
        app.push(("tee_1".to_owned(), 0x31));
        let data = table(&[
            ("ota", 0x00),
            ("phy", 0x01),
            ("nvs", 0x02),
            ("coredump", 0x03),
            ("nvs_keys", 0x04),
            ("efuse", 0x05),
            ("undefined", 0x06),
            ("esphttpd", 0x80),
            ("fat", 0x81),
            ("spiffs", 0x82),
            ("littlefs", 0x83),
            ("tee_ota", 0x90),
        ]);
        let bootloader = table(&[("primary", 0x00), ("ota", 0x01), ("recovery", 0x02)]);
        let partition_table = table(&[("primary", 0x00), ("ota", 0x01)]);
        Keywords {
            subtypes: [app, data, bootloader, partition_table],
            types: table(&TYPE_KEYWORDS),
        }
    }

    /// Adds one `--extra-partition-subtypes` entry, `"type,name,value"` with the value in hex,
    /// with the tool's rules: the type must be one of the four type keywords (exact case), the
    /// value must not already be used in that type, and an existing name is re-assigned.
    pub fn add_extra(&mut self, spec: &str) -> Result<(), PartitionError> {
        let invalid = |reason: &str, crash: bool| PartitionError::ExtraSubtypeInvalid {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
            crash,
        };
        let fields: Vec<&str> = spec.split(',').map(py_strip).collect();
        if fields.len() < 3 {
            return Err(invalid("expected \"type,name,value\"", true));
        }
        let value = parse_hex_int(fields[2])
            .ok_or_else(|| invalid("the value is not a hex number", true))?;
        let type_value = TYPE_KEYWORDS
            .iter()
            .find(|(k, _)| *k == fields[0])
            .map(|(_, v)| *v);
        // The tool checks every type table holding the value, resolving the type name only then.
        for (ty, entries) in self.subtypes.iter().enumerate() {
            if entries.iter().any(|(_, v)| i128::from(*v) == value) {
                match type_value {
                    None => return Err(invalid("invalid partition type", false)),
                    Some(t) if usize::from(t) == ty => {
                        return Err(invalid(
                            "the value is already used by a subtype of this type",
                            true,
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        let Some(ty) = type_value else {
            return Err(invalid("unknown partition type", true));
        };
        let value =
            u8::try_from(value).map_err(|_| invalid("the value does not fit in a byte", true))?;
        let entries = &mut self.subtypes[usize::from(ty)];
        match entries.iter_mut().find(|(k, _)| k == fields[1]) {
            Some(entry) => entry.1 = value,
            None => entries.push((fields[1].to_owned(), value)),
        }
        Ok(())
    }

    /// The type keywords as `(keyword, value)` pairs.
    pub(crate) fn types(&self) -> &[(String, u8)] {
        &self.types
    }

    /// The subtype keywords of a type (empty for custom types).
    pub(crate) fn subtypes_of(&self, ty: i128) -> &[(String, u8)] {
        usize::try_from(ty)
            .ok()
            .and_then(|t| self.subtypes.get(t))
            .map_or(&[], Vec::as_slice)
    }

    /// The value of a type keyword (case-insensitive).
    pub fn type_value(&self, keyword: &str) -> Option<u8> {
        let lower = keyword.to_lowercase();
        self.types
            .iter()
            .find(|(k, _)| *k == lower)
            .map(|(_, v)| *v)
    }

    /// The value of a subtype keyword of type `ty` (case-insensitive).
    pub fn subtype_value(&self, ty: u8, keyword: &str) -> Option<u8> {
        let lower = keyword.to_lowercase();
        self.subtypes_of(i128::from(ty))
            .iter()
            .find(|(k, _)| *k == lower)
            .map(|(_, v)| *v)
    }

    /// The keyword printed for a type value, if it has one.
    pub fn type_name(&self, ty: u8) -> Option<&str> {
        self.types
            .iter()
            .find(|(_, v)| *v == ty)
            .map(|(k, _)| k.as_str())
    }

    /// The keyword printed for a subtype value of type `ty`, if it has one.
    pub fn subtype_name(&self, ty: u8, subtype: u8) -> Option<&str> {
        self.subtypes_of(i128::from(ty))
            .iter()
            .find(|(_, v)| *v == subtype)
            .map(|(k, _)| k.as_str())
    }

    /// The subtype value a keyword of a built-in type has, as an `i128` for comparisons.
    pub(crate) fn builtin(&self, ty: u8, keyword: &str) -> Option<i128> {
        self.subtypes_of(i128::from(ty))
            .iter()
            .find(|(k, _)| k == keyword)
            .map(|(_, v)| i128::from(*v))
    }

    /// Whether a name is any subtype keyword (exact case), for the naming warning.
    pub(crate) fn is_any_subtype_keyword(&self, name: &str) -> bool {
        self.subtypes.iter().flatten().any(|(k, _)| k == name)
    }

    /// The subtype a keyword (exact case) has in type `ty`, for the naming warning.
    pub(crate) fn exact_subtype(&self, ty: i128, name: &str) -> Option<u8> {
        self.subtypes_of(ty)
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }
}
