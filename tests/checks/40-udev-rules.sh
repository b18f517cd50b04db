#!/usr/bin/env bash
# Checks systemd/99-espfleet.rules with the real `udevadm test` against mocked boards
# (umockdev kernel-only descriptions in tests/umockdev/, so udev's own builtins compute the
# ID_* properties), in a private mount namespace because `udevadm test` is not a dry run
# (it chmods nodes, creates /dev links and writes /run/udev). See
# `docs/testing-hotplug.md` §5.2. Needs root (unshare), udev and umockdev.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
rules=$(realpath systemd)

run_udevadm_test() { # DEVICE.umockdev SYSPATH
  local dev old
  dev=$(realpath "$1")
  old=$(mktemp -d /tmp/espfleet-olddev.XXXXXX)
  # shellcheck disable=SC2016
  unshare --mount --propagation private bash -euo pipefail -c '
    RULES=$1 DEV=$2 SYSPATH=$3 old=$4
    mount -t tmpfs tmpfs /run
    # The espfleet group normally comes from systemd/espfleet.sysusers; give this namespace one.
    { cat /etc/group; echo "espfleet:x:64999:"; } > /run/group
    mount --bind /run/group /etc/group
    mkdir -p /run/udev/rules.d
    cp "$RULES"/*.rules /run/udev/rules.d/
    mount --rbind /dev "$old"
    mount -t tmpfs -o mode=755 tmpfs /dev
    for n in null zero full random urandom tty; do touch /dev/$n; mount --bind "$old/$n" /dev/$n; done
    mkdir /dev/pts; mount --rbind "$old/pts" /dev/pts; ln -s pts/ptmx /dev/ptmx
    umockdev-run -d "$DEV" -- udevadm test --action=add "$SYSPATH"
  ' _ "$rules" "$dev" "$2" "$old" 2>&1 || { rmdir "$old" 2>/dev/null; return 1; }
  rmdir "$old" 2>/dev/null || true
}

fail=0
expect() { # OUTPUT LINE DESCRIPTION
  if grep -qxF -- "$2" <<<"$1"; then echo "ok: $3"; else echo "FAIL: $3 (no line '$2')"; fail=1; fi
}
no_rule_errors() { # OUTPUT
  # Parse errors are printed as lines starting with the rules file path; udevadm still exits 0.
  if grep -E '^/run/udev/rules.d/[^ :]+:[0-9]+' <<<"$1"; then echo "FAIL: udev rules have errors"; fail=1; fi
}

out=$(run_udevadm_test tests/umockdev/cp2102n-hub-kernel.umockdev \
  /sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.3/1-1.3:1.0/ttyUSB0/tty/ttyUSB0)
no_rule_errors "$out"
expect "$out" 'ESPFLEET_BRIDGE=cp210x' 'CP2102N recognised as a known bridge'
expect "$out" 'ESPFLEET_SLOT=1-1.3' 'CP2102N slot is its USB path'
grep -E '^DEVLINKS=.*(^| |=)/dev/espfleet/1-1\.3( |$)' <<<"$out" >/dev/null \
  && echo 'ok: /dev/espfleet/1-1.3 link' || { echo 'FAIL: no /dev/espfleet/1-1.3 link'; fail=1; }
grep -qE '^ttyUSB0: /run/udev/rules.d/99-espfleet.rules:[0-9]+ GROUP 64999$' <<<"$out" \
  && echo 'ok: group espfleet' || { echo 'FAIL: group espfleet not applied'; fail=1; }
grep -qE '^ttyUSB0: /run/udev/rules.d/99-espfleet.rules:[0-9]+ MODE 0660$' <<<"$out" \
  && echo 'ok: mode 0660' || { echo 'FAIL: mode 0660 not applied'; fail=1; }

out=$(run_udevadm_test tests/umockdev/usb-serial-jtag-kernel.umockdev \
  /sys/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/tty/ttyACM0)
no_rule_errors "$out"
expect "$out" 'ESPFLEET_BRIDGE=usb-serial-jtag' 'ESP32-C3 USB Serial/JTAG recognised'
expect "$out" 'ESPFLEET_SLOT=1-3' 'USB Serial/JTAG slot is its USB path'

if [ "$fail" -ne 0 ]; then
  echo "--- last udevadm test output"; echo "$out"
fi
exit "$fail"
