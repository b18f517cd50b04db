//! NVS partition images (ESP-IDF non-volatile storage), format versions 1 and 2.
//!
//! Byte-identical to `esp-idf-nvs-partition-gen` 0.3.0. See `shared/spec/nvs-format.md`.
//! (Issue #3 fills this module in.)
