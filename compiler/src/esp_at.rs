//! ESP-AT factory data images of both storage eras. See `shared/spec/esp-at-formats.md`.
//! (Issue #4 fills this module in.)
