//! Which ESP-AT features need which factory-data items (`docs/formats/esp-at-images.md` §1.2 and §11).
//!
//! ESP-AT's build reads a dependency list (`AT_partition_dependency` in era A,
//! `at_customized_config_dependency.txt` in era B) of `<KCONFIG_SYMBOL>=y <name>` lines. A line is
//! enabled when `CONFIG_<SYMBOL>=y` is in `sdkconfig`; its name is generated, in file order. In
//! era A every name is a raw partition that must exist in `at_customize.csv` (a missing one
//! silently breaks ESP-AT's build); in era B only `mfg_nvs` and the filesystem are partitions
//! and the other names select NVS namespaces.
//!
//! The lists are data here (copied from the reference files, `tests/esp_at_dependency.rs`
//! compares them), so the compiler can check a manifest before building anything.

use std::collections::BTreeSet;

use super::release::{Era, Release, tag};

/// One line of a dependency file: `<symbol>=y <name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dependency {
    /// Kconfig symbol without the `CONFIG_` prefix (`AT_BLE_COMMAND_SUPPORT`).
    pub symbol: &'static str,
    /// Partition or raw-data directory name (`ble_data`, `server_cert`, `mfg_nvs`).
    pub name: &'static str,
}

const fn d(symbol: &'static str, name: &'static str) -> Dependency {
    Dependency { symbol, name }
}

/// `AT_partition_dependency`, v2.1.0.0–v3.0.0.0 (v2.0.0.0 used `AT_MQTT_COMMAND_SUPPORT` for
/// the MQTT items; espfleet starts at v2.2.0.0).
const ERA_A: &[Dependency] = &[
    d("AT_BLE_COMMAND_SUPPORT", "ble_data"),
    d("AT_FS_COMMAND_SUPPORT", "fatfs"),
    d("AT_SSL_SERVER_CLIENT_AUTH_SERVER", "server_cert"),
    d("AT_SSL_SERVER_CLIENT_AUTH_SERVER", "server_key"),
    d("AT_SSL_SERVER_SERVER_AUTH_CLIENT", "server_ca"),
    d("AT_SSL_CLIENT_SERVER_AUTH_CLIENT", "client_cert"),
    d("AT_SSL_CLIENT_SERVER_AUTH_CLIENT", "client_key"),
    d("AT_SSL_CLIENT_CLIENT_AUTH_SERVER", "client_ca"),
    d("AT_EAP_COMMAND_SUPPORT", "wpa2_cert"),
    d("AT_EAP_COMMAND_SUPPORT", "wpa2_key"),
    d("AT_EAP_COMMAND_SUPPORT", "wpa2_ca"),
    d("AT_MQTT_BROKER_AUTH_CLIENT", "mqtt_cert"),
    d("AT_MQTT_BROKER_AUTH_CLIENT", "mqtt_key"),
    d("AT_MQTT_CLIENT_AUTH_BROKER", "mqtt_ca"),
    d("AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT", "factory_param"),
];

/// `at_customized_config_dependency.txt`, v3.1.0.0–v4.0.0.0.
const ERA_B_V3: &[Dependency] = &[
    d("AT_BLE_COMMAND_SUPPORT", "ble_data"),
    d("AT_FS_COMMAND_SUPPORT", "fatfs"),
    d("AT_SSL_SERVER_CLIENT_AUTH_SERVER", "server_cert"),
    d("AT_SSL_SERVER_CLIENT_AUTH_SERVER", "server_key"),
    d("AT_SSL_SERVER_SERVER_AUTH_CLIENT", "server_ca"),
    d("AT_SSL_CLIENT_SERVER_AUTH_CLIENT", "client_cert"),
    d("AT_SSL_CLIENT_SERVER_AUTH_CLIENT", "client_key"),
    d("AT_SSL_CLIENT_CLIENT_AUTH_SERVER", "client_ca"),
    d("AT_EAP_COMMAND_SUPPORT", "wpa2_cert"),
    d("AT_EAP_COMMAND_SUPPORT", "wpa2_key"),
    d("AT_EAP_COMMAND_SUPPORT", "wpa2_ca"),
    d("AT_MQTT_BROKER_AUTH_CLIENT", "mqtt_cert"),
    d("AT_MQTT_BROKER_AUTH_CLIENT", "mqtt_key"),
    d("AT_MQTT_CLIENT_AUTH_BROKER", "mqtt_ca"),
    d("AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT", "factory_param"),
    d("AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT", "mfg_nvs"),
];

/// `at_customized_config_dependency.txt`, v4.1.0.0–v5.0.1.0 (adds HTTPS and WSS).
const ERA_B_V4_1: &[Dependency] = &[
    d("AT_BLE_COMMAND_SUPPORT", "ble_data"),
    d("AT_FS_COMMAND_SUPPORT", "fatfs"),
    d("AT_SSL_SERVER_CLIENT_AUTH_SERVER", "server_cert"),
    d("AT_SSL_SERVER_CLIENT_AUTH_SERVER", "server_key"),
    d("AT_SSL_SERVER_SERVER_AUTH_CLIENT", "server_ca"),
    d("AT_SSL_CLIENT_SERVER_AUTH_CLIENT", "client_cert"),
    d("AT_SSL_CLIENT_SERVER_AUTH_CLIENT", "client_key"),
    d("AT_SSL_CLIENT_CLIENT_AUTH_SERVER", "client_ca"),
    d("AT_EAP_COMMAND_SUPPORT", "wpa2_cert"),
    d("AT_EAP_COMMAND_SUPPORT", "wpa2_key"),
    d("AT_EAP_COMMAND_SUPPORT", "wpa2_ca"),
    d("AT_MQTT_BROKER_AUTH_CLIENT", "mqtt_cert"),
    d("AT_MQTT_BROKER_AUTH_CLIENT", "mqtt_key"),
    d("AT_MQTT_CLIENT_AUTH_BROKER", "mqtt_ca"),
    d("AT_HTTPS_SERVER_AUTH_CLIENT", "https_cert"),
    d("AT_HTTPS_SERVER_AUTH_CLIENT", "https_key"),
    d("AT_HTTPS_CLIENT_AUTH_SERVER", "https_ca"),
    d("AT_WSS_SERVER_AUTH_CLIENT", "wss_cert"),
    d("AT_WSS_SERVER_AUTH_CLIENT", "wss_key"),
    d("AT_WSS_CLIENT_AUTH_SERVER", "wss_ca"),
    d("AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT", "factory_param"),
    d("AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT", "mfg_nvs"),
];

/// master: `fatfs` → `fs_storage`, `wpa2_*` → `wpa_ent_*`.
const MASTER: &[Dependency] = &[
    d("AT_BLE_COMMAND_SUPPORT", "ble_data"),
    d("AT_FS_COMMAND_SUPPORT", "fs_storage"),
    d("AT_SSL_SERVER_CLIENT_AUTH_SERVER", "server_cert"),
    d("AT_SSL_SERVER_CLIENT_AUTH_SERVER", "server_key"),
    d("AT_SSL_SERVER_SERVER_AUTH_CLIENT", "server_ca"),
    d("AT_SSL_CLIENT_SERVER_AUTH_CLIENT", "client_cert"),
    d("AT_SSL_CLIENT_SERVER_AUTH_CLIENT", "client_key"),
    d("AT_SSL_CLIENT_CLIENT_AUTH_SERVER", "client_ca"),
    d("AT_EAP_COMMAND_SUPPORT", "wpa_ent_cert"),
    d("AT_EAP_COMMAND_SUPPORT", "wpa_ent_key"),
    d("AT_EAP_COMMAND_SUPPORT", "wpa_ent_ca"),
    d("AT_MQTT_BROKER_AUTH_CLIENT", "mqtt_cert"),
    d("AT_MQTT_BROKER_AUTH_CLIENT", "mqtt_key"),
    d("AT_MQTT_CLIENT_AUTH_BROKER", "mqtt_ca"),
    d("AT_HTTPS_SERVER_AUTH_CLIENT", "https_cert"),
    d("AT_HTTPS_SERVER_AUTH_CLIENT", "https_key"),
    d("AT_HTTPS_CLIENT_AUTH_SERVER", "https_ca"),
    d("AT_WSS_SERVER_AUTH_CLIENT", "wss_cert"),
    d("AT_WSS_SERVER_AUTH_CLIENT", "wss_key"),
    d("AT_WSS_CLIENT_AUTH_SERVER", "wss_ca"),
    d("AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT", "factory_param"),
    d("AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT", "mfg_nvs"),
];

/// The dependency list ESP-AT ships in `release`.
pub fn for_release(release: Release) -> &'static [Dependency] {
    if release.is_master() {
        MASTER
    } else if release >= tag("v4.1.0.0") {
        ERA_B_V4_1
    } else if release >= tag("v3.1.0.0") {
        ERA_B_V3
    } else {
        ERA_A
    }
}

/// A dependency line as parsed from a file (owned, unlike the built-in lists).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DependencyLine {
    /// Kconfig symbol without `CONFIG_`.
    pub symbol: String,
    /// Partition or raw-data directory name.
    pub name: String,
}

/// Parses a dependency file the way ESP-AT does: `#` lines skipped, runs of spaces collapsed,
/// `<symbol>=y <name>` per line. Lines without both parts are skipped (ESP-AT would ignore
/// them too because they can never be enabled).
pub fn parse(text: &str) -> Vec<DependencyLine> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let cond = words.next()?;
            let name = words.next()?;
            let symbol = cond.strip_suffix("=y")?;
            Some(DependencyLine {
                symbol: symbol.to_owned(),
                name: name.to_owned(),
            })
        })
        .collect()
}

/// The enabled names in file order, each once at its first position (`docs/formats/esp-at-images.md` §1.2).
///
/// `is_enabled` answers for a symbol without `CONFIG_`; use [`sdkconfig_enables`] for ESP-AT's
/// substring test on an `sdkconfig` text.
pub fn enabled_names(
    deps: &[Dependency],
    mut is_enabled: impl FnMut(&str) -> bool,
) -> Vec<&'static str> {
    let mut seen = BTreeSet::new();
    deps.iter()
        .filter(|dep| is_enabled(dep.symbol))
        .filter(|dep| seen.insert(dep.name))
        .map(|dep| dep.name)
        .collect()
}

/// ESP-AT's enable test: the plain substring `CONFIG_<symbol>=y` anywhere in `sdkconfig`
/// (so `CONFIG_X=y` also "enables" `X` inside `# CONFIG_X=y is disabled` comments).
pub fn sdkconfig_enables(sdkconfig: &str, symbol: &str) -> bool {
    sdkconfig.contains(&format!("CONFIG_{symbol}=y"))
}

/// What a checked feature set needs generated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Real partitions to generate, in dependency order (era A: every enabled name; era B:
    /// `mfg_nvs` and the filesystem when enabled).
    pub partitions: Vec<String>,
    /// Era B only: raw-data names that become NVS namespaces or entries (`ble_data`,
    /// `server_cert`, ..., `factory_param`), in dependency order.
    pub namespaces: Vec<String>,
    /// Enabled era B partitions missing from `at_customize.csv`, which ESP-AT skips silently
    /// (the filesystem before master). Callers should warn.
    pub skipped: Vec<String>,
}

/// A feature set that ESP-AT's build would mishandle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum DependencyError {
    /// Era A: an enabled item has no partition; ESP-AT's script would stop there and silently
    /// drop it and every later item.
    #[error(
        "`CONFIG_{symbol}=y` needs partition `{name}`, which is not in at_customize.csv ({release})"
    )]
    #[diagnostic(
        code(espfleet::esp_at::dependency_partition_missing),
        help("add a `{name}` partition to the at_customize table, or disable {symbol}")
    )]
    PartitionMissing {
        /// The enabling symbol.
        symbol: String,
        /// The missing partition.
        name: String,
        /// Release whose rules apply.
        release: Release,
    },
    /// Era B: `mfg_nvs` is enabled but not in the table, so the board would get no factory data.
    #[error(
        "the at_customize table has no `mfg_nvs` partition, so the board gets no factory data ({release})"
    )]
    #[diagnostic(
        code(espfleet::esp_at::dependency_mfg_nvs_missing),
        help("add `mfg_nvs, data, nvs, <offset>, <size>` to the at_customize table")
    )]
    MfgNvsMissing {
        /// Release whose rules apply.
        release: Release,
    },
    /// master: `fs_storage` enabled but missing fails ESP-AT's build.
    #[error(
        "`CONFIG_AT_FS_COMMAND_SUPPORT=y` needs partition `fs_storage`, which is not in at_customize.csv"
    )]
    #[diagnostic(
        code(espfleet::esp_at::dependency_fs_storage_missing),
        help(
            "add an `fs_storage` partition to the at_customize table, or disable AT_FS_COMMAND_SUPPORT"
        )
    )]
    FsStorageMissing,
}

/// Checks an enabled-symbol set against the at_customize partition names and says what must be
/// generated (`docs/formats/esp-at-images.md` §1.2 and §11).
///
/// `enabled_symbols` are Kconfig symbols without `CONFIG_`; `at_customize` are the partition
/// names of the at_customize table.
pub fn check(
    release: Release,
    enabled_symbols: &BTreeSet<String>,
    at_customize: &[&str],
) -> Result<Selection, DependencyError> {
    let deps = for_release(release);
    let names = enabled_names(deps, |s| enabled_symbols.contains(s));
    let has = |n: &str| at_customize.contains(&n);
    let mut sel = Selection::default();
    match release.era() {
        Era::A => {
            for name in names {
                if !has(name) {
                    let symbol = deps
                        .iter()
                        .find(|d| d.name == name)
                        .map_or("", |d| d.symbol);
                    return Err(DependencyError::PartitionMissing {
                        symbol: symbol.to_owned(),
                        name: name.to_owned(),
                        release,
                    });
                }
                sel.partitions.push(name.to_owned());
            }
        }
        Era::B => {
            let fs = release.fs_partition();
            for name in names {
                if name == "mfg_nvs" {
                    if !has(name) {
                        return Err(DependencyError::MfgNvsMissing { release });
                    }
                    sel.partitions.push(name.to_owned());
                } else if name == fs {
                    if has(name) {
                        sel.partitions.push(name.to_owned());
                    } else if release.is_master() {
                        return Err(DependencyError::FsStorageMissing);
                    } else {
                        sel.skipped.push(name.to_owned());
                    }
                } else {
                    sel.namespaces.push(name.to_owned());
                }
            }
        }
    }
    Ok(sel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(symbols: &[&str]) -> BTreeSet<String> {
        symbols.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn enabled_names_keep_file_order_and_first_position() {
        let deps = [d("A", "x"), d("B", "y"), d("C", "x"), d("D", "z")];
        assert_eq!(enabled_names(&deps, |s| s != "D"), vec!["x", "y"]);
        assert!(sdkconfig_enables("CONFIG_A=y\n", "A"));
        assert!(!sdkconfig_enables("# CONFIG_A is not set\n", "A"));
    }

    #[test]
    fn parse_skips_comments_and_collapses_spaces() {
        let lines = parse("# c\nAT_X=y   foo\n\nAT_Y=n bar\n");
        assert_eq!(
            lines,
            vec![DependencyLine {
                symbol: "AT_X".into(),
                name: "foo".into()
            }]
        );
    }

    #[test]
    fn era_a_requires_every_enabled_partition() {
        let on = set(&[
            "AT_BLE_COMMAND_SUPPORT",
            "AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT",
        ]);
        let release = tag("v2.4.0.0");
        let sel = check(release, &on, &["ble_data", "factory_param"]).unwrap();
        assert_eq!(sel.partitions, vec!["ble_data", "factory_param"]);
        let err = check(release, &on, &["factory_param"]).unwrap_err();
        assert!(
            matches!(err, DependencyError::PartitionMissing { ref name, .. } if name == "ble_data")
        );
    }

    #[test]
    fn era_b_splits_partitions_and_namespaces() {
        let on = set(&[
            "AT_BLE_COMMAND_SUPPORT",
            "AT_FS_COMMAND_SUPPORT",
            "AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT",
        ]);
        let v4 = tag("v4.1.1.0");
        let sel = check(v4, &on, &["mfg_nvs"]).unwrap();
        assert_eq!(sel.partitions, vec!["mfg_nvs"]);
        assert_eq!(sel.namespaces, vec!["ble_data", "factory_param"]);
        assert_eq!(sel.skipped, vec!["fatfs"]);
        assert_eq!(
            check(tag("master"), &on, &["mfg_nvs"]),
            Err(DependencyError::FsStorageMissing)
        );
        assert!(matches!(
            check(v4, &on, &["fatfs"]),
            Err(DependencyError::MfgNvsMissing { .. })
        ));
    }
}
