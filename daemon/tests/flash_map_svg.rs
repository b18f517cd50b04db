//! `espfleet inspect IMAGE --svg FILE` and the daemon's flash maps come from one renderer:
//! the map read back from a merged factory image has the layout of the map the daemon draws
//! from the images it flashes, and the SVG is well-formed XML by an independent parser
//! (`xmllint` from Debian's libxml2-utils, tests/apt-packages.txt).

use std::path::{Path, PathBuf};
use std::process::Command;

use espfleet::daemon::manifests::ManifestLoader as _;
use espfleet_compiler::flash_map::FlashMap;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn espfleet(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_espfleet"))
        .args(args)
        .output()
        .unwrap()
}

fn xml_ok(path: &Path) {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg(path)
        .output()
        .expect("xmllint missing: apt-get install libxml2-utils (tests/apt-packages.txt)");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn inspect_svg_draws_the_layout_the_daemon_draws_as_well_formed_svg() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = repo().join("manifests/examples/wroom-32.kdl");
    let out = dir.path().join("out");
    let built = espfleet(&[
        "build".as_ref(),
        manifest.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let factory = out.join("wroom-32/factory/factory_WROOM-32.bin");

    let svg = dir.path().join("maps/factory.svg");
    let run = espfleet(&[
        "inspect".as_ref(),
        factory.as_os_str(),
        "--svg".as_ref(),
        svg.as_os_str(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        String::from_utf8_lossy(&run.stdout).starts_with("Merged factory image"),
        "the text account is still printed"
    );
    xml_ok(&svg);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    for name in [
        "ota_0",
        "at_customize",
        "mfg_nvs",
        "factory_WROOM-32.bin — esp32, 4M flash",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    assert!(!text.contains("PRIVATE KEY"));

    // The same layout as the map the daemon draws from the images it would flash.
    let loader = espfleet::daemon::integration::CompilerLoader::new(dir.path().join("cache"));
    let manifest_in_force = loader.load(&manifest).unwrap();
    let drawn_by_daemon = FlashMap::of_image(&manifest_in_force.image);
    let read_back = FlashMap::of_bytes(&std::fs::read(&factory).unwrap()).unwrap();
    assert_eq!(read_back.regions, drawn_by_daemon.regions);
    assert_eq!(read_back.flash_size, drawn_by_daemon.flash_size);
    assert_eq!(read_back.chip, drawn_by_daemon.chip);
    // Every part the daemon writes holds data in the merged image, at the same place.
    for part in &drawn_by_daemon.parts {
        let data = part.name != "ota_data_initial"; // all FF: written, but erased-looking
        if data {
            assert!(
                read_back
                    .parts
                    .iter()
                    .any(|p| p.offset <= part.offset && part.offset < p.offset + p.size),
                "{} at {:#x} not among {:?}",
                part.name,
                part.offset,
                read_back.parts
            );
        }
    }

    // A bare partition table draws too; an NVS image has no layout (exit 1, coded).
    let table = out.join("wroom-32/partition_table/partition-table.bin");
    let table_svg = dir.path().join("table.svg");
    let run = espfleet(&[
        "inspect".as_ref(),
        table.as_os_str(),
        "--svg".as_ref(),
        table_svg.as_os_str(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    xml_ok(&table_svg);
    let nvs = out.join("wroom-32/customized_partitions/mfg_nvs.bin");
    let no = dir.path().join("nvs.svg");
    let run = espfleet(&[
        "inspect".as_ref(),
        nvs.as_os_str(),
        "--svg".as_ref(),
        no.as_os_str(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("espfleet::flash_map::no_layout"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!no.exists(), "nothing written on failure");
}
