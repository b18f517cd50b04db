//! The flashing recipes of an ESP-IDF/ESP-AT build folder (`docs/formats/esp-at-images.md` §10.1): `flasher_args.json`,
//! `flash_project_args`, and ESP-AT's `download.config`, rendered and parsed.
//!
//! Rendering lets an espfleet output folder be flashed by Espressif's own tools (and diffed
//! against an ESP-AT build); parsing lets a manifest take its firmware parts (bootloader, app,
//! otadata, ...) from an ESP-AT release folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::image::Segment;
use crate::target::{Chip, FlashFreq, FlashMode, FlashSettings, FlashSize};

/// One image of a build folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashPart {
    /// Image name (`bootloader`, `app`, `partition-table`, `otadata`, `at_customize`,
    /// `mfg_nvs`, ...).
    pub name: String,
    /// Flash offset.
    pub offset: u32,
    /// Path relative to the build folder (`/` separators).
    pub file: String,
    /// Whether the image is flashed encrypted (always false for ESP-AT).
    pub encrypted: bool,
}

/// The contents of a `flasher_args.json` (or the subset `download.config` has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlasherArgs {
    /// Flash mode, frequency and size.
    pub flash: FlashSettings,
    /// Images in registration order.
    pub parts: Vec<FlashPart>,
    /// `extra_esptool_args.chip` (absent in `download.config` and old IDF versions).
    pub chip: Option<Chip>,
    /// `extra_esptool_args.before` (`default_reset`).
    pub before: String,
    /// `extra_esptool_args.after` (`hard_reset`).
    pub after: String,
    /// `extra_esptool_args.stub`.
    pub stub: bool,
}

/// Errors reading a build folder's recipes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum FlasherArgsError {
    /// Not JSON, or not the expected shape.
    #[error("flasher_args.json: {0}")]
    #[diagnostic(
        code(espfleet::esp_at::flasher_args::json),
        help("pass the flasher_args.json an ESP-IDF build wrote")
    )]
    Json(String),
    /// A flash setting espfleet does not know.
    #[error("unsupported flash {what} `{value}`")]
    #[diagnostic(
        code(espfleet::esp_at::flasher_args::flash_setting),
        help(
            "espfleet supports modes qio/qout/dio/dout, 20m–80m and sizes 1MB–128MB (ESP32, ESP32-C3)"
        )
    )]
    FlashSetting {
        /// `mode`, `freq`, `size` or `chip`.
        what: &'static str,
        /// The text.
        value: String,
    },
    /// A setting is missing.
    #[error("{file} has no {what}")]
    #[diagnostic(
        code(espfleet::esp_at::flasher_args::missing),
        help("the file is incomplete; rebuild the firmware or copy the whole build folder")
    )]
    Missing {
        /// Which file.
        file: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// An offset that is not a number.
    #[error("bad offset `{0}`")]
    #[diagnostic(
        code(espfleet::esp_at::flasher_args::offset),
        help("offsets are hex (0x1000) or decimal")
    )]
    Offset(String),
    /// A folder without any recipe.
    #[error("{0} has no flasher_args.json, download.config or flash_project_args")]
    #[diagnostic(
        code(espfleet::esp_at::flasher_args::no_recipe),
        help("point at an ESP-AT build or release folder")
    )]
    NoRecipe(PathBuf),
    /// A recipe names a file outside its own folder (`../../etc/passwd`, `/dev/sda`).
    #[error("the recipe names `{0}`, which is not inside the release folder")]
    #[diagnostic(
        code(espfleet::esp_at::flasher_args::path_outside),
        help(
            "a release folder's recipe may name only files inside that folder (relative paths without `..`); copy the image into the folder"
        )
    )]
    PathOutside(String),
    /// Reading a file failed.
    #[error("reading {path}: {message}")]
    #[diagnostic(
        code(espfleet::esp_at::flasher_args::io),
        help("check that the build folder is complete and readable")
    )]
    Io {
        /// Path.
        path: PathBuf,
        /// I/O error.
        message: String,
    },
}

fn setting<T>(
    what: &'static str,
    value: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, FlasherArgsError> {
    parse(value).ok_or_else(|| FlasherArgsError::FlashSetting {
        what,
        value: value.to_owned(),
    })
}

fn parse_offset(text: &str) -> Result<u32, FlasherArgsError> {
    let t = text.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| FlasherArgsError::Offset(text.to_owned()))
}

/// Checks that a recipe's file name stays inside the recipe's folder: relative, no `..`, no
/// root or drive prefix, not empty. (Symbolic links are checked when the folder is read.)
pub fn check_part_file(file: &str) -> Result<(), FlasherArgsError> {
    use std::path::Component;
    let path = Path::new(file);
    let inside = !file.is_empty()
        && !file.contains('\0')
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && path.components().any(|c| matches!(c, Component::Normal(_)));
    if inside {
        Ok(())
    } else {
        Err(FlasherArgsError::PathOutside(file.to_owned()))
    }
}

/// The image name IDF gives a file when only a path is known (`download.config`).
pub fn name_for_file(file: &str) -> String {
    let stem = Path::new(file)
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    match stem.as_str() {
        "ota_data_initial" => "otadata".to_owned(),
        "esp-at" => "app".to_owned(),
        _ => stem,
    }
}

impl FlasherArgs {
    /// ESP-IDF's defaults for a new build's recipe.
    pub fn new(chip: Chip, flash: FlashSettings, parts: Vec<FlashPart>) -> Self {
        FlasherArgs {
            flash,
            parts,
            chip: Some(chip),
            before: "default_reset".to_owned(),
            after: "hard_reset".to_owned(),
            stub: true,
        }
    }

    /// Line 1 of `flash_project_args`.
    pub fn flash_options(&self) -> String {
        format!(
            "--flash_mode {} --flash_freq {} --flash_size {}",
            self.flash.mode.name(),
            self.flash.freq.name(),
            self.flash.size.name()
        )
    }

    /// `flash_project_args`: the flash options, then `<offset> <file>` per image, joined by
    /// `\n` with no newline at the end (ESP-IDF generates it from `$<JOIN:...,\n>`).
    pub fn to_flash_project_args(&self) -> String {
        let mut out = self.flash_options();
        for p in &self.parts {
            let _ = write!(out, "\n{:#x} {}", p.offset, p.file);
        }
        out
    }

    /// ESP-AT's `download.config`: the lines of `flash_project_args` joined with single
    /// spaces, no trailing newline.
    pub fn to_download_config(&self) -> String {
        self.to_flash_project_args()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `flasher_args.json` in the layout of ESP-IDF v5's template (`flasher_args.json.in`).
    pub fn to_json(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let (m, s, f) = (
            q(self.flash.mode.name()),
            q(&self.flash.size.name()),
            q(self.flash.freq.name()),
        );
        let mut out = String::from("{\n");
        let _ = writeln!(out, "    \"write_flash_args\" : [ \"--flash_mode\", {m},");
        let _ = writeln!(out, "                           \"--flash_size\", {s},");
        let _ = writeln!(out, "                           \"--flash_freq\", {f} ],");
        out.push_str("    \"flash_settings\" : {\n");
        let _ = writeln!(out, "        \"flash_mode\": {m},");
        let _ = writeln!(out, "        \"flash_size\": {s},");
        let _ = writeln!(out, "        \"flash_freq\": {f}");
        out.push_str("    },\n    \"flash_files\" : {\n");
        let files: Vec<String> = self
            .parts
            .iter()
            .map(|p| {
                format!(
                    "        {} : {}",
                    q(&format!("{:#x}", p.offset)),
                    q(&p.file)
                )
            })
            .collect();
        out.push_str(&files.join(",\n"));
        out.push_str("\n    },\n");
        for p in &self.parts {
            let _ = writeln!(
                out,
                "    {} : {{ \"offset\" : {}, \"file\" : {}, \"encrypted\" : \"{}\" }},",
                q(&p.name),
                q(&format!("{:#x}", p.offset)),
                q(&p.file),
                p.encrypted
            );
        }
        out.push_str("    \"extra_esptool_args\" : {\n");
        let _ = writeln!(out, "        \"after\"  : {},", q(&self.after));
        let _ = writeln!(out, "        \"before\" : {},", q(&self.before));
        match self.chip {
            Some(chip) => {
                let _ = writeln!(out, "        \"stub\"   : {},", self.stub);
                let _ = writeln!(out, "        \"chip\"   : {}", q(chip.name()));
            }
            None => {
                let _ = writeln!(out, "        \"stub\"   : {}", self.stub);
            }
        }
        out.push_str("    }\n}\n");
        out
    }

    /// Parses `flasher_args.json`. Images are the top-level objects with `offset` and `file`,
    /// returned sorted by offset.
    pub fn parse_json(text: &str) -> Result<Self, FlasherArgsError> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FlasherArgsError::Json(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| FlasherArgsError::Json("not a JSON object".into()))?;
        let settings = obj.get("flash_settings").ok_or(FlasherArgsError::Missing {
            file: "flasher_args.json",
            what: "flash_settings",
        })?;
        let get = |what: &'static str| {
            settings
                .get(what)
                .and_then(|v| v.as_str())
                .ok_or(FlasherArgsError::Missing {
                    file: "flasher_args.json",
                    what,
                })
        };
        let flash = FlashSettings {
            mode: setting("mode", get("flash_mode")?, FlashMode::parse)?,
            freq: setting("freq", get("flash_freq")?, FlashFreq::parse)?,
            size: setting("size", get("flash_size")?, FlashSize::parse)?,
        };
        let mut parts = Vec::new();
        for (name, entry) in obj {
            let (Some(off), Some(file)) = (
                entry.get("offset").and_then(|v| v.as_str()),
                entry.get("file").and_then(|v| v.as_str()),
            ) else {
                continue;
            };
            let encrypted = entry
                .get("encrypted")
                .is_some_and(|e| e.as_str() == Some("true") || e.as_bool() == Some(true));
            check_part_file(file)?;
            parts.push(FlashPart {
                name: name.clone(),
                offset: parse_offset(off)?,
                file: file.to_owned(),
                encrypted,
            });
        }
        parts.sort_by_key(|p| p.offset);
        let extra = obj.get("extra_esptool_args");
        let s = |k: &str, d: &str| {
            extra
                .and_then(|e| e.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or(d)
                .to_owned()
        };
        let chip = match extra.and_then(|e| e.get("chip")).and_then(|v| v.as_str()) {
            Some(c) => Some(c.parse().map_err(|_| FlasherArgsError::FlashSetting {
                what: "chip",
                value: c.to_owned(),
            })?),
            None => None,
        };
        Ok(FlasherArgs {
            flash,
            parts,
            chip,
            before: s("before", "default_reset"),
            after: s("after", "hard_reset"),
            stub: extra
                .and_then(|e| e.get("stub"))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(true),
        })
    }

    /// Parses `flash_project_args` or `download.config` (the same words, on one line or many):
    /// `--flash_mode/--flash_freq/--flash_size` options, then `<offset> <file>` pairs. Image
    /// names come from [`name_for_file`].
    pub fn parse_args(text: &str) -> Result<Self, FlasherArgsError> {
        let mut words = text.split_whitespace();
        let (mut mode, mut freq, mut size) = (None, None, None);
        let mut parts = Vec::new();
        while let Some(w) = words.next() {
            let norm = w.replace('-', "_");
            let mut val = || {
                words.next().ok_or(FlasherArgsError::Missing {
                    file: "download.config",
                    what: "option value",
                })
            };
            match norm.as_str() {
                "__flash_mode" | "_fm" => mode = Some(setting("mode", val()?, FlashMode::parse)?),
                "__flash_freq" | "_ff" => freq = Some(setting("freq", val()?, FlashFreq::parse)?),
                "__flash_size" | "_fs" => size = Some(setting("size", val()?, FlashSize::parse)?),
                _ if w.starts_with('-') => {}
                _ => {
                    let offset = parse_offset(w)?;
                    let file = words.next().ok_or(FlasherArgsError::Missing {
                        file: "download.config",
                        what: "file after offset",
                    })?;
                    check_part_file(file)?;
                    parts.push(FlashPart {
                        name: name_for_file(file),
                        offset,
                        file: file.to_owned(),
                        encrypted: false,
                    });
                }
            }
        }
        let missing = |what| FlasherArgsError::Missing {
            file: "download.config",
            what,
        };
        Ok(FlasherArgs {
            flash: FlashSettings {
                mode: mode.ok_or_else(|| missing("--flash_mode"))?,
                freq: freq.ok_or_else(|| missing("--flash_freq"))?,
                size: size.ok_or_else(|| missing("--flash_size"))?,
            },
            parts,
            chip: None,
            before: "default_reset".to_owned(),
            after: "hard_reset".to_owned(),
            stub: true,
        })
    }
}

/// A build or release folder read from disk: its recipe and the bytes of every image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFolder {
    /// The recipe (from `flasher_args.json`, else `download.config`, else `flash_project_args`).
    pub args: FlasherArgs,
    /// The images as segments, sorted by offset, named as in the recipe.
    pub segments: Vec<Segment>,
}

/// Reads an ESP-AT build or release folder (the one that holds `flasher_args.json`). Every
/// file read is bounded ([`crate::input`]) and must lie inside `dir`, also after following
/// symbolic links.
pub fn read_build_folder(dir: &Path) -> Result<BuildFolder, FlasherArgsError> {
    use crate::input::{self, InputKind};
    let io = |path: &Path, e: input::InputError| FlasherArgsError::Io {
        path: path.to_owned(),
        message: e.into_io_error().to_string(),
    };
    let text = |path: &Path| {
        let bytes = input::read(path, InputKind::RECIPE).map_err(|e| io(path, e))?;
        String::from_utf8(bytes).map_err(|_| FlasherArgsError::Io {
            path: path.to_owned(),
            message: "not UTF-8 text".to_owned(),
        })
    };
    let json = dir.join("flasher_args.json");
    let args = if json.is_file() {
        FlasherArgs::parse_json(&text(&json)?)?
    } else {
        let p = ["download.config", "flash_project_args"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| FlasherArgsError::NoRecipe(dir.to_owned()))?;
        FlasherArgs::parse_args(&text(&p)?)?
    };
    let root = fs_err::canonicalize(dir).map_err(|e| FlasherArgsError::Io {
        path: dir.to_owned(),
        message: e.to_string(),
    })?;
    let mut segments = Vec::new();
    for p in &args.parts {
        check_part_file(&p.file)?;
        let path = dir.join(&p.file);
        // A link inside the folder must not lead out of it.
        if let Ok(real) = std::fs::canonicalize(&path) {
            if !real.starts_with(&root) {
                return Err(FlasherArgsError::PathOutside(p.file.clone()));
            }
        }
        let data: Arc<[u8]> = input::read(&path, InputKind::IMAGE)
            .map_err(|e| io(&path, e))?
            .into();
        segments.push(Segment {
            name: p.name.clone(),
            offset: p.offset,
            data,
        });
    }
    segments.sort_by_key(|s| s.offset);
    Ok(BuildFolder { args, segments })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FlasherArgs {
        let part = |name: &str, offset, file: &str| FlashPart {
            name: name.into(),
            offset,
            file: file.into(),
            encrypted: false,
        };
        FlasherArgs::new(
            Chip::Esp32,
            FlashSettings {
                mode: FlashMode::Dio,
                freq: FlashFreq::F40m,
                size: FlashSize::parse("4MB").unwrap(),
            },
            vec![
                part("bootloader", 0x1000, "bootloader/bootloader.bin"),
                part(
                    "partition-table",
                    0x8000,
                    "partition_table/partition-table.bin",
                ),
                part("otadata", 0x10000, "ota_data_initial.bin"),
                part("app", 0x10_0000, "esp-at.bin"),
            ],
        )
    }

    #[test]
    fn project_args_and_download_config() {
        let a = sample();
        assert_eq!(
            a.to_flash_project_args(),
            "--flash_mode dio --flash_freq 40m --flash_size 4MB\n0x1000 bootloader/bootloader.bin\n0x8000 partition_table/partition-table.bin\n0x10000 ota_data_initial.bin\n0x100000 esp-at.bin"
        );
        let dc = a.to_download_config();
        assert!(dc.starts_with(
            "--flash_mode dio --flash_freq 40m --flash_size 4MB 0x1000 bootloader/bootloader.bin "
        ));
        assert!(!dc.ends_with('\n'));
        let back = FlasherArgs::parse_args(&dc).unwrap();
        assert_eq!(back.parts, a.parts);
        assert_eq!(back.flash, a.flash);
    }

    #[test]
    fn json_round_trips() {
        let a = sample();
        let json = a.to_json();
        serde_json::from_str::<serde_json::Value>(&json).unwrap();
        assert_eq!(FlasherArgs::parse_json(&json).unwrap(), a);
        assert!(json.contains("    \"app\" : { \"offset\" : \"0x100000\", \"file\" : \"esp-at.bin\", \"encrypted\" : \"false\" },\n"));
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(matches!(
            FlasherArgs::parse_args("--flash_mode qio --flash_freq 60m --flash_size 4MB"),
            Err(FlasherArgsError::FlashSetting { what: "freq", .. })
        ));
        assert!(matches!(
            FlasherArgs::parse_args("0xZZ a.bin"),
            Err(FlasherArgsError::Offset(_))
        ));
    }
}
