//! Shared helpers of the `esp_at*` integration tests: fixture paths, hashing and the PyPI
//! oracles (`esp-idf-nvs-partition-gen`, `esptool`) run through `$ESPFLEET_ORACLE_PYTHON`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};

/// `compiler/tests/data/esp_at`.
pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/esp_at")
}

/// Lower-case hex SHA-256.
pub fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The oracle Python: `$ESPFLEET_ORACLE_PYTHON`, else `<repo>/.venv-oracles/bin/python`.
/// Panics (never skips) when neither exists.
pub fn oracle_python() -> PathBuf {
    if let Some(p) = std::env::var_os("ESPFLEET_ORACLE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-oracles/bin/python");
    assert!(
        venv.exists(),
        "no oracle Python: set ESPFLEET_ORACLE_PYTHON or run `bash tests/run.sh` once to create .venv-oracles"
    );
    venv
}

/// Runs the oracle Python with `args` in `dir`, panicking with its output on failure.
pub fn run_oracle(dir: &Path, args: &[&str]) {
    let out = Command::new(oracle_python())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running the oracle Python");
    assert!(
        out.status.success(),
        "oracle {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
