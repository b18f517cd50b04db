#!/usr/bin/env bash
# Flashing benchmark: espfleet against esptool on the simulated ESP32-C3 and ESP32, in one run.
#
#   bash tests/bench/flash.sh
#
# Per chip: flashes a full ESP-AT part set (bootloader 25 KB, partition table, otadata,
# at_customize, mfg_nvs 112 KB, a 1.5 MB firmware-like app) at an emulated 921,600 baud with
# realistic UART pacing and flash timings, and prints espfleet's time, esptool's time on the same
# simulator configuration and images, each tool's connect-to-first-byte time (start to the first
# flash data block on the board), the UART wire limit for the bytes each actually sent, and an
# unchanged re-flash; on the ESP32 also an unchanged re-flash at 115,200 baud against esptool
# verify-flash. Targets: not slower than esptool; >= 90 % of the wire limit; an unchanged
# re-flash under 10 % of a full flash; the ESP32 at 115,200 under 2 s. The harness is
# daemon/tests/flash_bench.rs.
#
# Uses the esptool from .venv-oracles (made by tests/run.sh) unless ESPFLEET_ORACLE_PYTHON is set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
if [ -z "${ESPFLEET_ORACLE_PYTHON:-}" ]; then
  export ESPFLEET_ORACLE_PYTHON="$root/.venv-oracles/bin/python"
fi
if [ ! -x "$ESPFLEET_ORACLE_PYTHON" ]; then
  echo "esptool is missing: run \`bash tests/run.sh\` once (it creates .venv-oracles), or set ESPFLEET_ORACLE_PYTHON" >&2
  exit 1
fi
# Release build: the compressor and the simulator are part of what is measured.
exec cargo test --release --locked -p espfleet --test flash_bench -- --ignored --nocapture --test-threads=1
