//! The hotplug daemon behind `espfleetd`: plug a board in, it gets the firmware its manifest
//! says, hands off.
//!
//! Shape (style items 9–11): every source of change — udev ([`udev_source`]), the manifest
//! directory ([`watch`]), the per-port flash workers ([`worker`]), signals and the watchdog
//! timer — is converted at the edge into a plain-data [`event::Event`] and sent through one
//! channel into one `match` loop ([`event_loop`]). The loop owns all state; nothing else mutates
//! it. If a source dies the loop says which and returns an error, so systemd restarts us.
//!
//! Hardware sits behind traits: [`device::DeviceSource`] (udev, or a channel in tests) and
//! [`board::BoardConnector`] (the espflash-based flasher, or the simulator, or a fake).
//! Manifests come through [`manifests::ManifestLoader`], so the loop never depends on how a
//! manifest becomes images.
//!
//! With `--http`, a bench page ([`page`], served by [`http`]) shows the same status, the
//! journal and the flash maps of the manifests in force, live; it only reads what the loop
//! publishes.

pub mod access;
pub mod board;
pub mod device;
pub mod entry;
pub mod event;
pub mod event_loop;
pub mod http;
pub mod integration;
pub mod journal;
pub mod manifests;
pub mod page;
pub mod sd_notify;
pub mod status;
pub mod udev_source;
pub mod watch;
pub mod worker;

pub use event_loop::{DaemonConfig, DaemonError, run};
