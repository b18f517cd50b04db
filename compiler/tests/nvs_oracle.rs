//! Differential test against the PyPI oracle `esp-idf-nvs-partition-gen` 0.3.0: 240 seeded
//! random cases plus hand-made edge cases (all types, blobs crossing pages, many namespaces,
//! both versions, read-only sizes, Wi-Fi keys, encryption with a fixed key, and inputs the
//! oracle rejects). All cases run in ONE Python process (`nvs_oracle_batch.py`).
//!
//! Success cases must give identical bytes; where the oracle rejects an input we must reject
//! it too, with a coded diagnostic. Every accepted image must also dump and regenerate.
#![allow(
    clippy::too_many_lines,
    clippy::cast_possible_truncation,
    clippy::explicit_auto_deref,
    clippy::similar_names
)]

mod nvs_support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use espfleet_compiler::nvs::csv::{CsvInput, generate, parse_size, quote_field};
use espfleet_compiler::nvs::encrypt::{NvsKey, encrypt_image};
use espfleet_compiler::nvs::{Options, TrailingPages, Version, decode};
use miette::Diagnostic as _;

const RANDOM_CASES: u64 = 240;

/// splitmix64: a tiny seeded generator, so the cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + usize::try_from(self.below((hi - lo) as u64)).unwrap()
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len())]
    }
}

struct Case {
    name: String,
    dir: PathBuf,
    inputs: Vec<String>,
    size: String,
    version: u8,
    encrypt: bool,
}

const KEY_FILE: &str = "keys.bin";

fn key_bytes() -> Vec<u8> {
    let mut k: Vec<u8> = (0u8..64)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    k.resize(4096, 0xFF);
    k
}

fn ascii_text(rng: &mut Rng, len: usize) -> String {
    const ALPHABET: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.\"'-_:;!?/#=+()";
    (0..len).map(|_| char::from(*rng.pick(ALPHABET))).collect()
}

fn text(rng: &mut Rng, len: usize) -> String {
    let mut s = ascii_text(rng, len);
    if rng.chance(10) {
        s.push_str(*rng.pick(&["é", "日本", "Ω", "\n", "\r\n", "\n#x"]));
    }
    s
}

fn key(rng: &mut Rng, errors: bool) -> String {
    if errors && rng.chance(2) {
        return "key_that_is_too_long".into();
    }
    let n = rng.range(1, 16);
    let s: String = (0..n)
        .map(|_| char::from(*rng.pick(b"abcdefghijklmnopqrstuvwxyz0123456789_.-")))
        .collect();
    if rng.chance(2) {
        format!("#{}", &s[..s.len().min(14)])
    } else {
        s
    }
}

fn prim_value(rng: &mut Rng, enc: &str, errors: bool) -> String {
    let (min, max): (i128, i128) = match enc {
        "u8" => (0, 255),
        "i8" => (-128, 127),
        "u16" => (0, 65535),
        "i16" => (-32768, 32767),
        "u32" => (0, u32::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "u64" => (0, u64::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    };
    match rng.below(if errors { 100 } else { 80 }) {
        0..70 => {
            let span = u128::try_from(max - min).unwrap() + 1;
            let v = min
                + i128::try_from(u128::from(rng.next()) * u128::from(rng.next()) % span).unwrap();
            v.to_string()
        }
        70..80 => (if rng.chance(50) { min } else { max }).to_string(),
        80..88 => (if rng.chance(50) { min - 1 } else { max + 1 }).to_string(),
        _ => (*rng.pick(&[
            " 12 ",
            "+5",
            "1_000",
            "0x10",
            "",
            "abc",
            "1__0",
            "-0",
            "007",
            "99999999999999999999999999999999999999999",
        ]))
        .to_string(),
    }
}

/// One random data/file row (plus its side file, if any).
fn data_row(
    rng: &mut Rng,
    dir: &Path,
    files: &mut usize,
    big: &mut usize,
    errors: bool,
    version: u8,
) -> String {
    let k = key(rng, errors);
    let mut file = |name_ext: &str, data: &[u8]| -> String {
        *files += 1;
        let name = format!("f{files}.{name_ext}");
        std::fs::write(dir.join(&name), data).unwrap();
        name
    };
    let blob_len = |rng: &mut Rng, big: &mut usize| -> usize {
        if rng.chance(12) {
            *big += 1;
            if version == 1 && !errors {
                rng.range(1500, 1985)
            } else {
                rng.range(1900, 9000)
            }
        } else {
            rng.range(0, 300)
        }
    };
    let row = |kind: &str, enc: &str, value: &str| {
        format!(
            "{},{kind},{},{}",
            quote_field(&k),
            quote_field(enc),
            quote_field(value)
        )
    };
    match rng.below(100) {
        0..30 => {
            let enc = *rng.pick(&["u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64"]);
            let enc = if rng.chance(5) {
                enc.to_uppercase()
            } else {
                enc.to_owned()
            };
            row("data", &enc, &prim_value(rng, &enc.to_lowercase(), errors))
        }
        30..48 => {
            let len = match rng.below(100) {
                0..60 => rng.range(0, 40),
                60..90 => rng.range(40, 300),
                90..96 => rng.range(300, 1990),
                _ if errors => *rng.pick(&[1983, 1984, 1985, 3966, 3967, 3968, 3999, 4000]),
                _ if version == 1 => *rng.pick(&[1982, 1983]),
                _ => *rng.pick(&[1983, 1984, 1985, 3966]),
            };
            let enc = if rng.chance(5) { "STRING" } else { "string" };
            row("data", enc, &text(rng, len))
        }
        48..58 => {
            let n = blob_len(rng, big);
            let mut h = hex::encode(rng.bytes(n));
            if rng.chance(20) {
                h = h.to_uppercase();
            }
            if rng.chance(10) {
                h = format!(" {h}\t");
            }
            if errors && rng.chance(3) {
                h.push('a');
            }
            if errors && rng.chance(2) {
                h.push_str("zz");
            }
            let enc = if rng.chance(4) { "HEX2BIN" } else { "hex2bin" };
            row("data", enc, &h)
        }
        58..66 => {
            use base64::Engine as _;
            let n = blob_len(rng, big);
            let mut b = base64::engine::general_purpose::STANDARD.encode(rng.bytes(n));
            if rng.chance(15) && b.len() > 10 {
                b.insert_str(b.len() / 2, "\n !");
            }
            if errors && rng.chance(4) {
                b = b.trim_end_matches('=').to_owned();
            }
            let enc = if rng.chance(4) { "BASE64" } else { "base64" };
            row("data", enc, &b)
        }
        66..71 => {
            let n = rng.range(0, 200);
            let enc = if rng.chance(5) { "BINARY" } else { "binary" };
            row("data", enc, &ascii_text(rng, n))
        }
        71..84 => {
            let n = blob_len(rng, big);
            let data = rng.bytes(n);
            let name = file("bin", &data);
            row("file", "binary", &name)
        }
        84..87 => {
            let n = rng.range(0, 500);
            let t = text(rng, n);
            let name = file("txt", t.as_bytes());
            row("file", "string", &name)
        }
        87..90 => {
            use base64::Engine as _;
            let n = blob_len(rng, big);
            let data = rng.bytes(n);
            if rng.chance(50) {
                let name = file("hex", format!("{}\n", hex::encode(data)).as_bytes());
                row("file", "hex2bin", &name)
            } else {
                let b = base64::engine::general_purpose::STANDARD.encode(data);
                let wrapped: Vec<String> = b
                    .as_bytes()
                    .chunks(64)
                    .map(|c| String::from_utf8(c.to_vec()).unwrap())
                    .collect();
                let name = file("b64", (wrapped.join("\n") + "\n").as_bytes());
                row("file", "base64", &name)
            }
        }
        90..92 => {
            let name = file(
                "num",
                format!("{}\n", prim_value(rng, "u32", errors)).as_bytes(),
            );
            row("file", "u32", &name)
        }
        92..95 => {
            let n = rng.range(1, 64);
            let fill = rng.range(0, 256);
            let enc = if rng.chance(50) {
                format!("blob_fill({n};0x{fill:02x})")
            } else {
                format!("blob_sz_fill({n};0x{fill:02X})")
            };
            let vlen = if errors && rng.chance(10) {
                n + 1
            } else {
                rng.range(0, n + 1)
            };
            row("data", &enc, &ascii_text(rng, vlen))
        }
        95..97 => row(
            *rng.pick(&["data", "DATA", "other"]),
            "i16",
            &prim_value(rng, "i16", errors),
        ),
        97 if errors => row(
            "data",
            *rng.pick(&["float", "u128", "blob_fill", "blob_fill(3;0xfff)"]),
            "1",
        ),
        98 if errors => row("file", "binary", "no_such_file.bin"),
        _ => {
            let (k2, enc, v) = match rng.below(5) {
                0 => ("sta.ssid", "string", "myssid".to_owned()),
                1 => ("sta.pswd", "string", "secret123".to_owned()),
                2 => ("ap.ssid", "string", "esp-ap".to_owned()),
                3 => ("ap.passwd", "string", "password1".to_owned()),
                _ => ("ap.authmode", "u8", (*rng.pick(&["0", "3"])).to_owned()),
            };
            format!("{k2},data,{enc},{v}")
        }
    }
}

fn random_case(seed: u64, root: &Path) -> Case {
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xE5F1);
    let dir = root.join(format!("case{seed:03}"));
    std::fs::create_dir_all(&dir).unwrap();
    let n_inputs = if rng.chance(10) { 2 } else { 1 };
    let rows = if rng.chance(10) {
        rng.range(150, 500)
    } else {
        rng.range(0, 70)
    };
    let crlf = rng.chance(10);
    let errors = rng.chance(20);
    let version = if rng.chance(50) { 1 } else { 2 };
    let mut files = 0;
    let mut big = 0;
    let mut namespaces: Vec<String> = Vec::new();
    let mut inputs = Vec::new();
    let mut slots_estimate = 4usize;
    for i in 0..n_inputs {
        let mut csv = String::new();
        if rng.chance(10) {
            csv.push_str("# a comment line\n");
        }
        csv.push_str(if rng.chance(5) {
            "value,encoding,type,key,extra\n"
        } else {
            "key,type,encoding,value\n"
        });
        let header_reordered = csv.contains("value,encoding");
        for _ in 0..rows / n_inputs {
            let line = if rng.chance(15) || (namespaces.is_empty() && rng.chance(60)) {
                let name = if !namespaces.is_empty() && rng.chance(20) {
                    rng.pick(&namespaces).clone()
                } else {
                    format!("ns{}_{}", namespaces.len(), rng.below(1000))
                };
                namespaces.push(name.clone());
                format!("{name},namespace,,")
            } else if rng.chance(3) {
                String::new()
            } else if rng.chance(2) {
                "# comment".to_owned()
            } else {
                data_row(&mut rng, &dir, &mut files, &mut big, errors, version)
            };
            slots_estimate += 4;
            let line = if header_reordered && !line.is_empty() && !line.starts_with('#') {
                // Reorder the four fields to match the header (value,encoding,type,key,extra).
                let owned = format!("{line}\n");
                let rec = espfleet_compiler::nvs::csv::read_records(&owned).unwrap();
                let f = &rec[0].fields;
                let get = |i: usize| quote_field(f.get(i).map_or("", |s| &**s));
                format!("{},{},{},{},x", get(3), get(2), get(1), get(0))
            } else {
                line
            };
            csv.push_str(&line);
            csv.push_str(if crlf { "\r\n" } else { "\n" });
        }
        let name = format!("in{i}.csv");
        std::fs::write(dir.join(&name), csv).unwrap();
        inputs.push(name);
    }
    slots_estimate += big * 300 + files * 20;
    let pages = match rng.below(100) {
        0..6 => rng.range(1, 3),
        6..12 => rng.range(3, 6),
        _ => slots_estimate / 100 + 3,
    };
    let size = pages * 4096;
    let size = if rng.chance(50) {
        format!("{size:#x}")
    } else {
        size.to_string()
    };
    Case {
        name: format!("random case {seed}"),
        dir,
        inputs,
        size,
        version,
        encrypt: rng.chance(15),
    }
}

fn fixed_case(root: &Path, name: &str, csv: &str, size: &str, version: u8) -> Case {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in0.csv"), csv).unwrap();
    Case {
        name: name.into(),
        dir,
        inputs: vec!["in0.csv".into()],
        size: size.into(),
        version,
        encrypt: false,
    }
}

fn fixed_cases(root: &Path) -> Vec<Case> {
    let h = "key,type,encoding,value\n";
    let mut v = Vec::new();
    // A v2 blob that starts when exactly one slot is free: zero-length chunk 0.
    let mut c = format!("{h}ns,namespace,,\n");
    for i in 0..124 {
        let _ = writeln!(c, "k{i},data,u8,{}", i % 256);
    }
    let _ = writeln!(c, "blob,data,hex2bin,{}", "ab".repeat(100));
    v.push(fixed_case(root, "zero_length_chunk", &c, "0x4000", 2));
    // The longest string that fits, and the first that does not.
    v.push(fixed_case(
        root,
        "string_3967",
        &format!("{h}ns,namespace,,\ns,data,string,{}\n", "x".repeat(3967)),
        "0x4000",
        2,
    ));
    v.push(fixed_case(
        root,
        "string_3968",
        &format!("{h}ns,namespace,,\ns,data,string,{}\n", "x".repeat(3968)),
        "0x4000",
        2,
    ));
    // 255 namespaces work, the 256th fails.
    for (name, n) in [("ns_255", 255), ("ns_256", 256)] {
        let mut c = h.to_owned();
        for i in 0..n {
            let _ = writeln!(c, "n{i},namespace,,");
        }
        v.push(fixed_case(root, name, &c, "0x6000", 2));
    }
    v.push(fixed_case(
        root,
        "rows_before_namespace",
        &format!("{h}a,data,u8,1\nb,data,string,x\nns,namespace,,\nc,data,u8,2\n"),
        "0x3000",
        2,
    ));
    v.push(fixed_case(root, "empty_csv", "", "0x3000", 2));
    v.push(fixed_case(root, "header_only", h, "0x2000", 1));
    v.push(fixed_case(
        root,
        "bom_header",
        &format!("\u{feff}{h}ns,namespace,,\n"),
        "0x3000",
        2,
    ));
    v.push(fixed_case(
        root,
        "spaced_header",
        "key, type, encoding, value\nns,namespace,,\n",
        "0x3000",
        2,
    ));
    v.push(fixed_case(
        root,
        "short_row",
        &format!("{h}ns,namespace\nk,data,u8\n"),
        "0x3000",
        2,
    ));
    v.push(fixed_case(
        root,
        "blob_fill_none",
        &format!("{h}ns,namespace,,\nk,data,blob_fill(8;0x55)\n"),
        "0x3000",
        2,
    ));
    v.push(fixed_case(
        root,
        "size_too_small",
        &format!("{h}ns,namespace,,\n"),
        "0x800",
        2,
    ));
    v.push(fixed_case(
        root,
        "size_not_multiple",
        &format!("{h}ns,namespace,,\n"),
        "0x3001",
        2,
    ));
    v.push(fixed_case(
        root,
        "v1_blob_1985",
        &format!("{h}ns,namespace,,\nb,data,hex2bin,{}\n", "00".repeat(1985)),
        "0x6000",
        1,
    ));
    v.push(fixed_case(
        root,
        "repeated_namespace",
        &format!(
            "{h}ns1,namespace,,\na,data,u8,1\nns2,namespace,,\nns1,namespace,,\nback,data,u8,2\n"
        ),
        "0x3000",
        2,
    ));
    v.push(fixed_case(root, "wifi_all", &format!("{h}nvs.net80211,namespace,,\nsta.ssid,data,string,home\nsta.pswd,data,string,pw123456\nap.ssid,data,string,myap\nap.passwd,data,string,appass12\nap.authmode,data,u8,3\nap.ssid,data,string,other\n"), "0x6000", 2));
    v.push(fixed_case(
        root,
        "data_too_large",
        &format!("{h}ns,namespace,,\nb,data,hex2bin,{}\n", "00".repeat(9000)),
        "0x3000",
        2,
    ));
    v
}

#[test]
fn identical_to_the_pypi_generator() {
    let python = nvs_support::oracle_python();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join(KEY_FILE), key_bytes()).unwrap();
    let mut cases: Vec<Case> = (0..RANDOM_CASES).map(|s| random_case(s, root)).collect();
    cases.extend(fixed_cases(root));

    let jobs: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "dir": c.dir, "inputs": c.inputs, "output": "oracle.bin", "size": c.size, "version": c.version,
                "inputkey": c.encrypt.then(|| root.join(KEY_FILE)),
            })
        })
        .collect();
    std::fs::write(root.join("cases.json"), serde_json::to_vec(&jobs).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nvs_oracle_batch.py");
    let status = std::process::Command::new(&python)
        .arg(&script)
        .arg(root.join("cases.json"))
        .arg(root.join("results.json"))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{} {} failed; run `bash tests/run.sh` to set up the oracle venv",
        python.display(),
        script.display()
    );
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(root.join("results.json")).unwrap()).unwrap();
    assert_eq!(results.len(), cases.len());

    let key = NvsKey::from_keys_file(&key_bytes()).unwrap();
    let (mut same, mut both_rejected, mut encrypted, mut multipage) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for (case, result) in cases.iter().zip(&results) {
        let ours = (|| {
            let size = parse_size(&case.size)?;
            let inputs = case
                .inputs
                .iter()
                .map(|i| CsvInput::read(&case.dir.join(i)))
                .collect::<Result<Vec<_>, _>>()?;
            let options = Options {
                version: if case.version == 1 {
                    Version::V1
                } else {
                    Version::V2
                },
                size,
                trailing: TrailingPages::Erased,
            };
            let plain = generate(&inputs, &options, &case.dir)?;
            let mut image = plain.clone();
            if case.encrypt {
                encrypt_image(&mut image, &key)?;
            }
            Ok::<_, espfleet_compiler::nvs::NvsError>((plain, image))
        })();
        match (result["ok"].as_bool().unwrap(), ours) {
            (true, Ok((plain, image))) => {
                let oracle = std::fs::read(case.dir.join("oracle.bin")).unwrap();
                if oracle != image {
                    let at = oracle.iter().zip(&image).position(|(a, b)| a != b);
                    failures.push(format!(
                        "{}: bytes differ (lengths {} vs {}, first difference {at:?})",
                        case.name,
                        oracle.len(),
                        image.len()
                    ));
                    continue;
                }
                // The decoder reads it back, and the dump regenerates it.
                let decoded = decode(&plain);
                let (csv, warnings) = decoded.to_csv("x");
                let options = Options {
                    version: decoded.version.unwrap_or_default(),
                    size: plain.len() as u64,
                    trailing: TrailingPages::Erased,
                };
                let again = generate(
                    &[CsvInput {
                        name: "dump".into(),
                        text: csv.clone(),
                    }],
                    &options,
                    Path::new("/nonexistent"),
                );
                if decoded.issues.is_empty()
                    && warnings.is_empty()
                    && again.as_deref().ok() != Some(&plain[..])
                    && plain.len() >= 0x3000
                {
                    failures.push(format!(
                        "{}: dump does not regenerate the image ({:?}, warnings {warnings:?})",
                        case.name,
                        again.err().map(|e| e.to_string())
                    ));
                    if std::env::var_os("NVS_KEEP").is_some() {
                        std::fs::write(
                            format!("/tmp/dump_{}.csv", case.name.replace(' ', "_")),
                            &csv,
                        )
                        .unwrap();
                    }
                }
                multipage += usize::from(decoded.items.iter().any(|i| i.page > 0));
                encrypted += usize::from(case.encrypt);
                same += 1;
            }
            (false, Err(e)) => {
                if e.code().is_none() || e.to_string().is_empty() {
                    failures.push(format!("{}: rejected without a coded message", case.name));
                }
                both_rejected += 1;
            }
            (true, Err(e)) => {
                failures.push(format!("{}: oracle accepted, we rejected: {e}", case.name));
            }
            (false, Ok(_)) => failures.push(format!(
                "{}: oracle rejected ({}), we accepted",
                case.name, result["error"]
            )),
        }
    }
    eprintln!(
        "nvs differential: {} cases, {same} identical images ({encrypted} encrypted, {multipage} multi-page), {both_rejected} rejected by both",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        same >= 150,
        "too few accepted cases ({same}) to mean anything"
    );
    assert!(both_rejected >= 10);
}
