//! ESP-AT releases: which tags exist and what each implies for the images (storage era,
//! type bytes, NVS trailing pages, partition names). See `docs/formats/esp-at-images.md` §0.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// An ESP-AT release tag such as `v4.1.1.0`, or `master`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Release {
    /// `(a, b, c, d)` for `va.b.c.d`; `master` sorts after every tag.
    key: [u16; 4],
}

/// How ESP-AT stores factory data in a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Era {
    /// v2.2.0.0 – v3.0.0.0: one raw partition per item (`factory_param.bin`, PKI bins, `ble_data.bin`).
    A,
    /// v3.1.0.0 and later: one NVS partition, `mfg_nvs`.
    B,
}

/// Which trailing-page form an NVS image has (`docs/formats/esp-at-images.md` §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum NvsPages {
    /// Every non-reserved page has a Full header (ESP-IDF ≤ 5.1, generator ≤ 0.1.6, `at.py`).
    Legacy,
    /// The last data page stays Active; later pages are erased (generator ≥ 0.1.7).
    Active,
}

/// The release tags espfleet knows, oldest first.
pub const KNOWN: &[&str] = &[
    "v2.2.0.0", "v2.3.0.0", "v2.4.0.0", "v2.4.1.0", "v2.4.2.0", "v3.0.0.0", "v3.1.0.0", "v3.2.0.0",
    "v3.3.0.0", "v3.4.0.0", "v4.0.0.0", "v4.1.0.0", "v4.1.1.0", "v5.0.0.0", "v5.0.1.0", "master",
];

/// A release tag that is not in [`KNOWN`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ESP-AT release `{0}`")]
pub struct UnknownRelease(pub String);

impl FromStr for Release {
    type Err = UnknownRelease;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        // Tags like `v2.2.0.0_esp32` name the same release for one chip.
        let base = t.split('_').next().unwrap_or(t);
        if !KNOWN.contains(&base) {
            return Err(UnknownRelease(s.to_owned()));
        }
        Ok(Release::parse_known(base))
    }
}

impl Release {
    fn parse_known(tag: &str) -> Release {
        if tag == "master" {
            return Release { key: [u16::MAX; 4] };
        }
        let mut key = [0u16; 4];
        for (i, part) in tag.trim_start_matches('v').split('.').take(4).enumerate() {
            key[i] = part.parse().unwrap_or(0);
        }
        Release { key }
    }

    /// The storage era.
    pub fn era(self) -> Era {
        if self < Release::parse_known("v3.1.0.0") {
            Era::A
        } else {
            Era::B
        }
    }

    /// True for `master`.
    pub fn is_master(self) -> bool {
        self.key == [u16::MAX; 4]
    }

    /// Era A PKI bins: v2.2.0.0 – v2.4.0.0 write type 0x02 for every item; v2.4.1.0 and later
    /// write CA 0x01, certificate 0x02, key 0x03 (`docs/formats/esp-at-images.md` §5.3).
    pub fn pki_typed_items(self) -> bool {
        self >= Release::parse_known("v2.4.1.0")
    }

    /// The factory_param namespace has `sys_store` from v4.1.0.0 on (`docs/formats/esp-at-images.md` §8.1).
    pub fn has_sys_store(self) -> bool {
        self >= Release::parse_known("v4.1.0.0")
    }

    /// HTTPS and WSS certificates exist from v4.1.0.0 on.
    pub fn has_https_wss(self) -> bool {
        self >= Release::parse_known("v4.1.0.0")
    }

    /// The NVS trailing-page form the release's own build writes by default: legacy up to
    /// v4.0.0.0 (ESP-IDF 5.0/5.1 in-tree generator); `Active` from v4.1.0.0 (PyPI generator
    /// ≥ 0.1.7). Manifests can override it (`esp-at "v4.1.1.0" nvs-pages="legacy"`).
    pub fn default_nvs_pages(self) -> NvsPages {
        if self >= Release::parse_known("v4.1.0.0") {
            NvsPages::Active
        } else {
            NvsPages::Legacy
        }
    }

    /// On master the EAP namespaces are `wpa_ent_*`; before, `wpa2_*`.
    pub fn eap_prefix(self) -> &'static str {
        if self.is_master() { "wpa_ent" } else { "wpa2" }
    }

    /// On master the filesystem partition is `fs_storage`; before, `fatfs`.
    pub fn fs_partition(self) -> &'static str {
        if self.is_master() {
            "fs_storage"
        } else {
            "fatfs"
        }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_master() {
            f.write_str("master")
        } else {
            let [a, b, c, d] = self.key;
            write!(f, "v{a}.{b}.{c}.{d}")
        }
    }
}

impl Serialize for Release {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eras_and_order() {
        let r = |s: &str| s.parse::<Release>().unwrap();
        assert_eq!(r("v3.0.0.0").era(), Era::A);
        assert_eq!(r("v3.1.0.0").era(), Era::B);
        assert_eq!(r("master").era(), Era::B);
        assert!(r("v2.4.0.0") < r("v2.4.1.0"));
        assert!(!r("v2.4.0.0").pki_typed_items());
        assert!(r("v2.4.1.0").pki_typed_items());
        assert_eq!(r("v2.2.0.0_esp32"), r("v2.2.0.0"));
        assert_eq!(r("v4.0.0.0").default_nvs_pages(), NvsPages::Legacy);
        assert_eq!(r("v4.1.1.0").default_nvs_pages(), NvsPages::Active);
        assert!("v9.9.9.9".parse::<Release>().is_err());
        for k in KNOWN {
            assert_eq!(r(k).to_string(), *k);
        }
    }
}
