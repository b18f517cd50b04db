#![no_main]
// Every ESP-AT format decoder on arbitrary bytes: none may panic; whatever decodes must
// re-encode to the bytes it came from (where the format is canonical).
use espfleet_compiler::esp_at::{ble_data, factory_param, firmware, flasher_args, pki};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(items) = pki::decode(data) {
        let again = pki::encode(&items).expect("decoded items re-encode");
        assert_eq!(pki::decode(&again).expect("re-decodes"), items);
    }
    if let Ok(table) = ble_data::decode_bin(data) {
        let _ = ble_data::encode_bin(&table);
    }
    if let Ok(p) = factory_param::FactoryParam::decode(data) {
        let again = p.encode().expect("decoded record re-encodes");
        assert_eq!(
            again[..factory_param::FIELDS_LEN],
            data[..factory_param::FIELDS_LEN]
        );
    }
    if let Ok(img) = firmware::FirmwareImage::decode(data) {
        assert_eq!(img.encode().len(), data.len());
    }
    let _ = pki::check::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = flasher_args::FlasherArgs::parse_json(text);
        let _ = flasher_args::FlasherArgs::parse_args(text);
        let _ = ble_data::parse_era_a_csv(text).map(|csv| ble_data::service_table(&csv));
        let _ = ble_data::parse_gatts_csv(text);
    }
});
