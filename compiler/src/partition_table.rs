//! ESP-IDF partition tables: CSV and binary, byte-identical to `gen_esp32part.py` 1.5.
//!
//! See `shared/spec/partition-table.md`. (Issue #2 fills this module in.)
