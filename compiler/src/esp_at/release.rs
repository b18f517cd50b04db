//! ESP-AT release versions and the behaviour that depends on them.
//!
//! ESP-AT changed its factory-data formats several times (spec section 0). Every such change is
//! one method here, so the rest of the compiler asks "does this release have `sys_store`?"
//! instead of comparing version numbers all over the code.

use std::fmt;
use std::str::FromStr;

use super::dependency::{self, Dependency};
use super::pki::TypeBytes;

/// An ESP-AT release: a tag `vA.B.C.D` or the development branch `master`.
///
/// Ordering follows release order; `master` (after v5.0.1.0) sorts after every tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Release {
    /// A tagged release `v<major>.<minor>.<patch>.<build>` (suffixes such as `_esp32` dropped).
    Tag(u8, u8, u8, u8),
    /// The `master` branch (snapshot b49e4b98 of 2026-07-24 in the spec).
    Master,
}

/// How a release stores factory data (spec section 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Era {
    /// v2.0.0.0–v2.1.0.0: raw partitions, shell-script generators (typed PKI bytes).
    A0,
    /// v2.2.0.0–v3.0.0.0: one raw partition per item (`factory_param`, `server_cert`, ...).
    A,
    /// v3.1.0.0 and later: one NVS partition `mfg_nvs`.
    B,
}

/// How the NVS generator fills the pages after the last used one (spec 8.2).
///
/// Mirrors the NVS encoder's option; kept here so release data does not depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NvsTrailingPages {
    /// Every unused page gets a Full header (IDF ≤ v5.1 in-tree script, package ≤ 0.1.6,
    /// `tools/at.py`).
    Legacy,
    /// The last used page stays Active and later pages are erased (package ≥ 0.1.7).
    Active,
}

/// Which tool makes `factory/factory_<MODULE>.bin` (spec 10.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MergeTool {
    /// `tools/esp_at_factory_bin_combine.py` (v2.2.0.0–v4.0.0.0): flash-size buffer, no
    /// SHA-256 recompute.
    CombineScript,
    /// `esptool merge_bin` (v4.1.0.0 and later), padded and unfilled outputs.
    EsptoolMergeBin,
}

impl Release {
    /// The oldest release espfleet knows the formats of.
    pub const OLDEST: Release = Release::Tag(2, 0, 0, 0);

    /// Which storage era the release belongs to.
    pub fn era(self) -> Era {
        if self < Release::Tag(2, 2, 0, 0) {
            Era::A0
        } else if self < Release::Tag(3, 1, 0, 0) {
            Era::A
        } else {
            Era::B
        }
    }

    /// The type bytes AtPKI writes for the PKI partitions (spec 5.3): v2.2.0.0–v2.4.0.0
    /// call every file a certificate.
    pub fn pki_type_bytes(self) -> TypeBytes {
        if self >= Release::Tag(2, 2, 0, 0) && self <= Release::Tag(2, 4, 0, 0) {
            TypeBytes::AllCert
        } else {
            TypeBytes::ByKind
        }
    }

    /// Whether the era B `factory_param` namespace has the `sys_store` key (v4.1.0.0+).
    pub fn has_sys_store(self) -> bool {
        self >= Release::Tag(4, 1, 0, 0)
    }

    /// The NVS trailing-page form a default build of this release produces.
    ///
    /// v3.1.0.0–v4.0.0.0 use IDF's in-tree generator (legacy). From v4.1.0.0 IDF runs the PyPI
    /// package, whose version depends on the install (spec 13); we assume a current one
    /// (≥ 0.1.7, Active). `None` for era A, which has no NVS factory data.
    pub fn nvs_trailing_pages(self) -> Option<NvsTrailingPages> {
        match self.era() {
            Era::A0 | Era::A => None,
            Era::B if self < Release::Tag(4, 1, 0, 0) => Some(NvsTrailingPages::Legacy),
            Era::B => Some(NvsTrailingPages::Active),
        }
    }

    /// The feature → partition dependency list of this release (spec 11.1).
    pub fn dependencies(self) -> &'static [Dependency] {
        dependency::for_release(self)
    }

    /// Name of the filesystem partition and its dependency entry: `fatfs`, or `fs_storage`
    /// on master.
    pub fn filesystem_partition(self) -> &'static str {
        if self == Release::Master {
            "fs_storage"
        } else {
            "fatfs"
        }
    }

    /// Prefix of the enterprise Wi-Fi PKI namespaces: `wpa2` (`wpa2_ca`, ...), or `wpa_ent`
    /// on master (which can map back to `wpa2_*` with `AT_EAP_LEGACY_NAMESPACE_SUPPORT`).
    pub fn eap_prefix(self) -> &'static str {
        if self == Release::Master {
            "wpa_ent"
        } else {
            "wpa2"
        }
    }

    /// Which tool builds the merged factory image.
    pub fn merge_tool(self) -> MergeTool {
        if self >= Release::Tag(4, 1, 0, 0) {
            MergeTool::EsptoolMergeBin
        } else {
            MergeTool::CombineScript
        }
    }

    /// Whether the combine script recognises `60M` (v3.0.0.0+, for ESP32-C2).
    pub fn combine_knows_60m(self) -> bool {
        self >= Release::Tag(3, 0, 0, 0)
    }

    /// Whether era A `ble_data.bin` generation is available (era A only; era B uses `cfgN`).
    pub fn has_ble_data_bin(self) -> bool {
        matches!(self.era(), Era::A0 | Era::A)
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Release::Tag(a, b, c, d) => write!(f, "v{a}.{b}.{c}.{d}"),
            Release::Master => f.write_str("master"),
        }
    }
}

/// A release name that is not `master` or `vA.B.C.D`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("`{0}` is not an ESP-AT release")]
#[diagnostic(
    code(espfleet::esp_at::release_unknown),
    help("write a release tag such as `v4.1.1.0` or `v2.2.0.0_esp32`, or `master`")
)]
pub struct UnknownRelease(pub String);

impl FromStr for Release {
    type Err = UnknownRelease;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || UnknownRelease(s.to_owned());
        let t = s.trim();
        if t.eq_ignore_ascii_case("master") {
            return Ok(Release::Master);
        }
        let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
        // Tags such as v2.2.0.0_esp32c3 carry a chip suffix.
        let t = t.split_once('_').map_or(t, |(v, _)| v);
        let parts: Vec<u8> = t
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        match parts[..] {
            [a, b, c, d] => Ok(Release::Tag(a, b, c, d)),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Release {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_orders_releases() {
        assert_eq!(r("v2.2.0.0_esp32c3"), Release::Tag(2, 2, 0, 0));
        assert_eq!(r("master"), Release::Master);
        assert!(r("v4.1.1.0") < Release::Master);
        assert!(r("v2.4.1.0") > r("v2.4.0.0"));
        assert!("v4.1".parse::<Release>().is_err());
        assert_eq!(r("v3.0.0.0").to_string(), "v3.0.0.0");
    }

    #[test]
    fn version_specific_behaviour_matches_the_spec() {
        assert_eq!(r("v2.1.0.0").era(), Era::A0);
        assert_eq!(r("v3.0.0.0").era(), Era::A);
        assert_eq!(r("v3.1.0.0").era(), Era::B);
        assert_eq!(r("v2.4.0.0").pki_type_bytes(), TypeBytes::AllCert);
        assert_eq!(r("v2.2.0.0").pki_type_bytes(), TypeBytes::AllCert);
        assert_eq!(r("v2.4.1.0").pki_type_bytes(), TypeBytes::ByKind);
        assert_eq!(r("v2.1.0.0").pki_type_bytes(), TypeBytes::ByKind);
        assert!(!r("v4.0.0.0").has_sys_store());
        assert!(r("v4.1.0.0").has_sys_store());
        assert_eq!(r("v3.0.0.0").nvs_trailing_pages(), None);
        assert_eq!(
            r("v4.0.0.0").nvs_trailing_pages(),
            Some(NvsTrailingPages::Legacy)
        );
        assert_eq!(
            Release::Master.nvs_trailing_pages(),
            Some(NvsTrailingPages::Active)
        );
        assert_eq!(Release::Master.filesystem_partition(), "fs_storage");
        assert_eq!(r("v5.0.1.0").eap_prefix(), "wpa2");
        assert_eq!(r("v4.0.0.0").merge_tool(), MergeTool::CombineScript);
        assert_eq!(r("v4.1.0.0").merge_tool(), MergeTool::EsptoolMergeBin);
    }
}
