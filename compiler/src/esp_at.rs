//! ESP-AT's factory data images of both storage eras, as pure encoders and decoders.
//!
//! ESP-AT stores its per-board configuration in extra partitions listed in `at_customize.csv`.
//! Up to v3.0.0.0 (era A) every item is a raw partition with its own binary format; from
//! v3.1.0.0 on (era B) everything lives in one NVS partition, `mfg_nvs`. The modules here
//! reproduce the bytes Espressif's own generators write, so an espfleet build can be compared
//! byte for byte with an ESP-AT build (`shared/spec/esp-at-formats.md`):
//!
//! | module | what |
//! |---|---|
//! | [`release`] | ESP-AT release versions and everything that changes between them |
//! | [`dependency`] | the Kconfig feature → partition dependency lists (spec 1.2, 11) |
//! | [`factory_param`] | era A `factory_param.bin` (4096 bytes) |
//! | [`pki`] | era A `F1 F1` certificate/key container; certificate and key checks |
//! | [`ble_data`] | GATT server tables: ESP-AT's CSV forms, era A JSON bin, era B `cfgN` strings |
//! | [`mfg_nvs`] | era B: the ordered NVS namespaces/entries `mfg_nvs.py` produces, and its CSV |
//! | [`firmware`] | ESP application/bootloader image headers (magic `0xE9`) |
//! | [`merged`] | the merged factory image (`esptool merge_bin` and the pre-v4.1 combine script) |
//! | [`flasher_args`] | `flasher_args.json`, `flash_project_args`, `download.config` |
//!
//! Everything here is bytes in, bytes out: no file system access except in the few functions
//! whose name says they read an ESP-AT directory (`*_from_dir`), and no printing.

pub mod ble_data;
pub mod dependency;
pub mod factory_param;
pub mod firmware;
pub mod flasher_args;
pub mod merged;
pub mod mfg_nvs;
pub mod pki;
pub mod release;

pub use release::{Era, Release, ReleaseFormats};
