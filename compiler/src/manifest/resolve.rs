//! Stage 2: from parsed documents (the manifest and the bases it extends) and the module
//! catalogue to a validated [`Plan`], collecting every problem before any byte is emitted.

mod certificates;
mod firmware_parts;
mod gatts_rows;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::document::{self, AttributeNode, Document, PkiKind, PkiRole, TableNode, UuidValue};
use super::error::{Diagnostics, ErrorKind, ManifestError, did_you_mean};
use super::plan::{
    BlePlan, FactoryParams, InputFiles, ModuleInfo, PartPlan, PkiPlan, Plan, TablePlan, TableRow,
};
use super::source::{Place, SourceFile, Spanned};
use crate::catalogue::{Catalogue, Layout, Module};
use crate::input::InputKind;
use crate::release::{Era, NvsPages, Release};
use crate::target::{Chip, FlashFreq, FlashMode, FlashSettings, FlashSize};

/// Kconfig symbols of ESP-AT's dependency files that a manifest may switch (`docs/formats/esp-at-images.md` §11).
pub const FEATURES: &[&str] = &[
    "AT_BLE_COMMAND_SUPPORT",
    "AT_FS_COMMAND_SUPPORT",
    "AT_SSL_SERVER_CLIENT_AUTH_SERVER",
    "AT_SSL_SERVER_SERVER_AUTH_CLIENT",
    "AT_SSL_CLIENT_SERVER_AUTH_CLIENT",
    "AT_SSL_CLIENT_CLIENT_AUTH_SERVER",
    "AT_EAP_COMMAND_SUPPORT",
    "AT_MQTT_BROKER_AUTH_CLIENT",
    "AT_MQTT_CLIENT_AUTH_BROKER",
    "AT_HTTPS_SERVER_AUTH_CLIENT",
    "AT_HTTPS_CLIENT_AUTH_SERVER",
    "AT_WSS_SERVER_AUTH_CLIENT",
    "AT_WSS_CLIENT_AUTH_SERVER",
    "AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT",
];

/// Features on in ESP-AT's default build of every ESP32 / ESP32-C3 module (`docs/formats/esp-at-images.md` §8.1, §11.1).
pub const DEFAULT_FEATURES: &[&str] = &[
    "AT_BLE_COMMAND_SUPPORT",
    "AT_SSL_SERVER_CLIENT_AUTH_SERVER",
    "AT_SSL_SERVER_SERVER_AUTH_CLIENT",
    "AT_SSL_CLIENT_SERVER_AUTH_CLIENT",
    "AT_SSL_CLIENT_CLIENT_AUTH_SERVER",
    "AT_MQTT_BROKER_AUTH_CLIENT",
    "AT_MQTT_CLIENT_AUTH_BROKER",
    "AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT",
];

/// The Kconfig symbol that makes ESP-AT read a PKI role.
pub fn feature_of(role: PkiRole) -> &'static str {
    match role {
        PkiRole::ServerCert | PkiRole::ServerKey => "AT_SSL_SERVER_CLIENT_AUTH_SERVER",
        PkiRole::ServerCa => "AT_SSL_SERVER_SERVER_AUTH_CLIENT",
        PkiRole::ClientCert | PkiRole::ClientKey => "AT_SSL_CLIENT_SERVER_AUTH_CLIENT",
        PkiRole::ClientCa => "AT_SSL_CLIENT_CLIENT_AUTH_SERVER",
        PkiRole::EapCert | PkiRole::EapKey | PkiRole::EapCa => "AT_EAP_COMMAND_SUPPORT",
        PkiRole::MqttCert | PkiRole::MqttKey => "AT_MQTT_BROKER_AUTH_CLIENT",
        PkiRole::MqttCa => "AT_MQTT_CLIENT_AUTH_BROKER",
        PkiRole::HttpsCert | PkiRole::HttpsKey => "AT_HTTPS_SERVER_AUTH_CLIENT",
        PkiRole::HttpsCa => "AT_HTTPS_CLIENT_AUTH_SERVER",
        PkiRole::WssCert | PkiRole::WssKey => "AT_WSS_SERVER_AUTH_CLIENT",
        PkiRole::WssCa => "AT_WSS_CLIENT_AUTH_SERVER",
    }
}

/// ESP-AT's partition / namespace name of a role in `release` (`server_cert`, `wpa2_ca`, ...).
pub fn esp_at_name(role: PkiRole, release: Release) -> String {
    let n = role.node_name().replace('-', "_");
    match n.strip_prefix("eap_") {
        Some(rest) => format!("{}_{rest}", release.eap_prefix()),
        None => n,
    }
}

/// A manifest file read and parsed, with the problems parsing found.
struct Loaded {
    file: SourceFile,
    doc: Document,
}

/// Reads, parses and resolves the manifest at `path`: the whole front half of the compiler.
///
/// On success the plan may still carry warnings in the returned [`Diagnostics`]; on failure the
/// diagnostics hold every error found (syntax, unknown names, catalogue, partition rules, ...).
pub fn load(path: &Path) -> Result<(Plan, Diagnostics), Diagnostics> {
    load_with(path, Catalogue::builtin())
}

/// [`load`] with an explicit catalogue.
pub fn load_with(path: &Path, catalogue: &Catalogue) -> Result<(Plan, Diagnostics), Diagnostics> {
    load_inner(path, None, catalogue)
}

/// Resolves manifest `text` as if it were the file at `path` (bases it extends are still read
/// from disk, relative to `path`). For editors, tests and the fuzzer.
pub fn load_text(path: &Path, text: &str) -> Result<(Plan, Diagnostics), Diagnostics> {
    load_inner(path, Some(text), Catalogue::builtin())
}

fn load_inner(
    path: &Path,
    text: Option<&str>,
    catalogue: &Catalogue,
) -> Result<(Plan, Diagnostics), Diagnostics> {
    let mut diags = Diagnostics::new(path.display().to_string());
    let mut files = InputFiles::default();
    if let Some(text) = text {
        files
            .0
            .insert(path.to_path_buf(), Arc::from(text.as_bytes()));
    }
    let mut stack = super::extends_walk::ExtendsWalk::default();
    let merged = load_merged(path, None, &mut stack, &mut files, &mut diags);
    let Some((top, doc)) = merged else {
        return Err(diags);
    };
    let plan = Resolver {
        catalogue,
        diags: &mut diags,
        files: &mut files,
        top: &top,
    }
    .resolve(&doc);
    if diags.has_errors() {
        return Err(diags);
    }
    match plan {
        Some(mut plan) => {
            plan.files = files;
            Ok((plan, diags))
        }
        None => Err(diags),
    }
}

fn read_file(
    path: &Path,
    kind: InputKind,
    place: Option<&Place>,
    files: &mut InputFiles,
    diags: &mut Diagnostics,
) -> Option<Arc<[u8]>> {
    if let Some(b) = files.get(path) {
        return Some(b.clone());
    }
    match crate::input::read(path, kind) {
        Ok(bytes) => {
            let bytes: Arc<[u8]> = bytes.into();
            files.0.insert(path.to_path_buf(), bytes.clone());
            Some(bytes)
        }
        Err(e) => {
            diags.push(super::inputs::refused(&e, place));
            None
        }
    }
}

/// Loads `path` and everything it extends, and merges them (bases first, then the file itself).
/// Returns the top file and the merged document.
fn load_merged(
    path: &Path,
    named_at: Option<&Place>,
    stack: &mut super::extends_walk::ExtendsWalk,
    files: &mut InputFiles,
    diags: &mut Diagnostics,
) -> Option<(SourceFile, Document)> {
    let canonical = fs_err::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(pos) = stack.iter().position(|(c, _)| *c == canonical) {
        // Show the paths as the manifests wrote them: stable across checkouts.
        let chain: Vec<String> = stack[pos..]
            .iter()
            .map(|(_, shown)| shown.display().to_string())
            .chain(std::iter::once(path.display().to_string()))
            .collect();
        let mut err = ManifestError::new(
            ErrorKind::ExtendsCycle,
            format!("`extends` forms a cycle: {}", chain.join(" → ")),
        );
        if let Some(p) = named_at {
            err = err.at(p, "extends a manifest that extends this one");
        }
        diags.push(err.help(
            "a base manifest must not extend (directly or not) the manifest that extends it",
        ));
        return None;
    }
    if let Err(e) = stack.admit(path, named_at) {
        diags.push(e);
        return None;
    }
    let bytes = read_file(path, InputKind::MANIFEST, named_at, files, diags)?;
    if let Err(e) = super::inputs::check_manifest_text(path, &bytes, named_at) {
        diags.push(e);
        return None;
    }
    let Ok(text) = String::from_utf8(bytes.to_vec()) else {
        let mut err = ManifestError::new(
            ErrorKind::FileUnreadable,
            format!("{} is not UTF-8 text", path.display()),
        );
        if let Some(p) = named_at {
            err = err.at(p, "named here");
        }
        diags.push(err.help("manifests are UTF-8 KDL files"));
        return None;
    };
    let file = SourceFile::new(path, text);
    let (doc, problems) = document::parse(&file);
    let syntax_failed = problems
        .iter()
        .any(|p| super::kdl_guard::stops_parsing(p.kind()));
    for p in problems {
        diags.push(p);
    }
    if syntax_failed {
        return None;
    }
    if doc.espfleet.is_none() {
        diags.push(
            ManifestError::new(
                ErrorKind::NodeMissing,
                "the manifest does not say its language version",
            )
            .at(
                &Place {
                    file: file.clone(),
                    span: (0, 0).into(),
                },
                "`espfleet 1` expected first",
            )
            .help("start the manifest with `espfleet 1`"),
        );
    }
    let loaded = Loaded {
        file: file.clone(),
        doc,
    };
    stack.push((canonical, path.to_path_buf()));
    let mut bases = Vec::new();
    for base in &loaded.doc.extends {
        let base_path = loaded.file.dir().join(&base.value);
        if let Some((_, d)) = load_merged(&base_path, Some(&base.place), stack, files, diags) {
            bases.push((base.place.clone(), d));
        }
    }
    stack.pop();
    let merged = merge(loaded.doc, &bases, diags);
    Some((loaded.file, merged))
}

/// Picks a value: the manifest's own, else the one its bases agree on; bases that disagree with
/// no decision in the manifest are an error.
fn pick<T: Clone>(
    field: &str,
    own: Option<T>,
    bases: &[(Place, Option<T>)],
    same: impl Fn(&T, &T) -> bool,
    place_of: impl Fn(&T) -> Place,
    diags: &mut Diagnostics,
) -> Option<T> {
    if own.is_some() {
        return own;
    }
    let mut chosen: Option<T> = None;
    for (_, v) in bases {
        let Some(v) = v else { continue };
        match &chosen {
            None => chosen = Some(v.clone()),
            Some(c) if same(c, v) => {}
            Some(c) => {
                diags.push(
                    ManifestError::new(
                        ErrorKind::OverrideConflict,
                        format!("the bases this manifest extends set `{field}` differently"),
                    )
                    .at(&place_of(v), "set here")
                    .note(&place_of(c), "and differently here")
                    .help(format!(
                        "set `{field}` in the manifest itself to decide, or make the bases agree ({} and {})",
                        place_of(c).file.path().display(),
                        place_of(v).file.path().display()
                    )),
                );
                return None;
            }
        }
    }
    chosen
}

fn same_spanned<T: PartialEq>(a: &Spanned<T>, b: &Spanned<T>) -> bool {
    a.value == b.value
}

/// Merges a document over its (already merged) bases. Names and match rules are never
/// inherited: they identify one device.
fn merge(doc: Document, bases: &[(Place, Document)], diags: &mut Diagnostics) -> Document {
    macro_rules! field {
        ($name:literal, $own:expr, |$d:ident| $get:expr) => {{
            let b: Vec<_> = bases.iter().map(|(p, $d)| (p.clone(), $get)).collect();
            pick($name, $own, &b, same_spanned, |v| v.place.clone(), diags)
        }};
    }
    if bases.is_empty() {
        return doc;
    }
    let module = {
        let b: Vec<_> = bases
            .iter()
            .map(|(p, d)| (p.clone(), d.module.clone()))
            .collect();
        pick(
            "module",
            doc.module,
            &b,
            |a, c| {
                a.name.value == c.name.value
                    && a.chip.as_ref().map(|x| x.value) == c.chip.as_ref().map(|x| x.value)
            },
            |v| v.name.place.clone(),
            diags,
        )
    };
    let esp_at = {
        let b: Vec<_> = bases
            .iter()
            .map(|(p, d)| (p.clone(), d.esp_at.clone()))
            .collect();
        let own = doc.esp_at;
        let release = pick(
            "esp-at",
            own.as_ref().map(|e| e.release.clone()),
            &b.iter()
                .map(|(p, e)| (p.clone(), e.as_ref().map(|e| e.release.clone())))
                .collect::<Vec<_>>(),
            same_spanned,
            |v| v.place.clone(),
            diags,
        );
        let nvs_pages = pick(
            "nvs-pages",
            own.as_ref().and_then(|e| e.nvs_pages.clone()),
            &b.iter()
                .map(|(p, e)| (p.clone(), e.as_ref().and_then(|e| e.nvs_pages.clone())))
                .collect::<Vec<_>>(),
            same_spanned,
            |v| v.place.clone(),
            diags,
        );
        release.map(|release| document::EspAtNode { release, nvs_pages })
    };
    let flash_own = doc.flash.unwrap_or_default();
    let flash = document::FlashNode {
        mode: field!("flash mode", flash_own.mode, |d| d
            .flash
            .as_ref()
            .and_then(|f| f.mode.clone())),
        freq: field!("flash freq", flash_own.freq, |d| d
            .flash
            .as_ref()
            .and_then(|f| f.freq.clone())),
        size: field!("flash size", flash_own.size, |d| d
            .flash
            .as_ref()
            .and_then(|f| f.size.clone())),
    };
    let u = doc.uart.unwrap_or_default();
    let uart = document::UartNode {
        port: field!("uart port", u.port, |d| d
            .uart
            .as_ref()
            .and_then(|x| x.port.clone())),
        baud: field!("uart baud", u.baud, |d| d
            .uart
            .as_ref()
            .and_then(|x| x.baud.clone())),
        tx: field!("uart tx", u.tx, |d| d
            .uart
            .as_ref()
            .and_then(|x| x.tx.clone())),
        rx: field!("uart rx", u.rx, |d| d
            .uart
            .as_ref()
            .and_then(|x| x.rx.clone())),
        cts: field!("uart cts", u.cts, |d| d
            .uart
            .as_ref()
            .and_then(|x| x.cts.clone())),
        rts: field!("uart rts", u.rts, |d| d
            .uart
            .as_ref()
            .and_then(|x| x.rts.clone())),
    };
    let w = doc.wifi.unwrap_or_default();
    let wifi = document::WifiNode {
        country: field!("wifi country", w.country, |d| d
            .wifi
            .as_ref()
            .and_then(|x| x.country.clone())),
        start_channel: field!("wifi start-channel", w.start_channel, |d| d
            .wifi
            .as_ref()
            .and_then(|x| x.start_channel.clone())),
        channel_count: field!("wifi channel-count", w.channel_count, |d| d
            .wifi
            .as_ref()
            .and_then(|x| x.channel_count.clone())),
        max_tx_power: field!("wifi max-tx-power", w.max_tx_power, |d| d
            .wifi
            .as_ref()
            .and_then(|x| x.max_tx_power.clone())),
    };
    let sys_store = field!("sys-store", doc.sys_store, |d| d.sys_store.clone());

    // Features: per symbol, the manifest's own setting wins; bases must agree otherwise.
    let mut features: Vec<document::FeatureNode> = Vec::new();
    let mut symbols: Vec<String> = Vec::new();
    for f in bases
        .iter()
        .flat_map(|(_, d)| &d.features)
        .chain(&doc.features)
    {
        if !symbols.contains(&f.symbol.value) {
            symbols.push(f.symbol.value.clone());
        }
    }
    for sym in symbols {
        let own = doc
            .features
            .iter()
            .rev()
            .find(|f| f.symbol.value == sym)
            .cloned();
        let b: Vec<_> = bases
            .iter()
            .map(|(p, d)| {
                (
                    p.clone(),
                    d.features
                        .iter()
                        .rev()
                        .find(|f| f.symbol.value == sym)
                        .cloned(),
                )
            })
            .collect();
        if let Some(f) = pick(
            &format!("features {sym}"),
            own,
            &b,
            |a, c| a.enabled.value == c.enabled.value,
            |v| v.symbol.place.clone(),
            diags,
        ) {
            features.push(f);
        }
    }

    // Tables: edits accumulate, bases first.
    let merge_table = |own: Option<TableNode>,
                       get: &dyn Fn(&Document) -> Option<TableNode>,
                       diags: &mut Diagnostics|
     -> Option<TableNode> {
        let base_tables: Vec<(Place, Option<TableNode>)> =
            bases.iter().map(|(p, d)| (p.clone(), get(d))).collect();
        if own.is_none() && base_tables.iter().all(|(_, t)| t.is_none()) {
            return None;
        }
        let own = own.unwrap_or_default();
        let offset = pick(
            "table offset",
            own.offset.clone(),
            &base_tables
                .iter()
                .map(|(p, t)| (p.clone(), t.as_ref().and_then(|t| t.offset.clone())))
                .collect::<Vec<_>>(),
            same_spanned,
            |v| v.place.clone(),
            diags,
        );
        let replace = own.replace.clone().or_else(|| {
            base_tables
                .iter()
                .rev()
                .find_map(|(_, t)| t.as_ref().and_then(|t| t.replace.clone()))
        });
        let mut partitions = Vec::new();
        let mut remove = Vec::new();
        for t in base_tables
            .iter()
            .filter_map(|(_, t)| t.as_ref())
            .chain(std::iter::once(&own))
        {
            partitions.extend(t.partitions.iter().cloned());
            remove.extend(t.remove.iter().cloned());
        }
        Some(TableNode {
            offset,
            replace,
            partitions,
            remove,
        })
    };
    let partition_table = merge_table(doc.partition_table, &|d| d.partition_table.clone(), diags);
    let at_customize = merge_table(doc.at_customize, &|d| d.at_customize.clone(), diags);

    // Certificates: per role.
    let mut certificates = Vec::new();
    for role in PkiRole::ALL {
        let own = doc
            .certificates
            .iter()
            .rev()
            .find(|c| c.role.value == role)
            .cloned();
        let b: Vec<_> = bases
            .iter()
            .map(|(p, d)| {
                (
                    p.clone(),
                    d.certificates
                        .iter()
                        .rev()
                        .find(|c| c.role.value == role)
                        .cloned(),
                )
            })
            .collect();
        if let Some(c) = pick(
            role.node_name(),
            own,
            &b,
            |a, c| {
                a.files
                    .iter()
                    .map(|f| f.place.file.dir().join(&f.value))
                    .eq(c.files.iter().map(|f| f.place.file.dir().join(&f.value)))
            },
            |v| v.role.place.clone(),
            diags,
        ) {
            certificates.push(c);
        }
    }
    let ble = {
        let b: Vec<_> = bases
            .iter()
            .map(|(p, d)| (p.clone(), d.ble.clone()))
            .collect();
        pick(
            "ble",
            doc.ble,
            &b,
            |_, _| false,
            |_| {
                b.iter()
                    .find(|(_, v)| v.is_some())
                    .map_or_else(|| b[0].0.clone(), |(p, _)| p.clone())
            },
            diags,
        )
    };
    let firmware = {
        let own = doc.firmware.unwrap_or_default();
        let release = field!("firmware release", own.release.clone(), |d| d
            .firmware
            .as_ref()
            .and_then(|f| f.release.clone()));
        let mut parts: Vec<document::PartNode> = Vec::new();
        for p in bases
            .iter()
            .filter_map(|(_, d)| d.firmware.as_ref())
            .flat_map(|f| &f.parts)
            .chain(&own.parts)
        {
            parts.retain(|q| q.name.value != p.name.value);
            parts.push(p.clone());
        }
        (release.is_some() || !parts.is_empty())
            .then_some(document::FirmwareNode { release, parts })
    };
    Document {
        espfleet: doc.espfleet,
        extends: doc.extends,
        name: doc.name,
        module,
        esp_at,
        flash: Some(flash),
        uart: Some(uart),
        wifi: Some(wifi),
        sys_store,
        features,
        partition_table,
        at_customize,
        certificates,
        ble,
        firmware,
        matches: doc.matches,
        identity: merge_identity(doc.identity, bases, diags),
    }
}

/// `identity` is taken whole: the manifest's own, else the one base that has it.
fn merge_identity(
    own: Option<super::identity::IdentityNode>,
    bases: &[(Place, Document)],
    diags: &mut Diagnostics,
) -> Option<super::identity::IdentityNode> {
    let b: Vec<_> = bases
        .iter()
        .map(|(p, d)| (p.clone(), d.identity.clone()))
        .collect();
    pick(
        "identity",
        own,
        &b,
        |_, _| false,
        |v| v.place.clone().unwrap_or_else(|| b[0].0.clone()),
        diags,
    )
}

struct Resolver<'a> {
    catalogue: &'a Catalogue,
    diags: &'a mut Diagnostics,
    files: &'a mut InputFiles,
    top: &'a SourceFile,
}

fn top_place(file: &SourceFile) -> Place {
    Place {
        file: file.clone(),
        span: (0, 0).into(),
    }
}

impl<'a> Resolver<'a> {
    fn err(&mut self, e: ManifestError) {
        self.diags.push(e);
    }

    fn resolve(&mut self, doc: &Document) -> Option<Plan> {
        let module = self.module(doc);
        let release = self.release(doc);
        let (module, release) = (module?, release?);
        let chip = module.chip;
        let Some(layout) = self.catalogue.layout(module, release) else {
            let releases: Vec<String> = self
                .catalogue
                .releases_of(module)
                .iter()
                .map(ToString::to_string)
                .collect();
            let place = doc
                .esp_at
                .as_ref()
                .map_or_else(|| top_place(self.top), |e| e.release.place.clone());
            self.err(
                ManifestError::new(
                    ErrorKind::ModuleUnavailable,
                    format!("ESP-AT {release} does not ship {} ({chip})", module.name),
                )
                .at(&place, "release without this module")
                .help(format!("{} ships in: {}", module.name, releases.join(", "))),
            );
            return None;
        };
        let era = release.era();
        let flash = self.flash(doc, layout);
        let factory = self.factory(doc, module, release);
        let features = self.features(doc, release);
        let partition_table =
            self.table(doc.partition_table.as_ref(), &layout.partition_table, false);
        let at_customize = self.table(doc.at_customize.as_ref(), &layout.at_customize, true);
        let mut partition_table = partition_table;
        let mut at_customize = at_customize;
        // ESP-AT builds the primary table with --disable-md5sum and the flash-size check, and
        // at_customize.bin with gen_esp32part's defaults (offset 0x8000, MD5 on; `docs/formats/esp-at-images.md` §1.2, §3).
        let primary_opts = crate::partition_table::TableOptions {
            table_offset: partition_table.offset,
            md5: false,
            flash_size: Some(u64::from(
                flash.map_or(layout.flash.size, |f| f.size).bytes(),
            )),
            ..Default::default()
        };
        self.lay_out(
            &mut partition_table,
            &primary_opts,
            doc.partition_table.as_ref(),
        );
        self.lay_out(
            &mut at_customize,
            &crate::partition_table::TableOptions::default(),
            doc.at_customize.as_ref(),
        );
        self.check_at_customize(&partition_table, &at_customize, doc);
        self.check_dependencies(era, release, &features, &at_customize, doc);
        let pki = self.pki(doc, release, era, &features, &at_customize);
        self.check_pki(&pki, era, &at_customize);
        let ble = self.ble(doc, era, &features, &at_customize);
        let firmware = self.firmware(doc, chip, &partition_table, &at_customize);
        let identity = self.identity(doc, release, &features, &at_customize, &pki);
        let nvs_pages = match doc
            .esp_at
            .as_ref()
            .and_then(|e| e.nvs_pages.as_ref())
            .map(|s| s.value.as_str())
        {
            Some("legacy") => NvsPages::Legacy,
            Some(_) => NvsPages::Active,
            None => release.default_nvs_pages(),
        };
        let name = doc.name.as_ref().map_or_else(
            || {
                self.top.path().file_stem().map_or_else(
                    || "manifest".to_owned(),
                    |s| s.to_string_lossy().into_owned(),
                )
            },
            |n| n.value.clone(),
        );
        Some(Plan {
            name,
            manifest: self.top.path().to_path_buf(),
            chip,
            module: ModuleInfo {
                name: module.name.clone(),
                platform: chip.platform().to_owned(),
                config_dir: module.config.clone(),
                description: module.description.clone(),
            },
            release,
            era,
            nvs_pages,
            flash: flash?,
            factory,
            features,
            partition_table,
            at_customize,
            pki,
            ble,
            firmware,
            matches: doc.matches.iter().map(|m| m.rule.value.clone()).collect(),
            files: InputFiles::default(),
            identity,
        })
    }

    /// The `identity` section (resolved in [`super::identity::resolve`]).
    fn identity(
        &mut self,
        doc: &Document,
        release: Release,
        features: &BTreeSet<String>,
        at_customize: &TablePlan,
        pki: &[PkiPlan],
    ) -> Option<super::identity::IdentityPlan> {
        let node = doc.identity.as_ref()?;
        let cx = super::identity::ResolveContext {
            release,
            features,
            at_customize,
            pki,
            top: top_place(self.top),
        };
        let mut errors = Vec::new();
        let (files, diags) = (&mut *self.files, &mut *self.diags);
        let plan = super::identity::resolve(
            node,
            &cx,
            &mut |path, place| read_file(path, InputKind::CERTIFICATE, Some(place), files, diags),
            &mut errors,
        );
        for e in errors {
            self.err(e);
        }
        plan
    }

    fn module(&mut self, doc: &Document) -> Option<&'a Module> {
        let cat = self.catalogue;
        let Some(m) = &doc.module else {
            self.err(
                ManifestError::new(ErrorKind::NodeMissing, "the manifest does not name a module")
                    .at(&top_place(self.top), "`module` expected")
                    .help("add a line such as `module \"WROOM-32\" chip=\"esp32\"` (see `manifests/README.md` for the catalogue)"),
            );
            return None;
        };
        let chip = m.chip.as_ref().map(|c| c.value);
        let found = cat.find(&m.name.value, chip);
        match found.as_slice() {
            [one] => Some(one),
            [] => {
                let same_name = cat.find(&m.name.value, None);
                let mut err = ManifestError::new(
                    ErrorKind::ModuleUnknown,
                    match chip {
                        Some(c) if !same_name.is_empty() => {
                            format!("the catalogue has no {c} module `{}`", m.name.value)
                        }
                        _ => format!("the catalogue has no module `{}`", m.name.value),
                    },
                )
                .at(&m.name.place, "unknown module");
                let names: Vec<&str> = cat
                    .modules
                    .iter()
                    .filter(|x| chip.is_none_or(|c| c == x.chip))
                    .map(|x| x.name.as_str())
                    .collect();
                err = if let Some(other) = same_name.first() {
                    err.help(format!(
                        "`{}` is a {} module: write chip=\"{}\"",
                        other.name, other.chip, other.chip
                    ))
                } else if let Some(s) = did_you_mean(&m.name.value, names.iter().copied()) {
                    err.help(format!("did you mean `{s}`?"))
                } else {
                    err.help(format!("modules: {}", names.join(", ")))
                };
                self.err(err);
                None
            }
            many => {
                let chips: Vec<String> = many
                    .iter()
                    .map(|x| format!("chip=\"{}\"", x.chip))
                    .collect();
                self.err(
                    ManifestError::new(
                        ErrorKind::ModuleAmbiguous,
                        format!("`{}` exists for several chips", m.name.value),
                    )
                    .at(&m.name.place, "which chip?")
                    .help(format!("add one of: {}", chips.join(", "))),
                );
                None
            }
        }
    }

    fn release(&mut self, doc: &Document) -> Option<Release> {
        let Some(e) = &doc.esp_at else {
            self.err(
                ManifestError::new(ErrorKind::NodeMissing, "the manifest does not say which ESP-AT release it targets")
                    .at(&top_place(self.top), "`esp-at` expected")
                    .help("add a line such as `esp-at \"v4.1.1.0\"`; it selects the image formats (v2.2–v3.0: per-partition bins; v3.1+: mfg_nvs)"),
            );
            return None;
        };
        if let Ok(r) = e.release.value.parse::<Release>() {
            Some(r)
        } else {
            let mut err = ManifestError::new(
                ErrorKind::ReleaseUnknown,
                format!("unknown ESP-AT release `{}`", e.release.value),
            )
            .at(&e.release.place, "unknown release");
            err = match did_you_mean(&e.release.value, crate::release::KNOWN.iter().copied()) {
                Some(s) => err.help(format!("did you mean `{s}`?")),
                None => err.help(format!(
                    "known releases: {}",
                    crate::release::KNOWN.join(", ")
                )),
            };
            self.err(err);
            None
        }
    }

    fn flash(&mut self, doc: &Document, layout: &Layout) -> Option<FlashSettings> {
        let mut f = layout.flash;
        let node = doc.flash.clone().unwrap_or_default();
        let mut ok = true;
        if let Some(m) = &node.mode {
            if let Some(v) = FlashMode::parse(&m.value) {
                f.mode = v
            } else {
                ok = false;
                self.err(bad_choice(m, "flash mode", &["qio", "qout", "dio", "dout"]));
            }
        }
        if let Some(m) = &node.freq {
            if let Some(v) = FlashFreq::parse(&m.value) {
                f.freq = v
            } else {
                ok = false;
                self.err(bad_choice(
                    m,
                    "flash frequency",
                    &["80m", "40m", "26m", "20m"],
                ));
            }
        }
        if let Some(m) = &node.size {
            if let Some(v) = FlashSize::parse(&m.value) {
                f.size = v
            } else {
                ok = false;
                self.err(bad_choice(
                    m,
                    "flash size",
                    &["1MB", "2MB", "4MB", "8MB", "16MB"],
                ));
            }
        }
        ok.then_some(f)
    }

    fn factory(&mut self, doc: &Document, module: &Module, release: Release) -> FactoryParams {
        let u = doc.uart.clone().unwrap_or_default();
        let w = doc.wifi.clone().unwrap_or_default();
        let d = module.uart;
        let get = |v: &Option<Spanned<i32>>, default: i32| v.as_ref().map_or(default, |s| s.value);
        let params = FactoryParams {
            module_name: module.name.clone(),
            platform: module.chip.platform().to_owned(),
            uart_port: get(&u.port, d.port),
            uart_baudrate: get(&u.baud, d.baud),
            uart_tx_pin: get(&u.tx, d.tx),
            uart_rx_pin: get(&u.rx, d.rx),
            uart_cts_pin: get(&u.cts, d.cts),
            uart_rts_pin: get(&u.rts, d.rts),
            country_code: w
                .country
                .as_ref()
                .map_or_else(|| module.wifi.country.clone(), |s| s.value.clone()),
            start_channel: w
                .start_channel
                .as_ref()
                .map_or(module.wifi.start_channel, |s| s.value),
            channel_num: w
                .channel_count
                .as_ref()
                .map_or(module.wifi.channel_count, |s| s.value),
            max_tx_power: w
                .max_tx_power
                .as_ref()
                .map_or(module.wifi.max_tx_power, |s| s.value),
            sys_store: release
                .has_sys_store()
                .then(|| doc.sys_store.as_ref().map_or(1, |s| s.value)),
        };
        if let (Some(s), false) = (&doc.sys_store, release.has_sys_store()) {
            self.err(
                ManifestError::new(ErrorKind::ValueInvalid, format!("ESP-AT {release} has no sys_store factory parameter"))
                    .at(&s.place, "ignored")
                    .help("sys-store is read by ESP-AT v4.1.0.0 and later; remove it or target a newer release")
                    .warning(),
            );
        }
        // Country code: as ESP-IDF's esp_wifi_set_country_code accepts it (docs/value-rules.md).
        if let Some(c) = &w.country {
            if let Err(e) = crate::wifi_country::check(&c.value) {
                self.err(
                    ManifestError::new(ErrorKind::ValueInvalid, e.to_string())
                        .at(&c.place, "not accepted by ESP-IDF")
                        .help(e.help()),
                );
            }
        }
        if u32::from(params.start_channel) + u32::from(params.channel_num) - 1 > 14 {
            let place = w
                .channel_count
                .as_ref()
                .or(w.start_channel.as_ref())
                .map(|s| s.place.clone());
            let mut err = ManifestError::new(
                ErrorKind::ValueInvalid,
                format!(
                    "channels {}..{} go past channel 14",
                    params.start_channel,
                    u32::from(params.start_channel) + u32::from(params.channel_num) - 1
                ),
            )
            .help("start-channel + channel-count - 1 must be at most 14");
            if let Some(p) = place {
                err = err.at(&p, "too many channels");
            }
            self.err(err);
        }
        self.check_pins(&u, module);
        params
    }

    fn check_pins(&mut self, u: &document::UartNode, module: &Module) {
        let Some(chip) = self.catalogue.chip(module.chip).cloned() else {
            return;
        };
        let pins = [
            ("tx", &u.tx, true),
            ("rx", &u.rx, false),
            ("cts", &u.cts, false),
            ("rts", &u.rts, true),
        ];
        let mut used: BTreeMap<i32, Place> = BTreeMap::new();
        for (name, pin, output) in pins {
            let Some(p) = pin else { continue };
            let n = p.value;
            if n < 0 {
                continue;
            }
            let problem = if n >= i32::from(chip.gpio_count) {
                Some(format!(
                    "{} has GPIO0–GPIO{} only",
                    module.chip,
                    chip.gpio_count - 1
                ))
            } else if chip
                .reserved
                .iter()
                .chain(&module.reserved)
                .any(|&r| i32::from(r) == n)
            {
                Some(format!(
                    "GPIO{n} is used internally by the {} (flash or PSRAM)",
                    module.name
                ))
            } else if output && chip.input_only.iter().any(|&r| i32::from(r) == n) {
                Some(format!(
                    "GPIO{n} is input-only and cannot drive UART {}",
                    name.to_ascii_uppercase()
                ))
            } else {
                None
            };
            if let Some(why) = problem {
                self.err(
                    ManifestError::new(ErrorKind::PinUnusable, format!("uart {name}={n} cannot be used on the {}: {why}", module.name))
                        .at(&p.place, "unusable pin")
                        .help("pick a free GPIO of the module (see its datasheet), or -1 for none (cts/rts)"),
                );
            } else if let Some(first) = used.get(&n) {
                self.err(
                    ManifestError::new(
                        ErrorKind::PinUnusable,
                        format!("GPIO{n} is given to two UART signals"),
                    )
                    .at(&p.place, "used again here")
                    .note(first, "first used here")
                    .help("every UART signal needs its own GPIO"),
                );
            } else {
                used.insert(n, p.place.clone());
            }
        }
    }

    fn features(&mut self, doc: &Document, release: Release) -> BTreeSet<String> {
        let mut set: BTreeSet<String> = DEFAULT_FEATURES.iter().map(|s| (*s).to_owned()).collect();
        for f in &doc.features {
            let sym = f.symbol.value.trim_start_matches("CONFIG_");
            if !FEATURES.contains(&sym) {
                let mut err = ManifestError::new(
                    ErrorKind::FeatureUnknown,
                    format!("unknown feature `{}`", f.symbol.value),
                )
                .at(&f.symbol.place, "unknown Kconfig symbol");
                err = match did_you_mean(sym, FEATURES.iter().copied()) {
                    Some(s) => err.help(format!("did you mean `{s}`?")),
                    None => err.help(format!(
                        "features are ESP-AT dependency-file symbols: {}",
                        FEATURES.join(", ")
                    )),
                };
                self.err(err);
                continue;
            }
            if (f.enabled.value && sym.contains("HTTPS") || f.enabled.value && sym.contains("WSS"))
                && !release.has_https_wss()
            {
                self.err(
                    ManifestError::new(
                        ErrorKind::FeatureUnknown,
                        format!("ESP-AT {release} has no {sym}"),
                    )
                    .at(&f.symbol.place, "not in this release")
                    .help("HTTPS and WSS certificates arrived in ESP-AT v4.1.0.0"),
                );
                continue;
            }
            if f.enabled.value {
                set.insert(sym.to_owned());
            } else {
                set.remove(sym);
            }
        }
        set
    }

    fn table(
        &mut self,
        node: Option<&TableNode>,
        source: &crate::catalogue::TableSource,
        at_customize: bool,
    ) -> TablePlan {
        let replace = node
            .and_then(|n| n.replace.as_ref())
            .is_some_and(|r| r.value);
        let mut rows: Vec<TableRow> = if replace {
            Vec::new()
        } else {
            catalogue_rows(source.csv)
        };
        let mut plan = TablePlan {
            layout: None,
            offset: node
                .and_then(|n| n.offset.as_ref())
                .map_or(source.offset, |o| o.value),
            source: (!replace).then(|| source.file.clone()),
            rows: Vec::new(),
        };
        let Some(node) = node else {
            plan.rows = rows;
            return plan;
        };
        let what = if at_customize {
            "at-customize"
        } else {
            "partition-table"
        };
        for r in &node.remove {
            let before = rows.len();
            rows.retain(|row| row.name != r.value);
            if rows.len() == before {
                let names: Vec<&str> = rows.iter().map(|x| x.name.as_str()).collect();
                let mut err = ManifestError::new(
                    ErrorKind::PartitionInvalid,
                    format!("{what} has no partition `{}` to remove", r.value),
                )
                .at(&r.place, "no such partition");
                err = match did_you_mean(&r.value, names.iter().copied()) {
                    Some(s) => err.help(format!("did you mean `{s}`?")),
                    None => err.help(format!("its partitions are: {}", names.join(", "))),
                };
                self.err(err);
            }
        }
        for p in &node.partitions {
            if p.name.value.len() > 16 {
                self.err(
                    ManifestError::new(ErrorKind::PartitionInvalid, format!("partition name `{}` is {} bytes long", p.name.value, p.name.value.len()))
                        .at(&p.name.place, "longer than 16 bytes")
                        .help("partition names hold at most 16 bytes; ESP-AT looks partitions up by their full name"),
                );
            }
            let file = p.file.as_ref().map(|f| f.place.file.dir().join(&f.value));
            if let (Some(path), Some(f)) = (&file, &p.file) {
                let _ = read_file(
                    path,
                    InputKind::IMAGE,
                    Some(&f.place),
                    self.files,
                    self.diags,
                );
            }
            if let Some(existing) = rows.iter_mut().find(|r| r.name == p.name.value) {
                let set = |slot: &mut String, v: &Option<Spanned<String>>| {
                    if let Some(v) = v {
                        v.value.clone_into(slot);
                    }
                };
                set(&mut existing.ty, &p.ty);
                set(&mut existing.subtype, &p.subtype);
                set(&mut existing.offset, &p.offset);
                set(&mut existing.size, &p.size);
                set(&mut existing.flags, &p.flags);
                if file.is_some() {
                    existing.file.clone_from(&file);
                }
                existing.place = Some(p.name.place.clone());
                continue;
            }
            let ty = match (&p.ty, at_customize) {
                (Some(t), _) => t.value.clone(),
                (None, true) => "0x40".to_owned(),
                (None, false) => {
                    self.err(
                        ManifestError::new(
                            ErrorKind::ArgumentMissing,
                            format!("new partition `{}` needs a type", p.name.value),
                        )
                        .at(&p.name.place, "type missing")
                        .help("add type=\"app\", type=\"data\" or a number such as type=0x40"),
                    );
                    continue;
                }
            };
            let Some(size) = &p.size else {
                self.err(
                    ManifestError::new(
                        ErrorKind::ArgumentMissing,
                        format!("new partition `{}` needs a size", p.name.value),
                    )
                    .at(&p.name.place, "size missing")
                    .help("add size=\"64K\" (or a number of bytes)"),
                );
                continue;
            };
            let subtype = match &p.subtype {
                Some(s) => s.value.clone(),
                None if ty == "0x40" || ty == "64" => "0".to_owned(),
                None if ty == "data" => String::new(),
                None => {
                    self.err(
                        ManifestError::new(
                            ErrorKind::ArgumentMissing,
                            format!("new partition `{}` needs a subtype", p.name.value),
                        )
                        .at(&p.name.place, "subtype missing")
                        .help("add subtype=\"ota_0\", subtype=\"nvs\", ... or a number"),
                    );
                    continue;
                }
            };
            rows.push(TableRow {
                name: p.name.value.clone(),
                ty,
                subtype,
                offset: p
                    .offset
                    .as_ref()
                    .map(|o| o.value.clone())
                    .unwrap_or_default(),
                size: size.value.clone(),
                flags: p
                    .flags
                    .as_ref()
                    .map(|f| f.value.clone())
                    .unwrap_or_default(),
                file,
                place: Some(p.name.place.clone()),
            });
        }
        if at_customize {
            for row in &rows {
                let ty = row.ty.trim().to_ascii_lowercase();
                let known = [
                    "app", "data", "0x40", "64", "0x00", "0x0", "0", "0x01", "0x1", "1",
                ];
                if !known.contains(&ty.as_str()) {
                    let mut err = ManifestError::new(
                        ErrorKind::PartitionInvalid,
                        format!("at_customize partition `{}` has type {}, but ESP-AT user partitions are type 0x40", row.name, row.ty),
                    )
                    .help("leave `type` out (it defaults to 0x40) unless the partition is an ESP-IDF app or data partition");
                    if let Some(p) = &row.place {
                        err = err.at(p, "wrong type");
                    }
                    self.err(err);
                }
            }
        }
        plan.rows = rows;
        plan
    }

    /// Lays out and verifies a table exactly as gen_esp32part.py would, mapping each error to the
    /// manifest row that causes it (catalogue rows point at the table node or the file top).
    fn lay_out(
        &mut self,
        table: &mut TablePlan,
        opts: &crate::partition_table::TableOptions,
        node: Option<&TableNode>,
    ) {
        use miette::Diagnostic as _;
        match crate::partition_table::parse_csv(&table.to_csv(), opts) {
            Ok(t) => table.layout = Some(t),
            Err(errors) => {
                let what = if opts.md5 {
                    "at_customize"
                } else {
                    "partition table"
                };
                for e in errors {
                    let row = e.row().and_then(|i| table.rows.get(i));
                    let place = row
                        .and_then(|r| r.place.clone())
                        .or_else(|| node.and_then(|n| n.offset.as_ref().map(|o| o.place.clone())))
                        .or_else(|| {
                            node.and_then(|n| n.partitions.first().map(|p| p.name.place.clone()))
                        })
                        .unwrap_or_else(|| top_place(self.top));
                    let subject = row.map_or_else(
                        || format!("the {what}"),
                        |r| format!("{what} partition `{}`", r.name),
                    );
                    let mut err =
                        ManifestError::new(ErrorKind::PartitionInvalid, format!("{subject}: {e}"))
                            .at(&place, "partition table problem");
                    if let Some(h) = e.help() {
                        err = err.help(h.to_string());
                    }
                    self.err(err);
                }
            }
        }
    }

    /// ESP-AT rule: the at_customize table and every partition in it lie inside the primary
    /// table's `at_customize` partition.
    fn check_at_customize(&mut self, primary: &TablePlan, atc: &TablePlan, doc: &Document) {
        if primary.row("at_customize").is_none() {
            let place = doc
                .partition_table
                .as_ref()
                .and_then(|t| {
                    t.remove
                        .iter()
                        .find(|r| r.value == "at_customize")
                        .map(|r| r.place.clone())
                })
                .unwrap_or_else(|| top_place(self.top));
            self.err(
                ManifestError::new(
                    ErrorKind::PartitionMissing,
                    "the primary partition table has no `at_customize` partition",
                )
                .at(&place, "removed here")
                .help("ESP-AT finds its at_customize table through that partition; keep it"),
            );
            return;
        }
        let (Some(region), Some(layout)) = (primary.partition("at_customize"), atc.layout.as_ref())
        else {
            return; // the tables have errors of their own, already reported
        };
        let start = u64::from(region.offset);
        let end = start + u64::from(region.size);
        if u64::from(atc.offset) < start || u64::from(atc.offset) + 0x1000 > end {
            let mut err = ManifestError::new(
                ErrorKind::PartitionInvalid,
                format!("the at_customize table at {:#x} is outside the at_customize partition ({start:#x}..{end:#x})", atc.offset),
            )
            .help("set at-customize offset= to the start of the primary table's at_customize partition");
            err = match doc.at_customize.as_ref().and_then(|t| t.offset.as_ref()) {
                Some(o) => err.at(&o.place, "outside the region"),
                None => err.at(&top_place(self.top), "the catalogue's at_customize offset"),
            };
            self.err(err);
        }
        for (p, row) in layout.partitions().iter().zip(&atc.rows) {
            let (o, e) = (u64::from(p.offset), u64::from(p.offset) + u64::from(p.size));
            if o < start || e > end {
                let mut err = ManifestError::new(
                    ErrorKind::PartitionInvalid,
                    format!("at_customize partition `{}` ({o:#x}..{e:#x}) is outside the at_customize region ({start:#x}..{end:#x})", p.name),
                )
                .help("move or shrink it, or grow the primary table's at_customize partition");
                err = err.at(
                    row.place.as_ref().unwrap_or(&top_place(self.top)),
                    "outside the region",
                );
                self.err(err);
            }
        }
        // A user partition's file must fit it.
        for (p, row) in layout.partitions().iter().zip(&atc.rows).chain(
            primary
                .layout
                .iter()
                .flat_map(|l| l.partitions().iter().zip(&primary.rows)),
        ) {
            let Some(file) = &row.file else { continue };
            let Some(len) = self.files.get(file).map(|b| b.len()) else {
                continue;
            };
            if len as u64 > u64::from(p.size) {
                let mut err = ManifestError::new(
                    ErrorKind::PartitionInvalid,
                    format!(
                        "{} is {len} bytes but partition `{}` holds {}",
                        file.display(),
                        p.name,
                        p.size
                    ),
                )
                .help("grow the partition or shrink the file");
                if let Some(place) = &row.place {
                    err = err.at(place, "file overflows its partition");
                }
                self.err(err);
            }
        }
    }

    /// Spec §11: an enabled feature needs its partitions in at_customize.
    fn check_dependencies(
        &mut self,
        era: Era,
        release: Release,
        features: &BTreeSet<String>,
        atc: &TablePlan,
        doc: &Document,
    ) {
        let mut needs: Vec<(&str, String)> = Vec::new();
        match era {
            // PKI partitions are needed only for roles the manifest fills (checked in `pki`):
            // ESP-AT's own build skips a PKI partition that has no data.
            Era::A => needs.push((
                "AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT",
                "factory_param".to_owned(),
            )),
            Era::B => needs.push((
                "AT_CUSTOMIZED_PARTITION_TABLE_SUPPORT",
                "mfg_nvs".to_owned(),
            )),
        }
        needs.push(("AT_FS_COMMAND_SUPPORT", release.fs_partition().to_owned()));
        for (feature, partition) in needs {
            if features.contains(feature) && atc.row(&partition).is_none() {
                let place = doc
                    .features
                    .iter()
                    .find(|f| f.symbol.value.trim_start_matches("CONFIG_") == feature)
                    .map(|f| f.symbol.place.clone())
                    .or_else(|| {
                        doc.at_customize.as_ref().and_then(|t| {
                            t.remove
                                .iter()
                                .find(|r| r.value == partition)
                                .map(|r| r.place.clone())
                        })
                    });
                let mut err = ManifestError::new(
                    ErrorKind::PartitionMissing,
                    format!("{feature} needs the at_customize partition `{partition}`, which the table lacks"),
                )
                .help(format!("add `partition \"{partition}\" ...` to at-customize, or switch {feature} off in features"));
                if let Some(p) = &place {
                    err = err.at(p, "needs a partition");
                }
                self.err(err);
            }
        }
    }

    fn pki(
        &mut self,
        doc: &Document,
        release: Release,
        era: Era,
        features: &BTreeSet<String>,
        atc: &TablePlan,
    ) -> Vec<PkiPlan> {
        let mut out = Vec::new();
        for role in PkiRole::ALL {
            let Some(node) = doc.certificates.iter().find(|c| c.role.value == role) else {
                continue;
            };
            let name = esp_at_name(role, release);
            let feature = feature_of(role);
            if matches!(
                role,
                PkiRole::HttpsCert
                    | PkiRole::HttpsKey
                    | PkiRole::HttpsCa
                    | PkiRole::WssCert
                    | PkiRole::WssKey
                    | PkiRole::WssCa
            ) && !release.has_https_wss()
            {
                self.err(
                    ManifestError::new(ErrorKind::FeatureDisabled, format!("ESP-AT {release} does not read {} files", role.node_name()))
                        .at(&node.role.place, "not in this release")
                        .help("HTTPS and WSS certificates arrived in ESP-AT v4.1.0.0; target a newer release or remove them"),
                );
                continue;
            }
            if !features.contains(feature) {
                self.err(
                    ManifestError::new(
                        ErrorKind::FeatureDisabled,
                        format!(
                            "{} is given but the firmware is built without {feature}",
                            role.node_name()
                        ),
                    )
                    .at(&node.role.place, "never read by the firmware")
                    .help(format!(
                        "add `{feature} #true` to features, or remove {}",
                        role.node_name()
                    )),
                );
                continue;
            }
            if era == Era::A && atc.row(&name).is_none() {
                self.err(
                    ManifestError::new(
                        ErrorKind::PartitionMissing,
                        format!(
                            "{} needs the at_customize partition `{name}`",
                            role.node_name()
                        ),
                    )
                    .at(&node.role.place, "no partition for it")
                    .help(format!(
                        "add `partition \"{name}\" size=\"8K\"` to at-customize"
                    )),
                );
                continue;
            }
            let mut files = Vec::new();
            for f in &node.files {
                let path = f.place.file.dir().join(&f.value);
                if read_file(
                    &path,
                    InputKind::CERTIFICATE,
                    Some(&f.place),
                    self.files,
                    self.diags,
                )
                .is_some()
                {
                    files.push(path);
                }
            }
            let issuer = node.issuer.as_ref().and_then(|i| {
                let path = i.place.file.dir().join(&i.value);
                read_file(
                    &path,
                    InputKind::CERTIFICATE,
                    Some(&i.place),
                    self.files,
                    self.diags,
                )
                .map(|_| path)
            });
            if role.kind() == PkiKind::Key {
                // A key must come with its certificate and in the same number.
                let cert_role = role.certificate_for_key();
                if let Some(cert) =
                    cert_role.and_then(|c| doc.certificates.iter().find(|n| n.role.value == c))
                {
                    if cert.files.len() != node.files.len() {
                        self.err(
                            ManifestError::new(
                                ErrorKind::CertificateInvalid,
                                format!(
                                    "{} has {} file(s) but {} has {}",
                                    role.node_name(),
                                    node.files.len(),
                                    cert.role.value.node_name(),
                                    cert.files.len()
                                ),
                            )
                            .at(&node.role.place, "count differs")
                            .note(&cert.role.place, "certificates here")
                            .help("give one key per certificate, in the same order"),
                        );
                    }
                }
            }
            out.push(PkiPlan {
                role,
                name,
                files,
                issuer,
                place: Some(node.role.place.clone()),
            });
        }
        out
    }

    fn ble(
        &mut self,
        doc: &Document,
        era: Era,
        features: &BTreeSet<String>,
        atc: &TablePlan,
    ) -> Option<BlePlan> {
        let node = doc.ble.as_ref()?;
        let place = node
            .gatts
            .as_ref()
            .map(|g| g.place.clone())
            .or_else(|| node.services.first().map(|s| s.uuid.place.clone()))
            .unwrap_or_else(|| top_place(self.top));
        if !features.contains("AT_BLE_COMMAND_SUPPORT") {
            self.err(
                ManifestError::new(ErrorKind::FeatureDisabled, "BLE services are given but the firmware is built without AT_BLE_COMMAND_SUPPORT")
                    .at(&place, "never read by the firmware")
                    .help("add `AT_BLE_COMMAND_SUPPORT #true` to features, or remove the ble block"),
            );
            return None;
        }
        let storage = if era == Era::A { "ble_data" } else { "mfg_nvs" };
        if atc.row(storage).is_none() {
            self.err(
                ManifestError::new(
                    ErrorKind::PartitionMissing,
                    format!("BLE services need the at_customize partition `{storage}`"),
                )
                .at(&place, "BLE services here")
                .help(format!(
                    "add `partition \"{storage}\" ...` to at-customize, or remove the ble block"
                )),
            );
            return None;
        }
        if node.gatts.is_some() && !node.services.is_empty() {
            self.err(
                ManifestError::new(
                    ErrorKind::GattsInvalid,
                    "give either a gatts CSV or services, not both",
                )
                .at(&place, "both given")
                .help("move the CSV rows into service blocks, or drop the services"),
            );
            return None;
        }
        if let Some(g) = &node.gatts {
            let path = g.place.file.dir().join(&g.value);
            let (kind, place) = (InputKind::TABLE_CSV, Some(&g.place));
            let bytes = read_file(&path, kind, place, self.files, self.diags)?;
            self.check_gatts_rows(&path, &bytes, &g.place)?;
            return match read_gatts_csv(&bytes) {
                Ok(plan) => Some(plan),
                Err(why) => {
                    self.err(
                        ManifestError::new(ErrorKind::GattsInvalid, format!("{}: {why}", path.display()))
                            .at(&g.place, "invalid GATTS table")
                            .help("the CSV has ESP-AT's columns index,uuid_len,uuid,perm,val_max_len,val_cur_len,value"),
                    );
                    None
                }
            };
        }
        let mut rows = Vec::new();
        for s in &node.services {
            let (len, value) = uuid_bytes_hex(&s.uuid.value);
            push_row(
                &mut rows,
                [
                    16.to_string(),
                    "0x2800".to_owned(),
                    hex_byte(s.perm.as_ref().map_or(1, |p| p.value)),
                    len.to_string(),
                    len.to_string(),
                    value,
                ],
            );
            for c in &s.characteristics {
                let props = c.properties.as_ref().map_or(0x02, |p| p.value);
                push_row(
                    &mut rows,
                    [
                        "16".to_owned(),
                        "0x2803".to_owned(),
                        "0x01".to_owned(),
                        "1".to_owned(),
                        "1".to_owned(),
                        format!("{props:02X}"),
                    ],
                );
                if let Some(row) = self.attribute_row(c) {
                    push_row(&mut rows, row);
                }
                for d in &c.descriptors {
                    if let Some(row) = self.attribute_row(d) {
                        push_row(&mut rows, row);
                    }
                }
            }
        }
        let table = crate::esp_at::ble_data::GattCsv::from_rows(&rows);
        Some(BlePlan { rows, table })
    }

    fn attribute_row(&mut self, a: &AttributeNode) -> Option<[String; 6]> {
        let value = a
            .value
            .as_ref()
            .map(|v| v.value.clone())
            .unwrap_or_default();
        let value_len = u16::try_from(value.len().div_ceil(2)).unwrap_or(u16::MAX);
        let max_len = a.max_len.as_ref().map_or(value_len, |m| m.value);
        let len = a.len.as_ref().map_or(value_len, |m| m.value);
        if len > max_len || value_len > max_len {
            let place = a
                .len
                .as_ref()
                .or(a.max_len.as_ref())
                .map_or_else(|| a.uuid.place.clone(), |s| s.place.clone());
            self.err(
                ManifestError::new(
                    ErrorKind::GattsInvalid,
                    format!(
                        "value length {} exceeds max-len {max_len}",
                        len.max(value_len)
                    ),
                )
                .at(&place, "too long")
                .help("raise max-len, or shorten the value"),
            );
            return None;
        }
        let (uuid_len, uuid) = match &a.uuid.value {
            UuidValue::Short(u) => (16, format!("0x{u:04X}")),
            UuidValue::Long(s) => (128, format!("0x{s}")),
        };
        Some([
            uuid_len.to_string(),
            uuid,
            hex_byte(a.perm.as_ref().map_or(1, |p| p.value)),
            max_len.to_string(),
            len.to_string(),
            value,
        ])
    }

    fn firmware(
        &mut self,
        doc: &Document,
        chip: Chip,
        primary: &TablePlan,
        atc: &TablePlan,
    ) -> Vec<PartPlan> {
        let Some(fw) = &doc.firmware else {
            return Vec::new();
        };
        let mut parts: Vec<(String, Option<u32>, PathBuf, Option<Place>)> = Vec::new();
        if let Some(rel) = &fw.release {
            let dir = rel.place.file.dir().join(&rel.value);
            match crate::esp_at::flasher_args::read_build_folder(&dir) {
                Ok(folder) => {
                    for p in &folder.args.parts {
                        let (offset, file) = (p.offset, dir.join(&p.file));
                        // IDF calls the initial otadata image `otadata`.
                        let name = if p.name == "otadata" { "ota_data_initial".to_owned() } else { p.name.clone() };
                        // Images espfleet generates itself are not taken from the release.
                        if matches!(name.as_str(), "partition-table" | "partition_table" | "at_customize" | "mfg_nvs" | "factory_param" | "ble_data")
                            || PkiRole::ALL.iter().any(|r| r.node_name().replace('-', "_") == name)
                        {
                            continue;
                        }
                        parts.push((name, Some(offset), file, Some(rel.place.clone())));
                    }
                }
                Err(why) => self.err(
                    ManifestError::new(ErrorKind::FirmwareInvalid, format!("{}: {why}", dir.display()))
                        .at(&rel.place, "not a usable ESP-AT release folder")
                        .help("point at an ESP-AT build folder holding flasher_args.json (or download.config) and the binaries it names"),
                ),
            }
        }
        for p in &fw.parts {
            parts.retain(|q| q.0 != p.name.value);
            parts.push((
                p.name.value.clone(),
                p.offset.as_ref().map(|o| o.value),
                p.file.place.file.dir().join(&p.file.value),
                Some(p.name.place.clone()),
            ));
        }
        let mut out = Vec::new();
        for (name, offset, file, place) in parts {
            let offset = offset.or_else(|| default_offset(&name, chip, primary, atc));
            let Some(offset) = offset else {
                let mut err = ManifestError::new(ErrorKind::FirmwareInvalid, format!("no offset known for part `{name}`"))
                    .help("give offset=, or name the part after a partition (`app`, `bootloader`, `ota_data_initial`, or a table partition)");
                if let Some(p) = &place {
                    err = err.at(p, "where does it go?");
                }
                self.err(err);
                continue;
            };
            if let Some(bytes) = read_file(
                &file,
                InputKind::IMAGE,
                place.as_ref(),
                self.files,
                self.diags,
            ) {
                self.check_firmware_part(&name, offset, chip, primary, &bytes, place.as_ref());
                out.push(PartPlan { name, offset, file });
            }
        }
        out.sort_by_key(|p| p.offset);
        out
    }
}

fn bad_choice(v: &Spanned<String>, what: &str, choices: &[&str]) -> ManifestError {
    let err = ManifestError::new(
        ErrorKind::ValueInvalid,
        format!("unknown {what} `{}`", v.value),
    )
    .at(&v.place, format!("unknown {what}"));
    match did_you_mean(&v.value, choices.iter().copied()) {
        Some(s) => err.help(format!("did you mean `{s}`?")),
        None => err.help(format!("use one of: {}", choices.join(", "))),
    }
}

fn hex_byte(b: u8) -> String {
    format!("0x{b:02X}")
}

fn push_row(rows: &mut Vec<crate::esp_at::ble_data::GattRow>, rest: [String; 6]) {
    let [a, b, c, d, e, f] = rest;
    rows.push(crate::esp_at::ble_data::GattRow::from_fields(&[
        rows.len().to_string(),
        a,
        b,
        c,
        d,
        e,
        f,
    ]));
}

fn uuid_bytes_hex(u: &UuidValue) -> (usize, String) {
    match u {
        UuidValue::Short(v) => (2, format!("{v:04X}")),
        UuidValue::Long(s) => (16, s.clone()),
    }
}

/// Parses a number as gen_esp32part writes offsets and sizes (`0x1000`, `4096`, `56K`, `1M`).
pub(crate) fn parse_num(s: &str) -> Option<u64> {
    super::reader::value::parse_size_literal(s).and_then(|n| u64::try_from(n).ok())
}

/// Rows of a catalogue CSV (known good; the partition-table module validates them again).
fn catalogue_rows(csv: &str) -> Vec<TableRow> {
    csv.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut f: Vec<String> = l.split(',').map(|x| x.trim().to_owned()).collect();
            f.resize(6, String::new());
            TableRow {
                name: f[0].clone(),
                ty: f[1].clone(),
                subtype: f[2].clone(),
                offset: f[3].clone(),
                size: f[4].clone(),
                flags: f[5].clone(),
                file: None,
                place: None,
            }
        })
        .collect()
}

/// ESP-AT's GATTS CSV in both eras' readings. Era B (`mfg_nvs.py`) takes every row not starting
/// with `#`; era A (`BLEService.py`) reads a header row, then rows up to the first empty one. A
/// header row (`index,...`) and the trailing empty row of era-A files are dropped for era B, and a
/// commented header (`# index,...`, era-B files) is read as the header for era A, so that either
/// file works with either era.
fn read_gatts_csv(bytes: &[u8]) -> Result<BlePlan, String> {
    use crate::esp_at::ble_data;
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    let mut rows = ble_data::parse_gatts_csv(text).map_err(|e| e.to_string())?;
    if rows.first().is_some_and(|r| r.index == "index") {
        rows.remove(0);
    }
    if let Some(end) = rows
        .iter()
        .position(|r| r.fields().iter().all(|f| f.is_empty()))
    {
        rows.truncate(end);
    }
    if rows.is_empty() {
        return Err("no attribute rows".to_owned());
    }
    for (i, r) in rows.iter().enumerate() {
        if r.index.parse::<u32>().is_err() {
            return Err(format!(
                "row {}: index `{}` is not a number",
                i + 1,
                r.index
            ));
        }
    }
    let mut table = ble_data::parse_era_a_csv(text.trim_start().trim_start_matches('#'))
        .map_err(|e| e.to_string())?;
    if let Some(first) = table.columns.first_mut() {
        *first = first.trim().to_owned();
    }
    Ok(BlePlan { rows, table })
}

/// Where a named firmware part goes when the manifest gives no offset.
fn default_offset(name: &str, chip: Chip, primary: &TablePlan, atc: &TablePlan) -> Option<u32> {
    let row_offset = |t: &TablePlan, n: &str| {
        t.row(n)
            .and_then(|r| parse_num(&r.offset))
            .and_then(|o| u32::try_from(o).ok())
    };
    match name {
        "bootloader" => Some(chip.bootloader_offset()),
        // The default boot partition: factory if present, otherwise ota_0 (`docs/formats/esp-at-images.md` §2.2).
        "app" => {
            let parts = primary.layout.as_ref()?.partitions();
            let app = |sub: u8| {
                parts
                    .iter()
                    .find(|p| p.ty == crate::partition_table::TYPE_APP && p.subtype == sub)
            };
            app(0x00).or_else(|| app(0x10)).map(|p| p.offset)
        }
        "ota_data_initial" | "otadata" => row_offset(primary, "otadata"),
        "phy_init" | "phy_multiple_init_data" => row_offset(primary, "phy_init"),
        other => row_offset(primary, other).or_else(|| row_offset(atc, other)),
    }
}
