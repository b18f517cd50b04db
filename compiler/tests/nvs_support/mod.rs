//! Helpers shared by the NVS integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository's test data (`<repo>/tests/data`: golden vectors and ESP-AT reference files,
/// each set with a README on its provenance and licence).
pub fn test_data_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    assert!(
        dir.join("golden/manifest.json").is_file(),
        "test data missing at {}",
        dir.display()
    );
    dir
}

/// The Python with `esp-idf-nvs-partition-gen` 0.3.0: `$ESPFLEET_ORACLE_PYTHON`, else
/// `<repo>/.venv-oracles/bin/python`. Fails (never skips) when neither exists.
pub fn oracle_python() -> PathBuf {
    if let Some(p) = std::env::var_os("ESPFLEET_ORACLE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-oracles/bin/python");
    assert!(
        venv.exists(),
        "no oracle Python: set ESPFLEET_ORACLE_PYTHON or run `bash tests/run.sh` (it creates .venv-oracles/)"
    );
    venv
}

/// SHA-256 as lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}
