//! The module catalogue: ESP32 and ESP32-C3 modules that ESP-AT ships, as data.
