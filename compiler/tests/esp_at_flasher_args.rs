//! ESP-AT build/release folders: the example part sets in `manifests/examples/firmware/` read
//! back through `flasher_args::read_build_folder`, with every image valid per esptool's rules.

mod esp_at_support;

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

/// ESP-AT v4.1+'s own factory step, verbatim: `esptool.py --chip <target> merge_bin --output
/// factory.bin [--fill-flash-size <size>] @flash_project_args`, run in the build folder on the
/// `flash_project_args` we render, must give the bytes of our merge.
#[test]
fn esp_at_factory_command_on_our_flash_project_args_matches_our_merge() {
    use espfleet_compiler::esp_at::merged::{self, MergeOptions};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples/firmware");
    for chip in Chip::ALL {
        let dir = root.join(chip.name());
        let folder = flasher_args::read_build_folder(&dir).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let args_file = tmp.path().join("flash_project_args");
        fs_err::write(&args_file, folder.args.to_flash_project_args()).unwrap();
        for filled in [true, false] {
            let out = tmp.path().join(format!("factory_{filled}.bin"));
            let mut args = vec![
                "-m",
                "esptool",
                "--chip",
                chip.name(),
                "merge_bin",
                "--output",
            ];
            let out_s = out.to_str().unwrap().to_owned();
            args.push(&out_s);
            let size = folder.args.flash.size.name();
            if filled {
                args.extend(["--fill-flash-size", &size]);
            }
            let at = format!("@{}", args_file.display());
            args.push(&at);
            esp_at_support::run_oracle(&dir, &args);
            let theirs = fs_err::read(&out).unwrap();
            let ours = merged::merge_bin(
                &folder.segments,
                &MergeOptions::esp_at(chip, folder.args.flash, filled),
            )
            .unwrap();
            assert!(ours == theirs, "{chip} filled={filled}");
        }
    }
}
