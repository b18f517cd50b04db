//! The espfleet compiler: a KDL device manifest in, ESP-AT flash images out.
//!
//! The pipeline has three stages with typed boundaries:
//!
//! 1. [`manifest::parse`] reads KDL and keeps every span, producing a [`manifest::Document`];
//! 2. [`manifest::resolve`] merges the catalogue module, `extends` bases and the manifest's own
//!    values into a validated [`manifest::Plan`], collecting every error before any byte exists;
//! 3. [`build`] emits images from the plan: pure functions from plan to bytes, one module per
//!    on-flash format ([`partition_table`], [`nvs`], [`esp_at`]).
//!
//! The library never prints. Progress is reported through callbacks; errors are
//! [`miette::Diagnostic`]s with stable codes and spans into the manifest.

pub mod build;
pub mod cache;
pub mod catalogue;
pub mod device_match;
pub mod esp_at;
pub mod flash_map;
pub mod identity;
pub mod image;
pub mod import;
pub mod input;
pub mod inspect;
pub mod manifest;
pub mod nvs;
pub mod output;
pub mod partition_table;
pub mod release;
pub mod secret;
pub mod target;
pub mod wifi_country;
