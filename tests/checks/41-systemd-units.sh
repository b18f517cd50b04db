#!/usr/bin/env bash
# Checks the espfleetd unit with `systemd-analyze verify` in a throwaway root (no running
# systemd needed), treating any output as a failure because unknown keys and bad values are
# only warnings with exit status 0 (`docs/testing-hotplug.md` §6). Also checks the
# sysusers and tmpfiles files, prints the `systemd-analyze security` exposure and fails above
# 2.0, and checks that the bench page's network access is loopback only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
units=$(realpath systemd)
root=$(mktemp -d /tmp/espfleet-unitroot.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$units"/*.service "$root/etc/systemd/system/"
# systemd-analyze resolves ExecStart= inside the root: a stub is enough.
mkdir -p "$root/usr/bin"; printf '#!/bin/sh\n' > "$root/usr/bin/espfleetd"; chmod +x "$root/usr/bin/espfleetd"

rc=0
for f in "$units"/*.service; do
  u=$(basename "$f")
  if ! out=$(systemd-analyze verify --man=no --root="$root" "$u" 2>&1); then rc=1; fi
  if [ -n "$out" ]; then echo "$out"; rc=1; else echo "ok: systemd-analyze verify $u"; fi
done

# sysusers: apply to an empty root and check the user and group it creates.
mkdir -p "$root/sysusers/etc"
if systemd-sysusers --root="$root/sysusers" "$units/espfleet.sysusers" >/dev/null 2>&1 \
  && grep -q '^espfleet:' "$root/sysusers/etc/passwd" && grep -q '^espfleet:' "$root/sysusers/etc/group"; then
  echo "ok: sysusers creates user and group espfleet"
else
  echo "FAIL: systemd-sysusers did not create espfleet"; rc=1
fi
# tmpfiles: --create in an empty root must succeed without warnings.
mkdir -p "$root/tmpfiles"
if out=$(systemd-tmpfiles --root="$root/tmpfiles" --create "$units/espfleet.tmpfiles" 2>&1) \
  && [ -z "$out" ] && [ -d "$root/tmpfiles/etc/espfleet/manifests" ]; then
  echo "ok: tmpfiles creates /etc/espfleet/manifests"
else
  echo "FAIL: systemd-tmpfiles: $out"; rc=1
fi

echo "--- systemd-analyze security"
line=$(systemd-analyze security --offline=true --root="$root" espfleetd.service 2>&1 | tail -n 1 || true)
echo "$line"
# A regression in sandboxing shows up as a higher exposure: fail above 2.0 (the overall figure,
# and --threshold=20 which counts in tenths).
exposure=$(grep -oE 'exposure level for espfleetd.service: [0-9.]+' <<<"$line" | grep -oE '[0-9.]+$' || echo 99)
if awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' \
  && systemd-analyze security --offline=true --root="$root" --threshold=20 espfleetd.service >/dev/null 2>&1; then
  echo "ok: exposure $exposure <= 2.0"
else
  echo "FAIL: exposure $exposure above 2.0"; rc=1
fi

# The bench page listens on loopback in the unit, and the unit's IP firewall allows only that.
unit=$units/espfleetd.service
if grep -qE '^IPAddressDeny=any$' "$unit" && grep -qE '^IPAddressAllow=localhost$' "$unit" \
  && [ "$(grep -cE '^IPAddressAllow=' "$unit")" -eq 1 ] \
  && grep -qE '^ExecStart=.* --http 127\.0\.0\.1:[0-9]+( |$)' "$unit"; then
  echo "ok: bench page on loopback, IPAddressDeny=any + IPAddressAllow=localhost"
else
  echo "FAIL: the unit must serve the page on 127.0.0.1 with IPAddressDeny=any and only IPAddressAllow=localhost"; rc=1
fi
exit $rc
