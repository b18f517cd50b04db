//! Match rules: which manifest a plugged-in board gets (manifest `match` nodes).
//!
//! A manifest may have several `match` nodes; a board matches the manifest when it satisfies
//! every property of at least one node. The most specific satisfied node wins across manifests.

use serde::{Deserialize, Serialize};

use crate::target::Chip;

/// One `match` node of a manifest: every property that is set must hold.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct MatchRule {
    /// USB vendor id of the USB-serial bridge (`0x10c4`).
    pub vid: Option<u16>,
    /// USB product id of the USB-serial bridge (`0xea60`).
    pub pid: Option<u16>,
    /// USB serial number string of the bridge.
    pub serial: Option<String>,
    /// Device node as the daemon sees it (`/dev/ttyUSB0`, `/dev/espfleet/slot-3`).
    pub port: Option<String>,
    /// USB topology path of the port (`1-1.3`): a physical bench slot.
    pub usb_path: Option<String>,
    /// Chip family; known only after connecting to the ROM bootloader.
    pub chip: Option<Chip>,
    /// Factory MAC address (base MAC from eFuse); known only after connecting.
    pub mac: Option<[u8; 6]>,
}
