#!/usr/bin/env bash
# Hotplug benchmark: time from the udev plug event to "flashed" for 1, 8 and 16 simulated
# boards plugged at once into the real espfleetd (umockdev events, espfleet-sim boards paced
# like real ones at 921,600 baud: UART bytes at line rate, typical flash erase/program times).
# Prints each round and its throughput relative to one board. Target: 16 boards >= 12x.
# Then, per chip, one board's plug-to-flashed time (erased board) and plug-to-verified time
# (the same board plugged again).
#
#   bash tests/bench/hotplug.sh
#
# Needs the Debian packages in tests/apt-packages.txt (umockdev, libumockdev-dev).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=$(cargo test --release --locked -p espfleet --test daemon_umockdev -- --ignored --exact bench_hotplug_throughput --nocapture 2>&1) || {
  echo "$out"; exit 1; }
grep -oE 'image: .*' <<<"$out" || true
grep -E '^boards=' <<<"$out"
ratio=$(grep -E '^boards=16' <<<"$out" | sed -E 's/.*= *([0-9.]+)x one board/\1/')
echo "16 boards vs one: ${ratio}x (target >= 12x)"
awk -v r="$ratio" 'BEGIN { exit !(r >= 12) }' || { echo "BELOW TARGET"; exit 1; }
out=$(cargo test --release --locked -p espfleet --test daemon_umockdev -- --ignored --exact bench_plug_to_flashed_one_board_per_chip --nocapture 2>&1) || {
  echo "$out"; exit 1; }
grep -oE 'chip=.*' <<<"$out"
