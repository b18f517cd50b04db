//! ESP-AT build/release folders: the example part sets in `manifests/examples/firmware/` read
//! back through `flasher_args::read_build_folder`, with every image valid per esptool's rules.

use std::path::Path;

use espfleet_compiler::esp_at::firmware::FirmwareImage;
use espfleet_compiler::esp_at::flasher_args::{self, FlasherArgs};
use espfleet_compiler::target::Chip;

#[test]
fn example_firmware_folders_read_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples/firmware");
    for chip in Chip::ALL {
        let folder = flasher_args::read_build_folder(&root.join(chip.name())).unwrap();
        assert_eq!(folder.args.chip, Some(chip));
        let names: Vec<_> = folder.segments.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["bootloader", "otadata", "app"], "{chip}");
        assert_eq!(folder.segments[0].offset, chip.bootloader_offset());
        for seg in &folder.segments {
            if seg.name == "otadata" {
                assert!(seg.data.iter().all(|&b| b == 0xFF));
                continue;
            }
            let img = FirmwareImage::decode(&seg.data).unwrap();
            assert_eq!(img.checksum, img.computed_checksum(), "{chip} {}", seg.name);
            assert_eq!(
                img.digest,
                Some(img.computed_digest()),
                "{chip} {}",
                seg.name
            );
            assert!(seg.data.len() <= 300 * 1024);
        }
        // Rendering our own recipe for the same parts and parsing it back gives the same parts.
        let ours = FlasherArgs::new(chip, folder.args.flash, folder.args.parts.clone());
        assert_eq!(
            FlasherArgs::parse_json(&ours.to_json()).unwrap().parts,
            folder.args.parts
        );
        assert_eq!(
            FlasherArgs::parse_args(&ours.to_download_config())
                .unwrap()
                .parts,
            folder.args.parts
        );
    }
}
