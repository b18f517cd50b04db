//! ESP-AT release versions → the format behaviour that changes between them.
//!
//! The release type itself is [`crate::release::Release`] (shared with the manifest language);
//! this module adds what the format layer needs to know about a release, as one extension
//! trait, so the rest of the compiler asks "which PKI type bytes?" or "which dependency list?"
//! instead of comparing version numbers all over the code.

pub use crate::release::{Era, NvsPages, Release};

use super::dependency::{self, Dependency};
use super::pki::TypeBytes;

/// Which tool makes `factory/factory_<MODULE>.bin` (`docs/formats/esp-at-images.md` §10.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MergeTool {
    /// `tools/esp_at_factory_bin_combine.py` (v2.2.0.0–v4.0.0.0): flash-size buffer, no
    /// SHA-256 recompute.
    CombineScript,
    /// `esptool merge_bin` (v4.1.0.0 and later), padded and unfilled outputs.
    EsptoolMergeBin,
}

pub(crate) fn tag(s: &str) -> Release {
    s.parse()
        .unwrap_or_else(|_| unreachable!("`{s}` is a known release"))
}

/// Format behaviour of an ESP-AT release.
pub trait ReleaseFormats {
    /// The type bytes AtPKI writes for era A PKI partitions (`docs/formats/esp-at-images.md` §5.3): v2.2.0.0–v2.4.0.0
    /// call every file a certificate.
    fn pki_type_bytes(self) -> TypeBytes;
    /// The feature → partition dependency list ESP-AT ships (`docs/formats/esp-at-images.md` §11.1).
    fn dependencies(self) -> &'static [Dependency];
    /// Which tool builds the merged factory image.
    fn merge_tool(self) -> MergeTool;
    /// Whether the combine script knows `60M` (v3.0.0.0+, for ESP32-C2).
    fn combine_knows_60m(self) -> bool;
    /// The NVS trailing-page form of a default build; `None` in era A (no NVS factory data).
    fn nvs_trailing_pages(self) -> Option<NvsPages>;
}

impl ReleaseFormats for Release {
    fn pki_type_bytes(self) -> TypeBytes {
        if self.pki_typed_items() {
            TypeBytes::ByKind
        } else {
            TypeBytes::AllCert
        }
    }

    fn dependencies(self) -> &'static [Dependency] {
        dependency::for_release(self)
    }

    fn merge_tool(self) -> MergeTool {
        if self >= tag("v4.1.0.0") {
            MergeTool::EsptoolMergeBin
        } else {
            MergeTool::CombineScript
        }
    }

    fn combine_knows_60m(self) -> bool {
        self >= tag("v3.0.0.0")
    }

    fn nvs_trailing_pages(self) -> Option<NvsPages> {
        match self.era() {
            Era::A => None,
            Era::B => Some(self.default_nvs_pages()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_specific_behaviour_matches_the_spec() {
        assert_eq!(tag("v2.4.0.0").pki_type_bytes(), TypeBytes::AllCert);
        assert_eq!(tag("v2.2.0.0").pki_type_bytes(), TypeBytes::AllCert);
        assert_eq!(tag("v2.4.1.0").pki_type_bytes(), TypeBytes::ByKind);
        assert_eq!(tag("v3.0.0.0").nvs_trailing_pages(), None);
        assert_eq!(tag("v4.0.0.0").nvs_trailing_pages(), Some(NvsPages::Legacy));
        assert_eq!(tag("master").nvs_trailing_pages(), Some(NvsPages::Active));
        assert_eq!(tag("v4.0.0.0").merge_tool(), MergeTool::CombineScript);
        assert_eq!(tag("v4.1.0.0").merge_tool(), MergeTool::EsptoolMergeBin);
        assert!(!tag("v2.4.2.0").combine_knows_60m());
        assert!(tag("v3.0.0.0").combine_knows_60m());
    }
}
