#!/usr/bin/env bash
# Builds the espfleet Debian package with cargo-deb and checks it the way a user meets it:
#
#   1. cargo-deb (the pinned version below, installed with `cargo install` if missing) packs
#      the binaries cargo already built for the tests (`cargo deb --no-build --profile dev`,
#      stripped by cargo-deb), so CI does not build a release copy of the workspace;
#   2. lintian must report no error;
#   3. `dpkg -i` installs it: the maintainer scripts create the espfleet user and
#      /etc/espfleet/manifests;
#   4. the installed unit passes `systemd-analyze verify` (any output fails), and the installed
#      udev rules `udevadm verify` where udev has it (254+), else the real `udevadm test`
#      against a mocked CP2102N in a private mount namespace (tests/checks/lib/udevadm-test.sh);
#   5. `dpkg --purge` removes it, and nothing it installed or created remains: no file of
#      `dpkg -L`, no /etc/espfleet, /var/lib/espfleet or /var/cache/espfleet, no espfleet user
#      or group, no systemd enablement state.
#
# For a release package (what the README tells users to install): `cargo deb -p espfleet`.
# Needs root (dpkg; re-run through sudo otherwise), lintian, systemd and udev.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [ "$(id -u)" -ne 0 ]; then exec sudo -E -- bash "$0" "$@"; fi
root=$(pwd)
cargo_deb_version=3.8.0

fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
t0=$(date +%s)
stage() { printf '%s (%ss)\n' "$1" "$(($(date +%s) - t0))"; }

if [ "$(cargo deb --version 2>/dev/null | awk '{print $2}')" != "$cargo_deb_version" ]; then
  echo "installing cargo-deb $cargo_deb_version"
  cargo install --locked --quiet cargo-deb --version "$cargo_deb_version"
fi
stage "cargo-deb $cargo_deb_version ready"

# A half-finished earlier run must not leave the package installed.
if dpkg-query -W -f='${Status}' espfleet 2>/dev/null | grep -q 'installed'; then
  dpkg --purge espfleet >/dev/null
fi

# --- 1. build ------------------------------------------------------------------------------
cargo build --locked --quiet -p espfleet --bins
out=$(mktemp -d /tmp/espfleet-deb.XXXXXX)
trap 'dpkg --purge espfleet >/dev/null 2>&1 || true; rm -rf "$out"' EXIT
cargo deb --locked -p espfleet --no-build --profile dev --fast --output "$out" >/dev/null
deb=$(ls "$out"/espfleet_*.deb)
stage "built $(basename "$deb") ($(du -h "$deb" | cut -f1))"
dpkg-deb --contents "$deb" | awk '{print $6}'

# --- 2. lintian ----------------------------------------------------------------------------
lint=$(lintian --tag-display-limit 0 "$deb" 2>&1 | grep -v "^running with root privileges" || true)
[ -n "$lint" ] && echo "$lint"
if grep -q '^E:' <<<"$lint"; then bad "lintian reports errors"; else ok "lintian: no errors"; fi
stage "lintian done"

# --- 3. install ----------------------------------------------------------------------------
dirs_before=$(mktemp)
dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' | while read -r p; do
  if [ -n "$p" ] && [ -d "$p" ]; then echo "$p"; fi
done > "$dirs_before"
ctl=$(mktemp -d)
dpkg-deb -e "$deb" "$ctl"
for script in preinst postinst prerm postrm; do
  if [ -f "$ctl/$script" ]; then
    sh -n "$ctl/$script" && ok "$script parses" || bad "$script has a syntax error"
  fi
done
rm -rf "$ctl"
# A maintainer script's error can go unnoticed by dpkg (a failing command inside an `if`, a
# `|| true`); the shell names the script and line when it complains, so look for that.
script_errors() { grep -E '/var/lib/dpkg/(info|tmp\.ci)/espfleet\.(preinst|postinst|prerm|postrm): [0-9]+:' <<<"$1"; }
install_log=$(dpkg -i "$deb" 2>&1) || { echo "$install_log"; bad "dpkg -i failed"; exit 1; }
echo "$install_log"
if script_errors "$install_log"; then bad "a maintainer script failed while installing"; fi
installed=$(dpkg -L espfleet)
getent passwd espfleet >/dev/null && ok "postinst created the espfleet user" || bad "no espfleet user"
[ -d /etc/espfleet/manifests ] && ok "postinst created /etc/espfleet/manifests" \
  || bad "no /etc/espfleet/manifests"
espfleet --version >/dev/null && ok "espfleet runs" || bad "espfleet does not run"
espfleetd --help >/dev/null && ok "espfleetd runs" || bad "espfleetd does not run"

# --- 4. the installed unit and rules -------------------------------------------------------
unit=$(grep -E '/systemd/system/espfleetd\.service$' <<<"$installed" | head -1)
if [ -z "$unit" ]; then
  bad "the package installs no espfleetd.service"
else
  verify=$(systemd-analyze verify --man=no "$unit" 2>&1) || true
  if [ -z "$verify" ]; then ok "systemd-analyze verify $unit: clean"; else
    echo "$verify"; bad "systemd-analyze verify $unit"
  fi
fi
rules=$(grep -E '/udev/rules\.d/99-espfleet\.rules$' <<<"$installed" | head -1)
if [ -z "$rules" ]; then
  bad "the package installs no udev rules"
elif udevadm verify --help >/dev/null 2>&1; then
  udevadm verify "$rules" && ok "udevadm verify $rules" || bad "udevadm verify $rules"
else
  # shellcheck source=lib/udevadm-test.sh
  . tests/checks/lib/udevadm-test.sh
  empty=$(mktemp -d)
  test_out=$(run_udevadm_test "$empty" tests/umockdev/cp2102n-hub-kernel.umockdev \
    /sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.3/1-1.3:1.0/ttyUSB0/tty/ttyUSB0)
  rmdir "$empty"
  if udev_rule_errors "$test_out"; then bad "the installed rules have errors"; fi
  gid=$(getent group espfleet | cut -d: -f3)
  if grep -qE "^ttyUSB0: ${rules//./\\.}:[0-9]+ GROUP $gid\$" <<<"$test_out" \
    && udev_has_link "$test_out" /dev/espfleet/1-1.3; then
    ok "udevadm test: the installed $rules gives group espfleet and /dev/espfleet/1-1.3"
  else
    echo "$test_out"; bad "udevadm test of the installed rules"
  fi
fi
stage "installed checks done"

# --- 5. purge ------------------------------------------------------------------------------
purge_log=$(dpkg --purge espfleet 2>&1) || { echo "$purge_log"; bad "dpkg --purge failed"; }
echo "$purge_log"
if script_errors "$purge_log"; then bad "a maintainer script failed while purging"; fi
trap 'rm -rf "$out"' EXIT
left=0
while read -r p; do
  [ -z "$p" ] && continue
  if [ -e "$p" ] || [ -L "$p" ]; then
    if [ -d "$p" ] && grep -qxF -- "$p" "$dirs_before"; then continue; fi
    echo "left behind: $p"; left=1
  fi
done <<<"$installed"
for p in /etc/espfleet /var/lib/espfleet /var/cache/espfleet /run/espfleet \
  /etc/systemd/system/multi-user.target.wants/espfleetd.service \
  /var/lib/systemd/deb-systemd-helper-enabled/espfleetd.service \
  /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/espfleetd.service; do
  if [ -e "$p" ] || [ -L "$p" ]; then echo "left behind: $p"; left=1; fi
done
getent passwd espfleet >/dev/null && { echo "left behind: user espfleet"; left=1; }
getent group espfleet >/dev/null && { echo "left behind: group espfleet"; left=1; }
dpkg-query -W espfleet >/dev/null 2>&1 && { echo "left behind: dpkg still knows espfleet"; left=1; }
if [ "$left" -eq 0 ]; then ok "purge left nothing behind"; else bad "purge left files behind"; fi
rm -f "$dirs_before"
stage "purged"
cd "$root"
exit "$fail"
