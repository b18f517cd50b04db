//! Every esp_at decoder on damaged input: each truncation and many single-byte corruptions of
//! valid images must give a value or a typed error, never a panic; truncations that cut into
//! the declared content must be errors.

mod esp_at_support;

use esp_at_support::data;
use espfleet_compiler::esp_at::firmware::{self, FirmwareImage};
use espfleet_compiler::esp_at::pki::{self, check};
use espfleet_compiler::esp_at::{ble_data, factory_param, flasher_args};

fn corruptions(valid: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let step = (valid.len() / 97).max(1);
    (0..valid.len()).step_by(step).flat_map(move |i| {
        [0x00u8, 0xFF, 0x80].into_iter().map(move |b| {
            let mut v = valid.to_vec();
            v[i] ^= b.max(1);
            v
        })
    })
}

#[test]
fn pki_decoder() {
    let dir = data().join("raw_data_v2.4.0.0/client_cert");
    let bin =
        pki::build_partition_from_dir("client_cert", &dir, "v2.4.1.0".parse().unwrap()).unwrap();
    for n in 0..bin.len() {
        assert!(pki::decode(&bin[..n]).is_err(), "truncated at {n}");
    }
    for v in corruptions(&bin) {
        let _ = pki::decode(&v);
    }
}

#[test]
fn ble_data_decoder() {
    let csv =
        fs_err::read_to_string(data().join("raw_data_v2.4.0.0/ble_data/example.csv")).unwrap();
    let bin = ble_data::encode_bin(
        &ble_data::service_table(&ble_data::parse_era_a_csv(&csv).unwrap()).unwrap(),
    )
    .unwrap();
    for n in (0..bin.len()).step_by(7) {
        assert!(ble_data::decode_bin(&bin[..n]).is_err(), "truncated at {n}");
    }
    for v in corruptions(&bin) {
        let _ = ble_data::decode_bin(&v);
    }
}

#[test]
fn factory_param_decoder() {
    let g = factory_param::generate(
        &fs_err::read_to_string(
            data().join("raw_data_v2.4.0.0/factory_param/factory_param_type.csv"),
        )
        .unwrap(),
        &fs_err::read_to_string(
            data().join("raw_data_v2.4.0.0/factory_param/factory_param_data.csv"),
        )
        .unwrap(),
        "PLATFORM_ESP32",
        "WROOM-32",
    )
    .unwrap();
    for n in 0..64 {
        assert!(factory_param::FactoryParam::decode(&g.bin[..n]).is_err());
    }
    for v in corruptions(&g.bin) {
        if let Ok(p) = factory_param::FactoryParam::decode(&v) {
            // Whatever decodes re-encodes to the same field bytes.
            assert_eq!(
                p.encode().unwrap()[..factory_param::FIELDS_LEN],
                v[..factory_param::FIELDS_LEN]
            );
        }
    }
}

#[test]
fn firmware_decoder() {
    let bin = fs_err::read(data().join("firmware/esp32c3_bootloader.bin")).unwrap();
    // The fixture has an appended digest: every cut, even inside the digest, is an error for
    // the decoder, while esptool's looser `layout` accepts cuts after the checksum.
    let data_length = firmware::layout(&bin).unwrap().data_length;
    for n in 0..bin.len() {
        assert!(
            FirmwareImage::decode(&bin[..n]).is_err(),
            "truncated at {n}"
        );
        assert_eq!(
            firmware::layout(&bin[..n]).is_ok(),
            n >= data_length,
            "layout at {n}"
        );
    }
    for v in corruptions(&bin) {
        if let Ok(img) = FirmwareImage::decode(&v) {
            assert_eq!(img.encode().len(), v.len());
        }
    }
}

#[test]
fn certificate_parser_and_recipes() {
    let pem = fs_err::read(data().join("raw_data_master/wpa_ent_cert/wpa_ent_client.crt")).unwrap();
    let der = ::pem::parse(&pem).unwrap().into_contents();
    for n in 0..der.len() {
        assert!(check::parse(&der[..n]).is_err(), "truncated DER at {n}");
    }
    for v in corruptions(&der) {
        let _ = check::parse(&v);
    }
    let json = flasher_args::FlasherArgs::new(
        espfleet_compiler::target::Chip::Esp32,
        espfleet_compiler::target::FlashSettings {
            mode: espfleet_compiler::target::FlashMode::Dio,
            freq: espfleet_compiler::target::FlashFreq::F40m,
            size: espfleet_compiler::target::FlashSize::parse("4MB").unwrap(),
        },
        Vec::new(),
    )
    .to_json();
    for n in 0..json.len() {
        let _ = flasher_args::FlasherArgs::parse_json(&json[..n]);
        let _ = flasher_args::FlasherArgs::parse_args(&json[..n]);
    }
}
