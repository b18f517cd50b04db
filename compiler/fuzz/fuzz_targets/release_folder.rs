#![no_main]
//! Arbitrary text as a release folder's recipe: `flasher_args.json` and `download.config` /
//! `flash_project_args` parsed directly, then written into a scratch folder and read with
//! `read_build_folder`, whose every file must stay inside the folder. Nothing may panic, and
//! no recipe may make it read a file outside the folder.

use std::sync::OnceLock;

use espfleet_compiler::esp_at::flasher_args::{self, FlasherArgs};

fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("espfleet-fuzz-release-{}", std::process::id()));
        std::fs::create_dir_all(d.join("release/bootloader")).unwrap();
        std::fs::write(d.join("release/esp-at.bin"), [0xE9u8; 64]).unwrap();
        std::fs::write(d.join("release/bootloader/bootloader.bin"), [0xE9u8; 64]).unwrap();
        // A file just outside the folder: reading it would be an escape.
        std::fs::write(d.join("outside.bin"), b"outside").unwrap();
        d
    })
}

fn check_inside(args: &FlasherArgs) {
    for p in &args.parts {
        assert!(
            flasher_args::check_part_file(&p.file).is_ok(),
            "parser accepted {:?}",
            p.file
        );
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(a) = FlasherArgs::parse_json(text) {
        check_inside(&a);
        // What we render, we read back.
        let again = FlasherArgs::parse_json(&a.to_json()).expect("rendered JSON parses");
        assert_eq!(again.parts, a.parts);
    }
    if let Ok(a) = FlasherArgs::parse_args(text) {
        check_inside(&a);
    }
    let _ = flasher_args::check_part_file(text);

    let root = scratch();
    let release = root.join("release");
    let (write, remove) = if selector & 1 == 0 {
        ("flasher_args.json", "download.config")
    } else {
        ("download.config", "flasher_args.json")
    };
    let _ = std::fs::remove_file(release.join(remove));
    std::fs::write(release.join(write), rest).unwrap();
    if let Ok(folder) = flasher_args::read_build_folder(&release) {
        for s in &folder.segments {
            assert_ne!(&s.data[..], b"outside", "read a file outside the folder");
        }
        check_inside(&folder.args);
    }
});
