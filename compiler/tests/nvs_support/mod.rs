//! Helpers shared by the NVS integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared data directory (`shared/` next to the repository or its worktree parent).
pub fn shared_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join("../../shared"),
        manifest.join("../../../shared"),
    ];
    candidates
        .iter()
        .find(|p| p.join("golden/nvs").is_dir())
        .cloned()
        .unwrap_or_else(|| panic!("shared data not found (looked in {candidates:?}); the golden vectors live in <repo>/../shared"))
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
