//! Stage 3, emit: from a resolved [`Plan`] to the images ESP-AT reads, as ESP-AT's own build lays
//! them out (`partition_table/partition-table.bin`, `at_customize.bin`,
//! `customized_partitions/<name>.bin`, `flasher_args.json`, `factory/factory_<MODULE>.bin`, ...).
//!
//! Emitting is pure: every input byte was read while resolving. Independent images are built in
//! parallel with rayon and collected in a fixed order, so the output never depends on timing;
//! [`Jobs::Sequential`] takes the same path on one thread.
//!
//! Every [`Job`] says what it depends on ([`Job::key`], a [`KeyBuilder`] description of the
//! resolved values and file bytes it reads) next to how it emits; [`emit_with`] uses that key to
//! take the job's images from a [`Cache`] instead of emitting them. The key of each job is
//! documented in [`crate::cache`].

use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::cache::{Cache, CacheKey, JobEvent, KeyBuilder, Lookup, Outcome};
use crate::esp_at::flasher_args::{FlashPart, FlasherArgs};
use crate::esp_at::release::ReleaseFormats as _;
use crate::esp_at::{ble_data, factory_param, merged, mfg_nvs, pki};
use crate::image::{FlashImage, Segment};
use crate::manifest::document::PkiKind;
use crate::manifest::error::{Diagnostics, ErrorKind, ManifestError};
use crate::manifest::plan::Plan;
use crate::manifest::source::Place;
use crate::release::Era;

/// One file of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Image name as `flasher_args.json` names it (`partition-table`, `mfg_nvs`, `app`, ...),
    /// or the file's role for files that are not flashed (`flasher_args`, `factory`).
    pub name: String,
    /// Path relative to the manifest's output directory, `/`-separated.
    pub path: String,
    /// Flash offset, for images that are flashed.
    pub offset: Option<u32>,
    /// Contents.
    pub bytes: Arc<[u8]>,
    /// Holds private key material: written with mode 0600 and cached accordingly.
    pub secret: bool,
}

/// How many threads emit images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    /// rayon's global pool.
    Parallel,
    /// One thread, in order (`--jobs 1`).
    Sequential,
}

/// A unit of emission whose result does not depend on any other job's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// The primary partition table.
    PartitionTable,
    /// The at_customize table.
    AtCustomize,
    /// Era B: the mfg_nvs NVS image (PKI, factory parameters, BLE table).
    MfgNvs,
    /// Era A: `factory_param.bin`.
    FactoryParam,
    /// Era A: one PKI partition (index into [`Plan::pki`]).
    Pki(usize),
    /// Era A: `ble_data.bin`.
    BleData,
    /// A partition filled from a user file (row index of the primary or at_customize table).
    UserPartition {
        /// In the primary table (else at_customize).
        primary: bool,
        /// Row index.
        row: usize,
    },
    /// A firmware part (index into [`Plan::firmware`]).
    Firmware(usize),
}

impl Job {
    /// Kind and subject, for progress and `--verbose` output.
    pub fn label(&self, plan: &Plan) -> String {
        match *self {
            Job::PartitionTable => "partition-table".to_owned(),
            Job::AtCustomize => "at_customize".to_owned(),
            Job::MfgNvs => "mfg_nvs".to_owned(),
            Job::FactoryParam => "factory_param".to_owned(),
            Job::Pki(i) => format!("pki {}", plan.pki[i].name),
            Job::BleData => "ble_data".to_owned(),
            Job::UserPartition { primary, row } => {
                let t = if primary {
                    &plan.partition_table
                } else {
                    &plan.at_customize
                };
                format!("partition {}", t.rows[row].name)
            }
            Job::Firmware(i) => format!("firmware {}", plan.firmware[i].name),
        }
    }

    /// What the job's images depend on: the cache key description (see [`crate::cache`] for
    /// the table). Paths never enter it, only the bytes of the files the job reads.
    pub fn key(&self, plan: &Plan) -> KeyBuilder {
        let offset_of = |table: &crate::manifest::plan::TablePlan, name: &str| {
            table.partition(name).map(|p| i64::from(p.offset))
        };
        match *self {
            Job::PartitionTable | Job::AtCustomize => {
                let primary = *self == Job::PartitionTable;
                let table = if primary {
                    &plan.partition_table
                } else {
                    &plan.at_customize
                };
                let mut k = KeyBuilder::new(if primary {
                    "partition-table"
                } else {
                    "at_customize"
                });
                k.int("offset", i64::from(table.offset))
                    .flag("md5", !primary);
                for p in table
                    .layout
                    .iter()
                    .flat_map(super::partition_table::PartitionTable::partitions)
                {
                    k.str("name", &p.name)
                        .int("type", i64::from(p.ty))
                        .int("subtype", i64::from(p.subtype))
                        .int("offset", i64::from(p.offset))
                        .int("size", i64::from(p.size))
                        .int("flags", i64::from(p.flags.bits()));
                }
                k
            }
            Job::MfgNvs => {
                let mut k = KeyBuilder::new("mfg_nvs");
                let part = plan.at_customize.partition("mfg_nvs");
                k.opt_int("offset", part.map(|p| i64::from(p.offset)))
                    .opt_int("size", part.map(|p| i64::from(p.size)))
                    .json("release", &plan.release)
                    .json("nvs_pages", &plan.nvs_pages);
                for p in &plan.pki {
                    k.str("pki.name", &p.name)
                        .json("pki.kind", &p.role)
                        .int("pki.count", p.files.len() as i64);
                    for f in &p.files {
                        k.bytes("pki.file", &bytes_of(plan, f));
                    }
                }
                k.json("factory", &plan.factory);
                match &plan.ble {
                    Some(b) => k.json("ble", b),
                    None => k.bytes("ble", &[]),
                };
                k
            }
            Job::FactoryParam => {
                let mut k = KeyBuilder::new("factory_param");
                k.opt_int("offset", offset_of(&plan.at_customize, "factory_param"))
                    .json("release", &plan.release)
                    .json("factory", &plan.factory);
                k
            }
            Job::Pki(i) => {
                let p = &plan.pki[i];
                let mut k = KeyBuilder::new("pki");
                k.str("name", &p.name)
                    .json("release", &plan.release)
                    .json("kind", &p.role)
                    .opt_int("offset", offset_of(&plan.at_customize, &p.name));
                for f in &p.files {
                    k.bytes("file", &bytes_of(plan, f));
                }
                k
            }
            Job::BleData => {
                let mut k = KeyBuilder::new("ble_data");
                k.opt_int("offset", offset_of(&plan.at_customize, "ble_data"));
                if let Some(b) = &plan.ble {
                    k.json("columns", &b.table.columns)
                        .json("rows", &b.table.rows);
                }
                k
            }
            Job::UserPartition { primary, row } => {
                let table = if primary {
                    &plan.partition_table
                } else {
                    &plan.at_customize
                };
                let r = &table.rows[row];
                let mut k = KeyBuilder::new("user-partition");
                k.flag("primary", primary)
                    .str("name", &r.name)
                    .opt_int("offset", offset_of(table, &r.name));
                if let Some(f) = &r.file {
                    k.bytes("file", &bytes_of(plan, f));
                }
                k
            }
            Job::Firmware(i) => {
                let part = &plan.firmware[i];
                let mut k = KeyBuilder::new("firmware");
                k.str("name", &part.name)
                    .int("offset", i64::from(part.offset))
                    .bytes("file", &bytes_of(plan, &part.file));
                k
            }
        }
    }

    /// Emits the job's images (pure).
    pub fn emit(&self, plan: &Plan) -> Result<Vec<Image>, ManifestError> {
        emit_one(plan, self).map(|o| o.into_iter().collect())
    }
}

/// Runs one job through the cache: a verified hit is used as is; a miss or a corrupt entry is
/// emitted and stored. A failed store only costs the next build a miss.
fn cached(
    plan: &Plan,
    label: String,
    key: CacheKey,
    emit: impl FnOnce() -> Result<Vec<Image>, ManifestError>,
    cache: Option<&Cache>,
    on_event: &(dyn Fn(JobEvent) + Sync),
) -> Result<Vec<Image>, ManifestError> {
    let outcome = match cache.map(|c| c.get(&key)) {
        Some(Lookup::Hit(images)) => {
            on_event(JobEvent {
                manifest: plan.name.clone(),
                job: label,
                key,
                outcome: Outcome::Hit,
            });
            return Ok(images);
        }
        Some(Lookup::Miss) => Outcome::Miss,
        Some(Lookup::Corrupt(_)) => Outcome::Corrupt,
        None => Outcome::Uncached,
    };
    let images = emit()?;
    if let Some(c) = cache {
        let _ = c.put(&key, &images);
    }
    on_event(JobEvent {
        manifest: plan.name.clone(),
        job: label,
        key,
        outcome,
    });
    Ok(images)
}

/// Emits every image of `plan`: the independent ones (in parallel unless `jobs` says not), then
/// the files made from them (flash arguments and the merged factory image).
pub fn emit(plan: &Plan, jobs: Jobs) -> Result<Vec<Image>, Diagnostics> {
    emit_with(plan, jobs, None, &|_| {})
}

/// [`emit`] through a cache: each job's images come from `cache` when its key is there, and
/// `on_event` hears about every job (hit, miss, corrupt entry) as it finishes. The images and
/// their order are the same with or without a cache.
pub fn emit_with(
    plan: &Plan,
    jobs: Jobs,
    cache: Option<&Cache>,
    on_event: &(dyn Fn(JobEvent) + Sync),
) -> Result<Vec<Image>, Diagnostics> {
    emit_keyed(plan, jobs, cache, on_event).map(|(images, _)| images)
}

/// [`emit_with`], also returning the cache key of every job in output order (each job's
/// images follow one another in that order): what a [`crate::cache::Record`] stores.
pub fn emit_keyed(
    plan: &Plan,
    jobs: Jobs,
    cache: Option<&Cache>,
    on_event: &(dyn Fn(JobEvent) + Sync),
) -> Result<(Vec<Image>, Vec<CacheKey>), Diagnostics> {
    let list = job_list(plan);
    let key_of = |job: &Job| job.key(plan).finish();
    let mut keys: Vec<CacheKey> = match jobs {
        Jobs::Parallel => list.par_iter().map(key_of).collect(),
        Jobs::Sequential => list.iter().map(key_of).collect(),
    };
    let run = |(job, key): (&Job, &CacheKey)| {
        cached(
            plan,
            job.label(plan),
            *key,
            || job.emit(plan),
            cache,
            on_event,
        )
    };
    let results: Vec<Result<Vec<Image>, ManifestError>> = match jobs {
        Jobs::Parallel => list.par_iter().zip(keys.par_iter()).map(run).collect(),
        Jobs::Sequential => list.iter().zip(keys.iter()).map(run).collect(),
    };
    let mut diags = Diagnostics::new(plan.manifest.display().to_string());
    let mut images = Vec::new();
    for r in results {
        match r {
            Ok(img) => images.extend(img),
            Err(e) => diags.push(e),
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    let fail = |e| {
        let mut d = Diagnostics::new(plan.manifest.display().to_string());
        d.push(e);
        d
    };
    let mut flashed: Vec<&Image> = images.iter().filter(|i| i.offset.is_some()).collect();
    flashed.sort_by_key(|i| registration_rank(&i.name));
    let args_key = flash_args_key(plan, &flashed).finish();
    keys.push(args_key);
    let mut derived = cached(
        plan,
        "flash-args".to_owned(),
        args_key,
        || Ok(flash_args_images(plan, &flashed)),
        cache,
        on_event,
    )
    .map_err(fail)?;
    // A factory image needs the firmware: without bootloader and app it would not boot.
    let has = |n: &str| flashed.iter().any(|i| i.name == n);
    if has("bootloader") && has("app") {
        let key = factory_key(plan, &flashed).finish();
        keys.push(key);
        derived.extend(
            cached(
                plan,
                "factory".to_owned(),
                key,
                || factory_images(plan, &flashed),
                cache,
                on_event,
            )
            .map_err(fail)?,
        );
    }
    images.extend(derived);
    Ok((images, keys))
}

/// The independent jobs of `plan`, in output order.
pub fn job_list(plan: &Plan) -> Vec<Job> {
    let mut jobs = vec![Job::PartitionTable, Job::AtCustomize];
    match plan.era {
        Era::B => {
            if plan.at_customize.row("mfg_nvs").is_some() {
                jobs.push(Job::MfgNvs);
            }
        }
        Era::A => {
            if plan.at_customize.row("factory_param").is_some() {
                jobs.push(Job::FactoryParam);
            }
            jobs.extend((0..plan.pki.len()).map(Job::Pki));
            if plan.ble.is_some() {
                jobs.push(Job::BleData);
            }
        }
    }
    for (primary, table) in [(true, &plan.partition_table), (false, &plan.at_customize)] {
        for (row, r) in table.rows.iter().enumerate() {
            if r.file.is_some() {
                jobs.push(Job::UserPartition { primary, row });
            }
        }
    }
    jobs.extend((0..plan.firmware.len()).map(Job::Firmware));
    jobs
}

fn place_or_top(plan: &Plan, place: Option<&Place>) -> Option<Place> {
    let _ = plan;
    place.cloned()
}

fn emit_error(plan: &Plan, place: Option<&Place>, message: String, help: &str) -> ManifestError {
    let mut e = ManifestError::new(ErrorKind::PartitionInvalid, message).help(help);
    if let Some(p) = place_or_top(plan, place) {
        e = e.at(&p, "here");
    }
    e
}

fn bytes_of(plan: &Plan, path: &Path) -> Arc<[u8]> {
    // Every path in a plan was read while resolving; a miss is a resolver bug.
    plan.files
        .get(path)
        .cloned()
        .unwrap_or_else(|| panic!("{} was not read while resolving", path.display()))
}

fn table_image(plan: &Plan, primary: bool) -> Result<Option<Image>, ManifestError> {
    let (table, name, path, md5) = if primary {
        (
            &plan.partition_table,
            "partition-table",
            "partition_table/partition-table.bin",
            false,
        )
    } else {
        (&plan.at_customize, "at_customize", "at_customize.bin", true)
    };
    let layout = table
        .layout
        .as_ref()
        .unwrap_or_else(|| panic!("{name} was not laid out while resolving"));
    let bytes = layout.to_bytes(md5).map_err(|e| {
        emit_error(
            plan,
            None,
            format!("{name}: {e}"),
            "remove partitions from the table",
        )
    })?;
    Ok(Some(Image {
        name: name.to_owned(),
        path: path.to_owned(),
        offset: Some(table.offset),
        bytes: bytes.into(),
        secret: false,
    }))
}

fn customized(plan: &Plan, name: &str, bytes: Vec<u8>, secret: bool) -> Option<Image> {
    let offset = plan.at_customize.partition(name).map(|p| p.offset);
    Some(Image {
        name: name.to_owned(),
        path: format!("customized_partitions/{name}.bin"),
        offset,
        bytes: bytes.into(),
        secret,
    })
}

fn emit_one(plan: &Plan, job: &Job) -> Result<Option<Image>, ManifestError> {
    match job {
        Job::PartitionTable => table_image(plan, true),
        Job::AtCustomize => table_image(plan, false),
        Job::MfgNvs => mfg_nvs_image(plan),
        Job::FactoryParam => {
            let f = &plan.factory;
            let narrow = |v: i32| i8::try_from(v).unwrap_or(-1);
            let record = factory_param::FactoryParam {
                version: 3,
                reserved1: 0,
                tx_max_power: f.max_tx_power,
                uart_port: narrow(f.uart_port),
                start_channel: f.start_channel,
                channel_num: f.channel_num,
                country_code: f.country_code.clone(),
                uart_baudrate: f.uart_baudrate,
                uart_tx_pin: narrow(f.uart_tx_pin),
                uart_rx_pin: narrow(f.uart_rx_pin),
                uart_cts_pin: narrow(f.uart_cts_pin),
                uart_rts_pin: narrow(f.uart_rts_pin),
                tx_control_pin: -1,
                rx_control_pin: -1,
                reserved2: [0xFF, 0xFF],
                platform: f.platform.clone(),
                module_name: f.module_name.clone(),
            };
            let bytes = record.encode().map_err(|e| {
                emit_error(
                    plan,
                    None,
                    format!("factory_param: {e}"),
                    "shorten the module name or country code",
                )
            })?;
            Ok(customized(plan, "factory_param", bytes, false))
        }
        Job::Pki(i) => {
            let p = &plan.pki[*i];
            let files: Vec<Arc<[u8]>> = p.files.iter().map(|f| bytes_of(plan, f)).collect();
            let refs: Vec<&[u8]> = files.iter().map(|b| &b[..]).collect();
            let bytes = pki::build_partition(&p.name, plan.release, &refs).map_err(|e| {
                emit_error(
                    plan,
                    p.place.as_ref(),
                    format!("{}: {e}", p.name),
                    "check the certificate files",
                )
            })?;
            Ok(customized(
                plan,
                &p.name,
                bytes,
                p.role.kind() == PkiKind::Key,
            ))
        }
        Job::BleData => {
            let Some(ble) = &plan.ble else {
                return Ok(None);
            };
            let table = ble_data::service_table(&ble.table)
                .and_then(|t| ble_data::encode_bin(&t))
                .map_err(|e| {
                    emit_error(plan, None, format!("ble_data: {e}"), "fix the GATTS table")
                })?;
            Ok(customized(plan, "ble_data", table, false))
        }
        Job::UserPartition { primary, row } => {
            let table = if *primary {
                &plan.partition_table
            } else {
                &plan.at_customize
            };
            let r = &table.rows[*row];
            let Some(file) = &r.file else { return Ok(None) };
            let offset = table.partition(&r.name).map(|p| p.offset);
            let dir = if *primary {
                ""
            } else {
                "customized_partitions/"
            };
            Ok(Some(Image {
                name: r.name.clone(),
                path: format!("{dir}{}.bin", r.name),
                offset,
                bytes: bytes_of(plan, file),
                secret: false,
            }))
        }
        Job::Firmware(i) => {
            let part = &plan.firmware[*i];
            let path = match part.name.as_str() {
                "bootloader" => "bootloader/bootloader.bin".to_owned(),
                "app" => "esp-at.bin".to_owned(),
                "ota_data_initial" => "ota_data_initial.bin".to_owned(),
                other => format!("{other}.bin"),
            };
            Ok(Some(Image {
                name: part.name.clone(),
                path,
                offset: Some(part.offset),
                bytes: bytes_of(plan, &part.file),
                secret: false,
            }))
        }
    }
}

/// The `mfg_nvs` content ESP-AT's `mfg_nvs.py` writes for this plan (`docs/formats/esp-at-images.md` §8.1).
pub fn mfg_nvs_content(plan: &Plan) -> mfg_nvs::MfgNvs {
    let mut namespaces = Vec::new();
    for p in &plan.pki {
        let files = p
            .files
            .iter()
            .map(|f| mfg_nvs::PkiFile {
                path: f.clone(),
                data: bytes_of(plan, f),
            })
            .collect();
        namespaces.push(mfg_nvs::pki_namespace(&p.name, files, p.files.len() == 1));
    }
    let f = &plan.factory;
    let narrow = |v: i32| i8::try_from(v).unwrap_or(-1);
    namespaces.push(
        mfg_nvs::FactoryParamNvs {
            version: 4,
            module_name: f.module_name.clone(),
            max_tx_power: i8::try_from(f.max_tx_power).unwrap_or(i8::MAX),
            country_code: f.country_code.clone(),
            start_channel: f.start_channel,
            channel_num: f.channel_num,
            uart_port: narrow(f.uart_port),
            uart_baudrate: f.uart_baudrate,
            uart_tx_pin: f.uart_tx_pin,
            uart_rx_pin: f.uart_rx_pin,
            uart_cts_pin: f.uart_cts_pin,
            uart_rts_pin: f.uart_rts_pin,
            sys_store: f.sys_store,
        }
        .namespace(),
    );
    if let Some(ble) = &plan.ble {
        namespaces.push(mfg_nvs::ble_namespace(&ble.rows));
    }
    mfg_nvs::MfgNvs { namespaces }
}

fn mfg_nvs_image(plan: &Plan) -> Result<Option<Image>, ManifestError> {
    let Some(part) = plan.at_customize.partition("mfg_nvs") else {
        return Ok(None);
    };
    let content = mfg_nvs_content(plan);
    let bytes = content
        .encode(u64::from(part.size), plan.nvs_pages)
        .map_err(|e| {
            let place = plan
                .at_customize
                .row("mfg_nvs")
                .and_then(|r| r.place.clone())
                .or_else(|| plan.pki.first().and_then(|p| p.place.clone()));
            let mut err = ManifestError::new(
            ErrorKind::PartitionInvalid,
            format!("mfg_nvs ({} bytes): {e}", part.size),
        )
        .help("grow the mfg_nvs partition in at-customize, or store fewer or smaller certificates");
            if let Some(p) = &place {
                err = err.at(p, "data does not fit mfg_nvs");
            }
            err
        })?;
    let secret = plan.pki.iter().any(|p| p.role.kind() == PkiKind::Key);
    Ok(customized(plan, "mfg_nvs", bytes, secret))
}

/// The order ESP-IDF registers images in `flasher_args.json` (`docs/formats/esp-at-images.md` §10.1).
fn registration_rank(name: &str) -> u8 {
    match name {
        "bootloader" => 0,
        "app" => 1,
        "partition-table" => 2,
        "ota_data_initial" | "otadata" => 3,
        "phy_init" => 4,
        "at_customize" => 5,
        _ => 6,
    }
}

/// What the flash arguments depend on: names, paths and offsets of the flashed images.
fn flash_args_key(plan: &Plan, flashed: &[&Image]) -> KeyBuilder {
    let mut k = KeyBuilder::new("flash-args");
    k.json("chip", &plan.chip).json("flash", &plan.flash);
    for i in flashed {
        k.str("image.name", &i.name)
            .str("image.path", &i.path)
            .opt_int("image.offset", i.offset.map(i64::from));
    }
    k
}

/// What the merged factory image depends on: the flashed images' bytes (by hash) and places.
fn factory_key(plan: &Plan, flashed: &[&Image]) -> KeyBuilder {
    let mut k = KeyBuilder::new("factory");
    let merge = match plan.release.merge_tool() {
        crate::esp_at::release::MergeTool::EsptoolMergeBin => "esptool-merge-bin",
        crate::esp_at::release::MergeTool::CombineScript => "combine-script",
    };
    k.json("chip", &plan.chip)
        .json("flash", &plan.flash)
        .str("merge", merge)
        .str("module", &plan.module.name);
    for i in flashed {
        k.str("image.name", &i.name)
            .opt_int("image.offset", i.offset.map(i64::from))
            .flag("image.secret", i.secret)
            .bytes("image.blake3", blake3::hash(&i.bytes).as_bytes());
    }
    k
}

/// Flash arguments (`flasher_args.json`, `flash_project_args`, `download.config`), from the
/// flashed images in registration order.
fn flash_args_images(plan: &Plan, flashed: &[&Image]) -> Vec<Image> {
    let parts: Vec<FlashPart> = flashed
        .iter()
        .map(|i| FlashPart {
            name: if i.name == "ota_data_initial" {
                "otadata".to_owned()
            } else {
                i.name.clone()
            },
            offset: i.offset.unwrap_or(0),
            file: i.path.clone(),
            encrypted: false,
        })
        .collect();
    let args = FlasherArgs::new(plan.chip, plan.flash, parts);
    let text = |name: &str, path: &str, s: String| Image {
        name: name.to_owned(),
        path: path.to_owned(),
        offset: None,
        bytes: s.into_bytes().into(),
        secret: false,
    };
    vec![
        text("flasher_args", "flasher_args.json", args.to_json()),
        text(
            "flash_project_args",
            "flash_project_args",
            args.to_flash_project_args(),
        ),
        text(
            "download.config",
            "download.config",
            args.to_download_config(),
        ),
    ]
}

/// The merged factory image(s), from the flashed images in registration order.
fn factory_images(plan: &Plan, flashed: &[&Image]) -> Result<Vec<Image>, ManifestError> {
    let mut out = Vec::new();
    let segments: Vec<Segment> = flashed
        .iter()
        .map(|i| Segment {
            name: i.name.clone(),
            offset: i.offset.unwrap_or(0),
            data: i.bytes.clone(),
        })
        .collect();
    let secret = flashed.iter().any(|i| i.secret);
    let module = &plan.module.name;
    let fail = |e: merged::MergeError| {
        emit_error(
            plan,
            None,
            format!("merged factory image: {e}"),
            "check the firmware part offsets",
        )
    };
    match plan.release.merge_tool() {
        crate::esp_at::release::MergeTool::EsptoolMergeBin => {
            for (filled, suffix) in [(true, ""), (false, "_unfilled")] {
                let bytes = merged::merge_bin(
                    &segments,
                    &merged::MergeOptions::esp_at(plan.chip, plan.flash, filled),
                )
                .map_err(fail)?;
                out.push(Image {
                    name: format!("factory{suffix}"),
                    path: format!("factory/factory_{module}{suffix}.bin"),
                    offset: None,
                    bytes: bytes.into(),
                    secret,
                });
            }
        }
        crate::esp_at::release::MergeTool::CombineScript => {
            // The script copies parts in flash_project_args order.
            let bytes = merged::combine_script(&segments, plan.flash).map_err(fail)?;
            out.push(Image {
                name: "factory".to_owned(),
                path: format!("factory/factory_{module}.bin"),
                offset: None,
                bytes: bytes.into(),
                secret,
            });
        }
    }
    Ok(out)
}

/// The segments to flash, sorted by offset: what the flasher needs from a build.
pub fn flash_image(plan: &Plan, images: &[Image]) -> FlashImage {
    let mut segments: Vec<Segment> = images
        .iter()
        .filter_map(|i| {
            i.offset.map(|offset| Segment {
                name: i.name.clone(),
                offset,
                data: i.bytes.clone(),
            })
        })
        .collect();
    segments.sort_by_key(|s| s.offset);
    FlashImage {
        chip: plan.chip,
        flash: plan.flash,
        segments,
    }
}

/// Writes images under `dir` (usually `OUT/<manifest name>`), each atomically; files holding
/// private keys get mode 0600.
pub fn write(dir: &Path, images: &[Image]) -> std::io::Result<()> {
    for img in images {
        let path = dir.join(&img.path);
        crate::output::write_atomic(&path, &img.bytes, img.secret.then_some(0o600))?;
    }
    Ok(())
}
