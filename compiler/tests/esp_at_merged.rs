//! Merged factory images against `esptool merge-bin` (PyPI esptool 5.6.0, the oracle) on the
//! same parts, padded and unfilled, for ESP32 and ESP32-C3 bootloaders with and without an
//! appended SHA-256. The firmware images are fixtures made by `esptool elf2image` from
//! synthetic ELF files (`tests/data/esp_at/firmware/make_images.py`).

mod esp_at_support;

use std::sync::Arc;

use esp_at_support::{data, run_oracle, sha};
use espfleet_compiler::esp_at::firmware::{self, FirmwareImage, FlashParams};
use espfleet_compiler::esp_at::merged::{self, MergeOptions};
use espfleet_compiler::image::Segment;
use espfleet_compiler::target::{Chip, FlashFreq, FlashMode, FlashSettings, FlashSize};

fn fixture(name: &str) -> Vec<u8> {
    fs_err::read(data().join("firmware").join(name)).unwrap()
}

fn seg(name: &str, offset: u32, data: Vec<u8>) -> Segment {
    Segment {
        name: name.to_owned(),
        offset,
        data: Arc::from(data),
    }
}

fn filler(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            u8::try_from(i % 256)
                .unwrap()
                .wrapping_mul(31)
                .wrapping_add(seed)
        })
        .collect()
}

/// An ESP-AT-like part set for `chip` (ESP32-4MB / C-4MB layouts of `docs/formats/esp-at-images.md` §2.2).
fn parts(chip: Chip, bootloader: &str) -> Vec<Segment> {
    let (pt, otadata, at_customize, mfg_nvs, app) = match chip {
        Chip::Esp32 => (0x8000, 0x10000, 0x20000, 0x21000, 0x10_0000),
        Chip::Esp32c3 => (0x8000, 0xD000, 0x1E000, 0x1F000, 0x60000),
    };
    vec![
        seg("app", app, fixture(&format!("{chip}_app.bin"))),
        seg(
            "bootloader",
            chip.bootloader_offset(),
            fixture(&format!("{chip}_{bootloader}.bin")),
        ),
        seg("partition-table", pt, filler(1, 3072)),
        seg("otadata", otadata, vec![0xFF; 0x2000]),
        seg("at_customize", at_customize, filler(2, 3072)),
        seg("mfg_nvs", mfg_nvs, filler(3, 0x4000)),
    ]
}

fn flash() -> FlashSettings {
    FlashSettings {
        mode: FlashMode::Dio,
        freq: FlashFreq::F40m,
        size: FlashSize::parse("4MB").unwrap(),
    }
}

fn esptool_merge(chip: Chip, parts: &[Segment], extra: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = [
        "-m",
        "esptool",
        "--chip",
        chip.name(),
        "merge-bin",
        "-o",
        "out.bin",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    for (i, p) in parts.iter().enumerate() {
        let file = format!("part{i}.bin");
        fs_err::write(dir.path().join(&file), &p.data).unwrap();
        args.push(format!("{:#x}", p.offset));
        args.push(file);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run_oracle(dir.path(), &refs);
    fs_err::read(dir.path().join("out.bin")).unwrap()
}

fn compare(chip: Chip, bootloader: &str) {
    let parts = parts(chip, bootloader);
    let settings = [
        "--flash-mode",
        "dio",
        "--flash-freq",
        "40m",
        "--flash-size",
        "4MB",
    ];
    for filled in [false, true] {
        let ours = merged::merge_bin(&parts, &MergeOptions::esp_at(chip, flash(), filled)).unwrap();
        let mut extra = settings.to_vec();
        if filled {
            extra.extend(["--pad-to-size", "4MB"]);
        }
        let theirs = esptool_merge(chip, &parts, &extra);
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{chip} {bootloader} filled={filled}"
        );
        assert!(
            ours == theirs,
            "{chip} {bootloader} filled={filled}: {} vs {}",
            sha(&ours),
            sha(&theirs)
        );
        if filled {
            assert_eq!(ours.len(), 4 << 20);
        } else {
            let app = parts.iter().find(|p| p.name == "app").unwrap();
            assert_eq!(ours.len() as u64, app.end());
        }
        // The bootloader was patched (its own header says qio/80m/2MB) and stays valid.
        let boot = &ours[chip.bootloader_offset() as usize..];
        let img = FirmwareImage::decode(&boot[..firmware::layout(boot).unwrap().data_length + 32])
            .unwrap();
        assert_eq!((img.flash_mode, img.flash_size_freq), (2, 0x20));
        if img.extended.hash_appended {
            assert_eq!(img.digest, Some(img.computed_digest()));
        }
    }
}

#[test]
fn merge_bin_matches_esptool_esp32_with_digest() {
    compare(Chip::Esp32, "bootloader");
}

#[test]
fn merge_bin_matches_esptool_esp32_without_digest() {
    compare(Chip::Esp32, "bootloader_nodigest");
}

#[test]
fn merge_bin_matches_esptool_esp32c3_with_digest() {
    compare(Chip::Esp32c3, "bootloader");
}

#[test]
fn merge_bin_matches_esptool_esp32c3_without_digest() {
    compare(Chip::Esp32c3, "bootloader_nodigest");
}

#[test]
fn merge_bin_keeps_settings_and_invalid_bootloaders_like_esptool() {
    // `keep` everywhere: nothing is patched.
    let parts = parts(Chip::Esp32, "bootloader");
    let keep = MergeOptions {
        chip: Chip::Esp32,
        flash: FlashParams::default(),
        pad_to: None,
        target_offset: 0,
    };
    assert_eq!(
        merged::merge_bin(&parts, &keep).unwrap(),
        esptool_merge(Chip::Esp32, &parts, &[])
    );

    // A truncated bootloader starts with 0xE9 but is not a valid image: left unchanged.
    let mut broken = parts.clone();
    let boot = broken.iter_mut().find(|p| p.name == "bootloader").unwrap();
    boot.data = Arc::from(&boot.data[..100]);
    let truncated = boot.data.clone();
    let opts = MergeOptions::esp_at(Chip::Esp32, flash(), false);
    let ours = merged::merge_bin(&broken, &opts).unwrap();
    assert_eq!(&ours[0x1000..0x1064], &truncated[..]);
    let theirs = esptool_merge(
        Chip::Esp32,
        &broken,
        &[
            "--flash-mode",
            "dio",
            "--flash-freq",
            "40m",
            "--flash-size",
            "4MB",
        ],
    );
    assert!(ours == theirs);

    // A nonzero target offset (merge starting at the bootloader).
    let at = MergeOptions {
        target_offset: 0x1000,
        ..opts
    };
    let theirs = esptool_merge(
        Chip::Esp32,
        &parts,
        &[
            "--flash-mode",
            "dio",
            "--flash-freq",
            "40m",
            "--flash-size",
            "4MB",
            "--target-offset",
            "0x1000",
        ],
    );
    assert!(merged::merge_bin(&parts, &at).unwrap() == theirs);
}

#[test]
fn elf2image_fixtures_decode_and_re_encode_byte_for_byte() {
    let dir = data().join("firmware");
    for entry in fs_err::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("bin") {
            continue;
        }
        let bytes = fs_err::read(&path).unwrap();
        let img = FirmwareImage::decode(&bytes).unwrap();
        assert_eq!(img.encode(), bytes, "{}", path.display());
        assert_eq!(img.checksum, img.computed_checksum(), "{}", path.display());
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(
            img.extended.hash_appended,
            !name.contains("nodigest"),
            "{name}"
        );
        if img.extended.hash_appended {
            assert_eq!(img.digest, Some(img.computed_digest()), "{name}");
        }
        let chip_id = if name.starts_with("esp32c3") { 5 } else { 0 };
        assert_eq!(img.extended.chip_id, chip_id, "{name}");
        assert!(img.trailing.is_empty());
    }
}

#[test]
fn combine_script_uses_the_flash_size_buffer_and_keeps_the_old_digest() {
    let parts = parts(Chip::Esp32, "bootloader");
    let out = merged::combine_script(&parts, flash()).unwrap();
    assert_eq!(out.len(), 4 << 20);
    for p in &parts {
        let at = p.offset as usize;
        if p.name == "bootloader" {
            assert_eq!(&out[at + 2..at + 4], &[2, 0x20]);
            assert_eq!(
                &out[at + 4..at + p.data.len()],
                &p.data[4..],
                "digest not recomputed"
            );
        } else {
            assert_eq!(&out[at..at + p.data.len()], &p.data[..], "{}", p.name);
        }
    }
}

#[test]
fn extract_recovers_every_part_of_a_merge() {
    for chip in Chip::ALL {
        let parts = parts(chip, "bootloader");
        for filled in [false, true] {
            let image =
                merged::merge_bin(&parts, &MergeOptions::esp_at(chip, flash(), filled)).unwrap();
            let layout: Vec<(&str, u32, usize)> = parts
                .iter()
                .map(|p| (p.name.as_str(), p.offset, p.data.len()))
                .collect();
            let back = merged::extract(&image, 0, &layout).unwrap();
            for (p, b) in parts.iter().zip(&back) {
                if p.name == "bootloader" {
                    // Only the flash-parameter bytes and the digest were rewritten.
                    let want = firmware::set_flash_params(
                        chip,
                        &p.data,
                        MergeOptions::esp_at(chip, flash(), filled).flash,
                    );
                    assert_eq!(&b.data[..], &want[..]);
                } else {
                    assert_eq!(b, p);
                }
            }
        }
        let too_far = [("x", 0x3F_F000, 0x2000)];
        assert!(merged::extract(&[0; 16], 0, &too_far).is_err());
    }
}

#[test]
fn firmware_describe_agrees_with_esptool_image_info() {
    // Segment addresses and lengths as `esptool --chip esp32 image-info` printed them for this
    // fixture (0x3ffb0000 length 0x2c0, 0x40080000 length 0xbc4; checksum 0xb8 valid).
    let img = FirmwareImage::decode(&fixture("esp32_bootloader.bin")).unwrap();
    let text = img.describe();
    assert!(
        text.contains("segment 0: load 0x3ffb0000 length 0x002c0"),
        "{text}"
    );
    assert!(
        text.contains("segment 1: load 0x40080000 length 0x00bc4"),
        "{text}"
    );
    assert!(text.contains("checksum 0xb8 (valid)"), "{text}");
    assert!(
        text.contains(
            "sha256 c1aa4772036a6aabd42b173bd0eb65cd0915ba8c0a9087cae4be8307bf18a56f (valid)"
        ),
        "{text}"
    );
}
