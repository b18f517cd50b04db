//! ESP-AT `mfg_nvs` test vector (`docs/formats/esp-at-images.md` §12.3): the master raw_data
//! certificates plus the WROOM-32 factory parameters and the BLE GATT table, 112K. That section
//! gives the SHA-256 of both generator forms: legacy trailing pages (IDF v5.0 in-tree script,
//! generator 0.1.6, esp-at tools/at.py) and today's (generator ≥ 0.1.7).

mod nvs_support;

use std::fmt::Write as _;

use espfleet_compiler::nvs::csv::{CsvInput, generate, read_records};
use espfleet_compiler::nvs::{Options, TrailingPages, Version, decode};

/// Builds `mfg_nvs.csv` as esp-at's `mfg_nvs.py` does for the default master config (`docs/formats/esp-at-images.md` §8.1/§12.3).
fn mfg_nvs_csv() -> String {
    let raw = nvs_support::test_data_dir().join("esp-at/master/raw_data");
    let p = |rel: &str| raw.join(rel).display().to_string();
    let mut csv = String::from("key,type,encoding,value\n");
    let pki: [(&str, &[(&str, &str)]); 9] = [
        (
            "server_cert",
            &[("server_cert", "server_cert/server_cert.crt")],
        ),
        ("server_key", &[("server_key", "server_key/server.key")]),
        ("server_ca", &[("server_ca", "server_ca/server_ca.crt")]),
        (
            "client_cert",
            &[
                ("client_cert.0", "client_cert/client_cert_00.crt"),
                ("client_cert.1", "client_cert/client_cert_01.crt"),
            ],
        ),
        (
            "client_key",
            &[
                ("client_key.0", "client_key/client_key_00.key"),
                ("client_key.1", "client_key/client_key_01.key"),
            ],
        ),
        (
            "client_ca",
            &[
                ("client_ca.0", "client_ca/client_ca_00.crt"),
                ("client_ca.1", "client_ca/client_ca_01.crt"),
            ],
        ),
        ("mqtt_cert", &[("mqtt_cert", "mqtt_cert/mqtt_client.crt")]),
        ("mqtt_key", &[("mqtt_key", "mqtt_key/mqtt_client.key")]),
        ("mqtt_ca", &[("mqtt_ca", "mqtt_ca/mqtt_ca.crt")]),
    ];
    for (ns, files) in pki {
        let _ = writeln!(csv, "{ns},namespace,,");
        for (key, file) in files {
            let _ = writeln!(csv, "{key},file,binary,{}", p(file));
        }
    }
    csv.push_str(
        "factory_param,namespace,,\nversion,data,i8,4\nmodule_name,data,string,\"WROOM-32\"\nmax_tx_power,data,i8,78\n\
         country_code,data,string,\"CN\"\nstart_channel,data,u8,1\nchannel_num,data,u8,13\nuart_port,data,i8,1\n\
         uart_baudrate,data,i32,115200\nuart_tx_pin,data,i32,17\nuart_rx_pin,data,i32,16\nuart_cts_pin,data,i32,15\n\
         uart_rts_pin,data,i32,14\nsys_store,data,u8,1\nble_data,namespace,,\n",
    );
    let gatts = std::fs::read_to_string(raw.join("ble_data/gatts_data.csv")).unwrap();
    let rows = read_records(&gatts).unwrap();
    let rows = rows
        .iter()
        .filter(|r| !r.fields.is_empty() && !r.fields[0].starts_with('#'));
    for (k, r) in rows.enumerate() {
        let _ = writeln!(csv, "cfg{k},data,string,\"{}\"", r.fields.join(","));
    }
    csv
}

fn build(trailing: TrailingPages) -> Vec<u8> {
    let input = CsvInput {
        name: "mfg_nvs.csv".into(),
        text: mfg_nvs_csv(),
    };
    let options = Options {
        version: Version::V2,
        size: 114_688,
        trailing,
    };
    generate(&[input], &options, std::path::Path::new("/")).unwrap()
}

#[test]
fn esp_at_master_mfg_nvs_current_generator() {
    let image = build(TrailingPages::Erased);
    assert_eq!(
        nvs_support::sha256_hex(&image),
        "42d73ef6fdbc0662e3c2caaae073b47f527c6a4e1cf68b41ae70195cb6a83ec2"
    );
}

#[test]
fn esp_at_master_mfg_nvs_legacy_trailing_pages() {
    let image = build(TrailingPages::Legacy);
    assert_eq!(
        nvs_support::sha256_hex(&image),
        "2201ffa8e93e0870cbf8438190f5d8fd71b990f7390460cc6eab5103ad0a8fd6"
    );
    // The decoder recognises the form, so `dump` suggests --legacy-pages.
    assert_eq!(decode(&image).trailing, TrailingPages::Legacy);
}
