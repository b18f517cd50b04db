//! Firmware parts checked against the manifest's chip before anything is built (issue 13):
//! the ROM boots only the image at the chip's bootloader offset (0x1000 on the ESP32, 0x0 on
//! the ESP32-C3), and only if it carries the chip's id and a matching checksum; the bootloader
//! then boots an app only if its checksum and appended SHA-256 match. An image that would not
//! boot is refused here, with the part's place in the manifest, instead of being flashed.
//!
//! Checked: the part named `bootloader` (which must sit at the chip's bootloader offset), any
//! part placed at that offset, the part named `app` and any part placed at an app partition.
//! Data parts (`ota_data_initial`, `phy_init`, user partitions) are not images.

use super::Resolver;
use crate::esp_at::firmware;
use crate::manifest::error::{ErrorKind, ManifestError};
use crate::manifest::plan::TablePlan;
use crate::manifest::source::Place;
use crate::target::Chip;

impl Resolver<'_> {
    pub(super) fn check_firmware_part(
        &mut self,
        name: &str,
        offset: u32,
        chip: Chip,
        primary: &TablePlan,
        bytes: &[u8],
        place: Option<&Place>,
    ) {
        let boot = chip.bootloader_offset();
        let err = |message: String, label: &str, help: String| {
            let e = ManifestError::new(ErrorKind::FirmwareInvalid, message).help(help);
            match place {
                Some(p) => e.at(p, label),
                None => e,
            }
        };
        if name == "bootloader" && offset != boot {
            self.err(err(
                format!("the {chip} bootloader goes at {boot:#x}, not {offset:#x}"),
                "wrong offset",
                format!("drop offset= (the {chip} ROM loads the bootloader from {boot:#x})"),
            ));
            return;
        }
        let at_app = primary.layout.as_ref().is_some_and(|t| {
            t.partitions()
                .iter()
                .any(|p| p.ty == crate::partition_table::TYPE_APP && p.offset == offset)
        });
        let role = if offset == boot {
            "bootloader"
        } else if name == "app" || at_app {
            "app"
        } else {
            return;
        };
        if let Err(e) = firmware::verify(bytes, chip) {
            let help = miette::Diagnostic::help(&e).map_or_else(String::new, |h| h.to_string());
            self.err(err(
                format!("part `{name}` at {offset:#x} is not a valid {chip} {role} image: {e}"),
                &format!("invalid {role} image"),
                help,
            ));
        }
    }
}
