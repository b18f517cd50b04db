#!/usr/bin/env bash
# Checks systemd/99-espfleet.rules with the real `udevadm test` against mocked boards
# (umockdev kernel-only descriptions in tests/umockdev/, so udev's own builtins compute the
# ID_* properties), in a private mount namespace because `udevadm test` is not a dry run
# (it chmods nodes, creates /dev links and writes /run/udev). See
# `docs/testing-hotplug.md` §5.2. Needs root (unshare, re-run through sudo otherwise), udev
# and umockdev.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [ "$(id -u)" -ne 0 ]; then exec sudo -- bash "$0" "$@"; fi
# shellcheck source=lib/udevadm-test.sh
. tests/checks/lib/udevadm-test.sh

fail=0
expect() { # OUTPUT LINE DESCRIPTION
  if grep -qxF -- "$2" <<<"$1"; then echo "ok: $3"; else echo "FAIL: $3 (no line '$2')"; fail=1; fi
}
show_on_failure() { # OUTPUT: print a device's whole udevadm output if a check of it failed
  if [ "$fail" -ne 0 ]; then echo "--- udevadm test output"; echo "$1"; fi
}

out=$(run_udevadm_test systemd tests/umockdev/cp2102n-hub-kernel.umockdev \
  /sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.3/1-1.3:1.0/ttyUSB0/tty/ttyUSB0)
if udev_rule_errors "$out"; then echo "FAIL: udev rules have errors"; fail=1; fi
expect "$out" 'ESPFLEET_BRIDGE=cp210x' 'CP2102N recognised as a known bridge'
expect "$out" 'ESPFLEET_SLOT=1-1.3' 'CP2102N slot is its USB path'
if udev_has_link "$out" /dev/espfleet/1-1.3; then
  echo 'ok: /dev/espfleet/1-1.3 link'
else
  echo 'FAIL: no /dev/espfleet/1-1.3 link'; fail=1
fi
grep -qE '^ttyUSB0: /run/udev/rules.d/99-espfleet.rules:[0-9]+ GROUP [0-9]+$' <<<"$out" \
  && echo 'ok: group espfleet' || { echo 'FAIL: group espfleet not applied'; fail=1; }
grep -qE '^ttyUSB0: /run/udev/rules.d/99-espfleet.rules:[0-9]+ MODE 0660$' <<<"$out" \
  && echo 'ok: mode 0660' || { echo 'FAIL: mode 0660 not applied'; fail=1; }
show_on_failure "$out"

failed_before=$fail fail=0
out=$(run_udevadm_test systemd tests/umockdev/usb-serial-jtag-kernel.umockdev \
  /sys/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/tty/ttyACM0)
if udev_rule_errors "$out"; then echo "FAIL: udev rules have errors"; fail=1; fi
expect "$out" 'ESPFLEET_BRIDGE=usb-serial-jtag' 'ESP32-C3 USB Serial/JTAG recognised'
expect "$out" 'ESPFLEET_SLOT=1-3' 'USB Serial/JTAG slot is its USB path'
if udev_has_link "$out" /dev/espfleet/1-3; then
  echo 'ok: /dev/espfleet/1-3 link'
else
  echo 'FAIL: no /dev/espfleet/1-3 link'; fail=1
fi
show_on_failure "$out"

exit $((fail | failed_before))
