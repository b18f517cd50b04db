//! ESP-AT's factory data images of both storage eras, as pure encoders and decoders.
//!
//! ESP-AT stores its per-board configuration in extra partitions listed in `at_customize.csv`.
//! Up to v3.0.0.0 (era A) every item is a raw partition with its own binary format; from
//! v3.1.0.0 on (era B) everything lives in one NVS partition, `mfg_nvs`. The modules here
//! reproduce the bytes Espressif's own generators write, so an espfleet build can be compared
//! byte for byte with an ESP-AT build (`docs/formats/esp-at-images.md`):
//!
//! | module | what |
//! |---|---|
//! | [`release`] | ESP-AT release versions and everything that changes between them |
//! | [`dependency`] | the Kconfig feature → partition dependency lists (`docs/formats/esp-at-images.md` §1.2, §11) |
//! | [`factory_param`] | era A `factory_param.bin` (4096 bytes) |
//! | [`pki`] | era A `F1 F1` certificate/key container; certificate and key checks |
//! | [`ble_data`] | GATT server tables: ESP-AT's CSV forms, era A JSON bin, era B `cfgN` strings |
//! | [`mfg_nvs`] | era B: the ordered NVS namespaces/entries `mfg_nvs.py` produces, and its CSV |
//! | [`firmware`] | ESP application/bootloader image headers (magic `0xE9`) |
//! | [`merged`] | the merged factory image (`esptool merge_bin` and the pre-v4.1 combine script) |
//! | [`flasher_args`] | `flasher_args.json`, `flash_project_args`, `download.config` |
//!
//! ## How a build uses these modules
//!
//! * Both eras: [`dependency::check`] with the release, the enabled Kconfig symbols and the
//!   at_customize partition names says which partitions and namespaces to generate;
//!   [`pki::check`] vets certificates and keys first.
//! * Era A ([`Era::A`]): [`factory_param::FactoryParam::encode`] (or [`factory_param::generate`]
//!   from ESP-AT's CSVs), [`pki::build_partition`] per PKI partition (type bytes from
//!   [`ReleaseFormats::pki_type_bytes`]), [`ble_data::encode_bin`] of
//!   [`ble_data::service_table`]; each bin goes at its at_customize offset.
//! * Era B ([`Era::B`]): an [`mfg_nvs::MfgNvs`] (from [`mfg_nvs::pki_namespace`],
//!   [`mfg_nvs::FactoryParamNvs::namespace`] and [`mfg_nvs::ble_namespace`], in that order, or
//!   [`mfg_nvs::MfgNvs::from_raw_data_dir`]), then [`mfg_nvs::MfgNvs::encode`] with the
//!   at_customize size ([`mfg_nvs::at_parse_size`]) and the release's page form.
//! * Output folder: [`flasher_args::FlasherArgs`] renders `flasher_args.json`,
//!   `flash_project_args` and `download.config`; [`merged::merge_bin`] with
//!   [`merged::MergeOptions::esp_at`] makes the padded and unfilled factory images
//!   ([`merged::combine_script`] reproduces releases before v4.1.0.0).
//! * Firmware parts from an ESP-AT release folder: [`flasher_args::read_build_folder`];
//!   [`firmware::layout`] / [`firmware::FirmwareImage::decode`] check them.
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
