//! A faithful simulated ESP32 / ESP32-C3: the ROM serial bootloader and the flasher stub,
//! spoken on a pseudo-terminal. See `shared/spec/esp-serial-protocol.md`. (Issue #6.)
