//! `espfleet import`: an ESP-AT factory image in, a manifest (plus its certificate, key, BLE
//! and firmware part files) out — ESP-AT's `at.py modify_bin` in reverse, so a team can start
//! from the firmware it already ships.
//!
//! Everything is inferred from the image: chip (bootloader header), module (factory parameters
//! → catalogue), era and release (which tables, partitions, namespaces and type bytes exist),
//! flash settings, factory parameters, table edits against the catalogue, certificates and
//! keys, BLE rows and the firmware parts. The chosen release and the evidence for it are
//! written into the manifest as comments. [`verify`] rebuilds the manifest and compares.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::catalogue::{Catalogue, Module};
use crate::esp_at::mfg_nvs::{MfgNvs, MfgValue};
use crate::esp_at::release::ReleaseFormats as _;
use crate::esp_at::{ble_data, factory_param, firmware, pki};
use crate::inspect::{self, MergedLayout};
use crate::manifest::document::PkiRole;
use crate::manifest::resolve::{DEFAULT_FEATURES, esp_at_name, feature_of};
use crate::nvs;
use crate::partition_table::{Partition, PartitionTable};
use crate::release::{Era, NvsPages, Release};
use crate::target::{Chip, FlashFreq, FlashMode, FlashSettings};

/// Errors of `import`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum ImportError {
    /// Not a merged factory image.
    #[error("not an ESP-AT factory image: {0}")]
    #[diagnostic(
        code(espfleet::import::not_factory_image),
        help(
            "pass the merged image ESP-AT's build writes (build/factory/factory_<MODULE>.bin); `espfleet inspect FILE` shows what the file is"
        )
    )]
    NotFactoryImage(String),
    /// A region that should hold ESP-AT data does not decode.
    #[error("{region}: {message}")]
    #[diagnostic(
        code(espfleet::import::region_invalid),
        help(
            "the image is corrupt, or was not made by ESP-AT's tools; `espfleet inspect FILE` shows each region"
        )
    )]
    RegionInvalid {
        /// Partition name.
        region: String,
        /// What is wrong.
        message: String,
    },
    /// The bootloader or app would not boot: wrong chip, or checksum or SHA-256 not matching.
    #[error("{part} at {offset:#x} is not a valid image: {reason}")]
    #[diagnostic(
        code(espfleet::import::firmware_invalid),
        help(
            "the image is corrupt (a bad download or a partial write); `espfleet inspect FILE` shows each region's checksum and SHA-256"
        )
    )]
    FirmwareInvalid {
        /// `bootloader` or `app`.
        part: String,
        /// Where it is in the image.
        offset: u32,
        /// What is wrong.
        reason: firmware::FirmwareError,
    },
    /// The factory parameters name a module the catalogue does not know.
    #[error("module `{module}` ({chip}) is not in the catalogue")]
    #[diagnostic(
        code(espfleet::import::unknown_module),
        help(
            "the catalogue lists the modules ESP-AT ships (manifests/modules/); a custom module needs a catalogue entry first"
        )
    )]
    UnknownModule {
        /// Module name from the image.
        module: String,
        /// Chip.
        chip: Chip,
    },
    /// No release fits the evidence.
    #[error("no ESP-AT release of {module} fits the image: {evidence}")]
    #[diagnostic(
        code(espfleet::import::no_release),
        help("the image mixes formats of different releases; inspect it with `espfleet inspect`")
    )]
    NoRelease {
        /// Module.
        module: String,
        /// The evidence collected.
        evidence: String,
    },
}

/// One file `import` writes next to the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedFile {
    /// Path relative to the output directory, `/`-separated.
    pub path: String,
    /// Contents.
    pub bytes: Vec<u8>,
    /// Private key material: written with mode 0600.
    pub secret: bool,
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The manifest text (KDL).
    pub manifest: String,
    /// Files the manifest references.
    pub files: Vec<ImportedFile>,
    /// The chosen release.
    pub release: Release,
    /// Module name.
    pub module: String,
    /// Chip.
    pub chip: Chip,
    /// How the release was chosen, one line per piece of evidence.
    pub reasoning: Vec<String>,
}

fn bad(region: &str, message: impl std::fmt::Display) -> ImportError {
    ImportError::RegionInvalid {
        region: region.to_owned(),
        message: message.to_string(),
    }
}

fn trim_ff(data: &[u8]) -> &[u8] {
    let end = data.len() - data.iter().rev().take_while(|b| **b == 0xFF).count();
    &data[..end]
}

fn image_len(data: &[u8]) -> Option<usize> {
    let l = firmware::layout(data).ok()?;
    let n = l.data_length + if l.hash_appended { 32 } else { 0 };
    (n <= data.len()).then_some(n)
}

/// The factory parameters found in the image, whatever the era.
#[derive(Debug, Clone, Default)]
struct Factory {
    module_name: String,
    uart: [i32; 6],
    country: String,
    start_channel: u8,
    channel_num: u8,
    max_tx_power: u8,
    sys_store: Option<u8>,
}

/// A PKI set found in the image: namespace/partition name and file contents.
struct PkiSet {
    name: String,
    files: Vec<Vec<u8>>,
    /// Era A: type bytes seen.
    kinds: BTreeSet<u8>,
}

fn factory_from_nvs(ns: &crate::esp_at::mfg_nvs::MfgNamespace) -> Result<Factory, ImportError> {
    let mut f = Factory::default();
    let int = |v: &MfgValue| -> Option<i64> {
        Some(match v {
            MfgValue::U8(x) => i64::from(*x),
            MfgValue::I8(x) => i64::from(*x),
            MfgValue::U16(x) => i64::from(*x),
            MfgValue::I16(x) => i64::from(*x),
            MfgValue::U32(x) => i64::from(*x),
            MfgValue::I32(x) => i64::from(*x),
            MfgValue::I64(x) => *x,
            MfgValue::U64(x) => i64::try_from(*x).ok()?,
            _ => return None,
        })
    };
    for e in &ns.entries {
        let n = int(&e.value).unwrap_or(0);
        let small = |n: i64| i32::try_from(n).unwrap_or(-1);
        match (e.key.as_str(), &e.value) {
            ("module_name", MfgValue::String(s)) => f.module_name.clone_from(s),
            ("country_code", MfgValue::String(s)) => f.country.clone_from(s),
            ("max_tx_power", _) => f.max_tx_power = u8::try_from(n).unwrap_or(0),
            ("start_channel", _) => f.start_channel = u8::try_from(n).unwrap_or(0),
            ("channel_num", _) => f.channel_num = u8::try_from(n).unwrap_or(0),
            ("uart_port", _) => f.uart[0] = small(n),
            ("uart_baudrate", _) => f.uart[1] = small(n),
            ("uart_tx_pin", _) => f.uart[2] = small(n),
            ("uart_rx_pin", _) => f.uart[3] = small(n),
            ("uart_cts_pin", _) => f.uart[4] = small(n),
            ("uart_rts_pin", _) => f.uart[5] = small(n),
            ("sys_store", _) => f.sys_store = u8::try_from(n).ok(),
            _ => {}
        }
    }
    if f.module_name.is_empty() {
        return Err(bad(
            "mfg_nvs",
            "the factory_param namespace has no module_name",
        ));
    }
    Ok(f)
}

fn role_of(name: &str, release: Release) -> Option<PkiRole> {
    PkiRole::ALL
        .into_iter()
        .find(|r| esp_at_name(*r, release) == name)
}

fn any_role(name: &str) -> bool {
    ["master", "v4.0.0.0"]
        .iter()
        .filter_map(|t| t.parse::<Release>().ok())
        .any(|r| role_of(name, r).is_some())
}

fn cert_ext(data: &[u8]) -> &'static str {
    let d = inspect::describe_blob(data);
    if d.starts_with("PEM private key") || (d.starts_with("PEM") && d.contains("KEY")) {
        "key"
    } else if d.starts_with("PEM") {
        "crt"
    } else {
        "der"
    }
}

/// Evidence → candidate releases.
struct Evidence {
    lines: Vec<String>,
    filter: Vec<Box<dyn Fn(Release) -> bool>>,
}

impl Evidence {
    fn add(&mut self, line: String, f: impl Fn(Release) -> bool + 'static) {
        self.lines.push(line);
        self.filter.push(Box::new(f));
    }
}

/// The catalogue's two tables for `module` in `release`, as the resolver lays them out.
fn catalogue_tables(
    module: &Module,
    release: Release,
) -> Option<(u32, PartitionTable, u32, PartitionTable)> {
    let text = format!(
        "espfleet 1\nmodule \"{}\" chip=\"{}\"\nesp-at \"{release}\"\n",
        module.name, module.chip
    );
    let (plan, _) =
        crate::manifest::load_text(Path::new("/nonexistent/espfleet-import.kdl"), &text).ok()?;
    Some((
        plan.partition_table.offset,
        plan.partition_table.layout?,
        plan.at_customize.offset,
        plan.at_customize.layout?,
    ))
}

fn hexn(n: u32) -> String {
    format!("{n:#x}")
}

/// `type=… subtype=…` with ESP-IDF's keywords where they exist.
fn type_props(p: &Partition) -> String {
    let kw = crate::partition_table::Keywords::esp_idf();
    let ty = kw
        .type_name(p.ty)
        .map_or_else(|| format!("{:#04x}", p.ty), |t| format!("\"{t}\""));
    let sub = kw
        .subtype_name(p.ty, p.subtype)
        .map_or_else(|| format!("{:#04x}", p.subtype), |t| format!("\"{t}\""));
    format!("type={ty} subtype={sub}")
}

fn size_prop(n: u32) -> String {
    let t = inspect::size_text(n);
    if t.ends_with('K') || t.ends_with('M') {
        format!("\"{t}\"")
    } else {
        hexn(n)
    }
}

/// Table edits turning `cat` into `img`; `None` when the order cannot be reached by edits.
fn table_edits(
    cat: &PartitionTable,
    img: &PartitionTable,
    files: &[(String, String)],
) -> Vec<String> {
    let mut lines = Vec::new();
    for c in cat.partitions() {
        if !img.partitions().iter().any(|p| p.name == c.name) {
            lines.push(format!("remove \"{}\"", c.name));
        }
    }
    for p in img.partitions() {
        let file = files
            .iter()
            .find(|(n, _)| *n == p.name)
            .map(|(_, f)| format!(" file=\"{f}\""))
            .unwrap_or_default();
        let flags = flags_text(p);
        match cat.partitions().iter().find(|c| c.name == p.name) {
            Some(c) => {
                let mut props = String::new();
                if c.ty != p.ty || c.subtype != p.subtype {
                    let _ = write!(props, " {}", type_props(p));
                }
                if c.offset != p.offset {
                    let _ = write!(props, " offset={}", hexn(p.offset));
                }
                if c.size != p.size {
                    let _ = write!(props, " size={}", size_prop(p.size));
                }
                if c.flags != p.flags {
                    let _ = write!(props, " flags=\"{flags}\"");
                }
                if !props.is_empty() || !file.is_empty() {
                    lines.push(format!("partition \"{}\"{props}{file}", p.name));
                }
            }
            None => lines.push(full_row(p, &file)),
        }
    }
    lines
}

fn flags_text(p: &Partition) -> String {
    let mut f = Vec::new();
    if p.flags.encrypted {
        f.push("encrypted");
    }
    if p.flags.readonly {
        f.push("readonly");
    }
    f.join(":")
}

fn full_row(p: &Partition, file: &str) -> String {
    let flags = flags_text(p);
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" flags=\"{flags}\"")
    };
    format!(
        "partition \"{}\" {} offset={} size={}{flags}{file}",
        p.name,
        type_props(p),
        hexn(p.offset),
        size_prop(p.size)
    )
}

fn table_block(
    node: &str,
    offset: u32,
    cat_offset: u32,
    edits: &[String],
    replace: bool,
) -> String {
    let mut props = String::new();
    if offset != cat_offset {
        let _ = write!(props, " offset={}", hexn(offset));
    }
    if replace {
        props.push_str(" replace=#true");
    }
    if edits.is_empty() && props.is_empty() {
        return format!("// {node}: the catalogue's table, unchanged\n");
    }
    let mut out = format!("{node}{props} {{\n");
    for e in edits {
        let _ = writeln!(out, "    {e}");
    }
    out.push_str("}\n");
    out
}

/// Whether a manifest with these table blocks resolves to exactly `img` tables.
fn tables_resolve_to(
    module: &Module,
    release: Release,
    blocks: &str,
    primary: &PartitionTable,
    atc: &PartitionTable,
) -> bool {
    let text = format!(
        "espfleet 1\nmodule \"{}\" chip=\"{}\"\nesp-at \"{release}\"\n{}",
        module.name,
        module.chip,
        // Files are not read for this check: drop file= so nothing needs to exist yet.
        blocks
            .lines()
            .map(|l| l.split(" file=").next().unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let Ok((plan, _)) =
        crate::manifest::load_text(Path::new("/nonexistent/espfleet-import.kdl"), &text)
    else {
        return false;
    };
    plan.partition_table.layout.as_ref() == Some(primary)
        && plan.at_customize.layout.as_ref() == Some(atc)
}

/// Imports a merged ESP-AT factory image.
#[allow(clippy::too_many_lines)] // one linear recipe, easier to follow in one piece
pub fn import(bytes: &[u8]) -> Result<Imported, ImportError> {
    let MergedLayout {
        chip,
        bootloader,
        table_offset,
        primary,
        at_customize,
    } = inspect::merged_layout(bytes).map_err(ImportError::NotFactoryImage)?;
    let Some((atc_offset, atc)) = at_customize else {
        return Err(ImportError::NotFactoryImage(
            "the primary partition table has no at_customize partition holding a table".to_owned(),
        ));
    };
    let region = |p: &Partition| inspect::region(bytes, p.offset, p.size);
    let atc_part = |name: &str| atc.partitions().iter().find(|p| p.name == name);
    let mut files: Vec<ImportedFile> = Vec::new();
    let mut ev = Evidence {
        lines: Vec::new(),
        filter: Vec::new(),
    };

    // Flash settings from the bootloader header.
    let boot_bytes = &bytes[bootloader as usize..];
    let boot_len =
        image_len(boot_bytes).ok_or_else(|| bad("bootloader", "not a valid ESP image"))?;
    // An image that would not boot is refused: importing it would write a manifest that
    // reproduces a broken board.
    firmware::verify(&boot_bytes[..boot_len], chip).map_err(|reason| {
        ImportError::FirmwareInvalid {
            part: "bootloader".to_owned(),
            offset: bootloader,
            reason,
        }
    })?;
    let (mode, freq, size) = inspect::header_flash(chip, boot_bytes[2], boot_bytes[3]);
    let flash = FlashSettings {
        mode: mode.unwrap_or(FlashMode::Dio),
        freq: freq.unwrap_or(FlashFreq::F40m),
        size: size.ok_or_else(|| bad("bootloader", "unknown flash size code in its header"))?,
    };

    // Era and factory data.
    let mut pki_sets: Vec<PkiSet> = Vec::new();
    let mut ble_csv: Option<String> = None;
    let mut nvs_pages = None;
    let (era, factory) = if let Some(p) = atc_part("mfg_nvs") {
        ev.add(
            "at_customize has `mfg_nvs`: era B (v3.1.0.0 or later)".to_owned(),
            |r| r.era() == Era::B,
        );
        let data = region(p);
        let content = MfgNvs::decode(data).map_err(|e| bad("mfg_nvs", e))?;
        let decoded = nvs::decode(data);
        let pages = match decoded.trailing {
            nvs::TrailingPages::Legacy => NvsPages::Legacy,
            nvs::TrailingPages::Erased => NvsPages::Active,
        };
        nvs_pages = Some(pages);
        let mut factory = None;
        for ns in &content.namespaces {
            match ns.name.as_str() {
                "factory_param" => factory = Some(factory_from_nvs(ns)?),
                "ble_data" => {
                    let mut csv =
                        String::from("# index,uuid_len,uuid,perm,val_max_len,val_cur_len,value\n");
                    for e in &ns.entries {
                        if let MfgValue::String(s) = &e.value {
                            csv.push_str(s);
                            csv.push('\n');
                        }
                    }
                    ble_csv = Some(csv);
                }
                name => {
                    let files = ns
                        .entries
                        .iter()
                        .filter_map(|e| match &e.value {
                            MfgValue::File { data, .. } => Some(data.to_vec()),
                            _ => None,
                        })
                        .collect();
                    pki_sets.push(PkiSet {
                        name: name.to_owned(),
                        files,
                        kinds: BTreeSet::new(),
                    });
                }
            }
        }
        let factory = factory.ok_or_else(|| bad("mfg_nvs", "no factory_param namespace"))?;
        if factory.sys_store.is_some() {
            ev.add(
                "factory_param has `sys_store`: v4.1.0.0 or later".to_owned(),
                Release::has_sys_store,
            );
        } else {
            ev.add(
                "factory_param has no `sys_store`: before v4.1.0.0".to_owned(),
                |r| !r.has_sys_store(),
            );
        }
        (Era::B, factory)
    } else if let Some(p) = atc_part("factory_param") {
        ev.add(
            "at_customize has `factory_param` and no `mfg_nvs`: era A (v2.2.0.0–v3.0.0.0)"
                .to_owned(),
            |r| r.era() == Era::A,
        );
        let f =
            factory_param::FactoryParam::decode(region(p)).map_err(|e| bad("factory_param", e))?;
        if f.platform != chip.platform() {
            return Err(bad(
                "factory_param",
                format!("platform {} but the bootloader is for {chip}", f.platform),
            ));
        }
        for part in atc.partitions() {
            let data = region(part);
            if data.iter().all(|b| *b == 0xFF) {
                continue;
            }
            if part.name == "ble_data" {
                let t = ble_data::decode_bin(data).map_err(|e| bad("ble_data", e))?;
                ble_csv = Some(era_a_csv(&t));
            } else if part.ty == 0x40
                && pki::ItemKind::for_partition(&part.name).is_some()
                && any_role(&part.name)
            {
                let items = pki::decode(data).map_err(|e| bad(&part.name, e))?;
                pki_sets.push(PkiSet {
                    name: part.name.clone(),
                    kinds: items.iter().map(|i| i.kind.byte()).collect(),
                    files: items.into_iter().map(|i| i.content).collect(),
                });
            }
        }
        let typed = pki_sets.iter().any(|s| s.kinds.iter().any(|k| *k != 2));
        let untyped = pki_sets.iter().any(|s| {
            s.kinds.iter().all(|k| *k == 2)
                && !s.kinds.is_empty()
                && pki::ItemKind::for_partition(&s.name) != Some(pki::ItemKind::Cert)
        });
        if typed {
            ev.add(
                "PKI items carry CA 0x01 / key 0x03 type bytes: v2.4.1.0 or later".to_owned(),
                Release::pki_typed_items,
            );
        } else if untyped {
            ev.add(
                "PKI key/CA items carry type byte 0x02: v2.4.0.0 or earlier".to_owned(),
                |r| !r.pki_typed_items(),
            );
        }
        (
            Era::A,
            Factory {
                module_name: f.module_name,
                uart: [
                    i32::from(f.uart_port),
                    f.uart_baudrate,
                    i32::from(f.uart_tx_pin),
                    i32::from(f.uart_rx_pin),
                    i32::from(f.uart_cts_pin),
                    i32::from(f.uart_rts_pin),
                ],
                country: f.country_code,
                start_channel: f.start_channel,
                channel_num: f.channel_num,
                max_tx_power: f.tx_max_power,
                sys_store: None,
            },
        )
    } else {
        return Err(ImportError::NotFactoryImage(
            "at_customize has neither `mfg_nvs` nor `factory_param`".to_owned(),
        ));
    };
    if atc_part("fs_storage").is_some() {
        ev.add(
            "at_customize names the filesystem `fs_storage`: master".to_owned(),
            Release::is_master,
        );
    } else if atc_part("fatfs").is_some() {
        ev.add(
            "at_customize names the filesystem `fatfs`: not master".to_owned(),
            |r| !r.is_master(),
        );
    }
    if pki_sets.iter().any(|s| s.name.starts_with("wpa_ent_")) {
        ev.add(
            "EAP data under `wpa_ent_*`: master".to_owned(),
            Release::is_master,
        );
    } else if pki_sets.iter().any(|s| s.name.starts_with("wpa2_")) {
        ev.add("EAP data under `wpa2_*`: not master".to_owned(), |r| {
            !r.is_master()
        });
    }
    if pki_sets
        .iter()
        .any(|s| s.name.starts_with("https_") || s.name.starts_with("wss_"))
    {
        ev.add(
            "HTTPS/WSS certificates: v4.1.0.0 or later".to_owned(),
            Release::has_https_wss,
        );
    }
    if (bytes.len() as u64) < u64::from(flash.size.bytes()) {
        ev.add(
            "the image is shorter than the flash (an `_unfilled` esptool merge_bin output): v4.1.0.0 or later"
                .to_owned(),
            |r| r.merge_tool() == crate::esp_at::release::MergeTool::EsptoolMergeBin,
        );
    }

    // Module.
    let cat = Catalogue::builtin();
    let module = cat
        .find(&factory.module_name, Some(chip))
        .into_iter()
        .next()
        .ok_or_else(|| ImportError::UnknownModule {
            module: factory.module_name.clone(),
            chip,
        })?;

    // Candidate releases; prefer the one whose catalogue tables need the fewest edits, then a
    // tagged release over master (a moving target), then the newest.
    let noff = |t: &PartitionTable, u: &PartitionTable| table_edits(t, u, &[]).len();
    let mut best: Option<((usize, bool), Release)> = None;
    let mut candidates = Vec::new();
    for r in cat.releases_of(module) {
        if !ev.filter.iter().all(|f| f(r)) {
            continue;
        }
        candidates.push(r);
        let Some((po, pt, ao, at)) = catalogue_tables(module, r) else {
            continue;
        };
        let cost = (
            noff(&pt, &primary)
                + noff(&at, &atc)
                + usize::from(po != table_offset)
                + usize::from(ao != atc_offset),
            r.is_master(),
        );
        if best.is_none_or(|(c, _)| cost <= c) {
            best = Some((cost, r));
        }
    }
    let Some((_, release)) = best else {
        return Err(ImportError::NoRelease {
            module: module.name.clone(),
            evidence: ev.lines.join("; "),
        });
    };
    let (cpo, cpt, cao, cat_atc) =
        catalogue_tables(module, release).ok_or_else(|| ImportError::NoRelease {
            module: module.name.clone(),
            evidence: ev.lines.join("; "),
        })?;

    // Files for partitions that are neither generated nor firmware.
    let generated = |p: &Partition| {
        matches!(p.name.as_str(), "mfg_nvs" | "factory_param" | "ble_data")
            || pki_sets.iter().any(|s| s.name == p.name)
            || p.name == "at_customize"
    };
    let app_part = primary
        .partitions()
        .iter()
        .find(|p| p.ty == 0 && p.subtype == 0)
        .or_else(|| {
            primary
                .partitions()
                .iter()
                .find(|p| p.ty == 0 && p.subtype == 0x10)
        });
    let mut part_files: Vec<(String, String)> = Vec::new();
    let mut firmware_parts: Vec<(String, String, u32)> = Vec::new();
    files.push(ImportedFile {
        path: "firmware/bootloader.bin".to_owned(),
        bytes: boot_bytes[..boot_len].to_vec(),
        secret: false,
    });
    firmware_parts.push((
        "bootloader".to_owned(),
        "firmware/bootloader.bin".to_owned(),
        bootloader,
    ));
    for (is_primary, table) in [(true, &primary), (false, &atc)] {
        for p in table.partitions() {
            let data = region(p);
            if generated(p) || (is_primary && p.name == "at_customize") {
                continue;
            }
            if is_primary && Some(p) == app_part {
                let n = image_len(data).ok_or_else(|| bad(&p.name, "no valid app image"))?;
                firmware::verify(&data[..n], chip).map_err(|reason| {
                    ImportError::FirmwareInvalid {
                        part: "app".to_owned(),
                        offset: p.offset,
                        reason,
                    }
                })?;
                files.push(ImportedFile {
                    path: "firmware/esp-at.bin".to_owned(),
                    bytes: data[..n].to_vec(),
                    secret: false,
                });
                firmware_parts.push(("app".to_owned(), "firmware/esp-at.bin".to_owned(), p.offset));
                continue;
            }
            if is_primary && p.ty == 1 && p.subtype == 0 {
                files.push(ImportedFile {
                    path: "firmware/ota_data_initial.bin".to_owned(),
                    bytes: data.to_vec(),
                    secret: false,
                });
                firmware_parts.push((
                    "ota_data_initial".to_owned(),
                    "firmware/ota_data_initial.bin".to_owned(),
                    p.offset,
                ));
                continue;
            }
            let content = if p.ty == 0 {
                image_len(data).map_or_else(|| trim_ff(data), |n| &data[..n])
            } else {
                trim_ff(data)
            };
            if content.is_empty() {
                continue;
            }
            let path = format!("partitions/{}.bin", p.name);
            files.push(ImportedFile {
                path: path.clone(),
                bytes: content.to_vec(),
                secret: false,
            });
            part_files.push((p.name.clone(), path));
        }
    }

    // Table blocks: edits if they reproduce the tables, else the whole table.
    let mut blocks = String::new();
    for (node, off, cat_off, cat_t, img_t) in [
        ("partition-table", table_offset, cpo, &cpt, &primary),
        ("at-customize", atc_offset, cao, &cat_atc, &atc),
    ] {
        let edits = table_edits(cat_t, img_t, &part_files);
        blocks.push_str(&table_block(node, off, cat_off, &edits, false));
    }
    if !tables_resolve_to(module, release, &blocks, &primary, &atc) {
        blocks.clear();
        for (node, off, img_t) in [
            ("partition-table", table_offset, &primary),
            ("at-customize", atc_offset, &atc),
        ] {
            let rows: Vec<String> = img_t
                .partitions()
                .iter()
                .map(|p| {
                    let file = part_files
                        .iter()
                        .find(|(n, _)| *n == p.name)
                        .map(|(_, f)| format!(" file=\"{f}\""))
                        .unwrap_or_default();
                    full_row(p, &file)
                })
                .collect();
            blocks.push_str(&table_block(node, off, u32::MAX, &rows, true));
        }
    }

    // The manifest.
    let mut m = String::new();
    let _ = writeln!(
        m,
        "// Recovered by `espfleet import` from an ESP-AT factory image ({} bytes).\n// `espfleet build` on this manifest reproduces the image; review it before use.\nespfleet 1\n",
        bytes.len()
    );
    let _ = writeln!(m, "module \"{}\" chip=\"{}\"", module.name, chip.name());
    let _ = writeln!(m, "\n// Release inferred from the image:");
    for l in &ev.lines {
        let _ = writeln!(m, "//   - {l}");
    }
    let list: Vec<String> = candidates.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        m,
        "// Releases consistent with this evidence: {}.\n// Chosen: {release} (its catalogue tables need the fewest edits; on a tie a tag before master, then the newest).\n// espfleet writes the same bytes for this image with any release in the list.",
        list.join(", ")
    );
    let pages = match nvs_pages {
        Some(p) if p != release.default_nvs_pages() => format!(
            " nvs-pages=\"{}\"",
            if p == NvsPages::Legacy {
                "legacy"
            } else {
                "active"
            }
        ),
        _ => String::new(),
    };
    if let Some(p) = nvs_pages {
        let _ = writeln!(
            m,
            "// mfg_nvs trailing pages: {} form.",
            if p == NvsPages::Legacy {
                "legacy"
            } else {
                "active"
            }
        );
    }
    let _ = writeln!(m, "esp-at \"{release}\"{pages}\n");
    let _ = writeln!(m, "// From the bootloader header.");
    let _ = writeln!(
        m,
        "flash mode=\"{}\" freq=\"{}\" size=\"{}\"\n",
        flash.mode.name(),
        flash.freq.name(),
        flash.size.name()
    );
    let u = &module.uart;
    let defaults = [u.port, u.baud, u.tx, u.rx, u.cts, u.rts];
    let names = ["port", "baud", "tx", "rx", "cts", "rts"];
    let mut uart = String::new();
    for (n, (d, v)) in names.iter().zip(defaults.iter().zip(factory.uart.iter())) {
        if d != v {
            let _ = write!(uart, " {n}={v}");
        }
    }
    if uart.is_empty() {
        let _ = writeln!(m, "// UART: the module's defaults.");
    } else {
        let _ = writeln!(m, "uart{uart}");
    }
    let w = &module.wifi;
    let mut wifi = String::new();
    if w.country != factory.country {
        let _ = write!(wifi, " country=\"{}\"", factory.country);
    }
    if w.start_channel != factory.start_channel {
        let _ = write!(wifi, " start-channel={}", factory.start_channel);
    }
    if w.channel_count != factory.channel_num {
        let _ = write!(wifi, " channel-count={}", factory.channel_num);
    }
    if w.max_tx_power != factory.max_tx_power {
        let _ = write!(wifi, " max-tx-power={}", factory.max_tx_power);
    }
    if wifi.is_empty() {
        let _ = writeln!(m, "// Wi-Fi: the module's defaults.");
    } else {
        let _ = writeln!(m, "wifi{wifi}");
    }
    if let Some(s) = factory.sys_store {
        let _ = writeln!(m, "sys-store {s}");
    }
    m.push('\n');

    // Certificates (ordered as the image holds them; the build orders by role anyway).
    let mut features = BTreeSet::new();
    if !pki_sets.is_empty() {
        let mut block = String::from("certificates {\n");
        for set in &pki_sets {
            let role = role_of(&set.name, release).ok_or_else(|| {
                bad(
                    &set.name,
                    format!("not a PKI namespace ESP-AT {release} reads"),
                )
            })?;
            features.insert(feature_of(role));
            let secret = pki::ItemKind::for_partition(&set.name) == Some(pki::ItemKind::Key);
            let mut paths = Vec::new();
            for (i, data) in set.files.iter().enumerate() {
                let path = format!("certs/{}_{i:02}.{}", set.name, cert_ext(data));
                files.push(ImportedFile {
                    path: path.clone(),
                    bytes: data.clone(),
                    secret,
                });
                paths.push(format!("\"{path}\""));
            }
            let _ = writeln!(block, "    {} {}", role.node_name(), paths.join(" "));
        }
        block.push_str("}\n\n");
        m.push_str(&block);
    }
    let extra: Vec<&&str> = features
        .iter()
        .filter(|f| !DEFAULT_FEATURES.contains(f))
        .collect();
    if !extra.is_empty() {
        m.push_str("// Features the firmware must have been built with to read the data above.\nfeatures {\n");
        for f in extra {
            let _ = writeln!(m, "    {f} #true");
        }
        m.push_str("}\n\n");
    }
    if let Some(csv) = ble_csv {
        files.push(ImportedFile {
            path: "ble/gatts_data.csv".to_owned(),
            bytes: csv.into_bytes(),
            secret: false,
        });
        m.push_str("ble {\n    gatts \"ble/gatts_data.csv\"\n}\n\n");
    }
    m.push_str(&blocks);
    m.push_str(
        "\n// Firmware parts cut from the image (lengths from the ESP image format).\nfirmware {\n",
    );
    for (name, path, off) in &firmware_parts {
        let _ = writeln!(m, "    part \"{name}\" \"{path}\" offset={}", hexn(*off));
    }
    m.push_str("}\n");
    let _ = era;
    Ok(Imported {
        manifest: m,
        files,
        release,
        module: module.name.clone(),
        chip,
        reasoning: ev.lines,
    })
}

/// An era A ble_data table back as the CSV `BLEService.py` reads (header from the members).
fn era_a_csv(t: &ble_data::ServiceTable) -> String {
    let mut out = String::new();
    let Some(first) = t.0.first() else {
        return out;
    };
    let cols: Vec<&str> = first.0.iter().map(|(k, _)| k.as_str()).collect();
    out.push_str(&cols.join(","));
    out.push('\n');
    for row in &t.0 {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| {
                let v = row.0.iter().find(|(k, _)| k == c).map(|(_, v)| v);
                match (*c, v) {
                    ("uuid", Some(ble_data::JsonValue::Str(s))) => format!("0x{s}"),
                    ("perm", Some(ble_data::JsonValue::Int(n))) => format!("0x{n:02X}"),
                    (_, Some(ble_data::JsonValue::Int(n))) => n.to_string(),
                    (_, Some(ble_data::JsonValue::Str(s))) => s.clone(),
                    (_, None) => String::new(),
                }
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// Writes the manifest (as `manifest.kdl`) and its files under `dir`, keys with mode 0600.
pub fn write(dir: &Path, imported: &Imported) -> std::io::Result<std::path::PathBuf> {
    for f in &imported.files {
        // Explicit modes: keys 0600, everything else 0644 (the temporary file starts as 0600).
        let mode = if f.secret { 0o600 } else { 0o644 };
        crate::output::write_atomic(&dir.join(&f.path), &f.bytes, Some(mode))?;
    }
    let path = dir.join("manifest.kdl");
    crate::output::write_atomic(&path, imported.manifest.as_bytes(), Some(0o644))?;
    Ok(path)
}

/// The outcome of rebuilding an imported manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The rebuilt factory image equals the input byte for byte.
    Identical,
    /// They differ; the first differing offset (or the shorter length).
    Differs {
        /// First differing byte offset.
        first: usize,
        /// Rebuilt length.
        rebuilt_len: usize,
    },
    /// The manifest did not build.
    BuildFailed(String),
}

/// Builds the manifest at `manifest` and compares its factory image (filled or unfilled,
/// whichever has the input's length) with `original`.
pub fn verify(manifest: &Path, original: &[u8]) -> Verification {
    let plan = match crate::manifest::load(manifest) {
        Ok((plan, _)) => plan,
        Err(d) => return Verification::BuildFailed(format!("{d:?}")),
    };
    let images = match crate::build::emit(&plan, crate::build::Jobs::Sequential) {
        Ok(i) => i,
        Err(d) => return Verification::BuildFailed(format!("{d:?}")),
    };
    let factories: Vec<_> = images
        .iter()
        .filter(|i| i.name.starts_with("factory"))
        .collect();
    let Some(best) = factories
        .iter()
        .find(|i| i.bytes.len() == original.len())
        .or(factories.first())
    else {
        return Verification::BuildFailed("the build made no factory image".to_owned());
    };
    if &best.bytes[..] == original {
        return Verification::Identical;
    }
    let first = best
        .bytes
        .iter()
        .zip(original)
        .position(|(a, b)| a != b)
        .unwrap_or(best.bytes.len().min(original.len()));
    Verification::Differs {
        first,
        rebuilt_len: best.bytes.len(),
    }
}
