#!/usr/bin/env bash
# Bench page benchmark: the live page of the real espfleetd (umockdev bench, 16 simulated
# ESP32-C3 boards paced at 921,600 baud flashing at once) in a real headless Chromium.
# Prints, per round: the time from navigation to the first frame showing the bench (5 loads a
# round, Performance API, in a running browser), how long each busy slot goes without being
# redrawn from a new status, how long its progress stands still on screen next to the daemon's
# own progress (sampled from the status socket), the delay from the server's tick to the frame,
# and the same progress gaps seen by the terminal peer (`espfleet status --json` back to back).
# Budgets (issue 17): first frame <= 200 ms; updates at least every 500 ms per slot.
#
#   bash tests/bench/page.sh     # ESPFLEET_BENCH_ROUNDS=3, ESPFLEET_BENCH_FLASH_SCALE=1 (x typical flash times)
#
# Needs the Debian packages in tests/apt-packages.txt (umockdev, chromium, chromium-driver).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=$(cargo test --release --locked -p espfleet --test daemon_umockdev -- --ignored --exact \
  bench_page::bench_page_16_boards --nocapture 2>&1) || { echo "$out"; exit 1; }
grep -E '^(16 simulated|first load|  load:|round |peer:|first frame|Chromium|longest)' <<<"$out"
result=$(grep -E '^RESULT ' <<<"$out")
ff=$(sed -E 's/.*first_frame_max_ms=([0-9]+).*/\1/' <<<"$result")
gap=$(sed -E 's/.*update_gap_max_ms=([0-9]+).*/\1/' <<<"$result")
ok=1
[ "$ff" -le 200 ] || { echo "FIRST FRAME OVER BUDGET: ${ff} ms > 200 ms"; ok=0; }
[ "$gap" -le 500 ] || { echo "UPDATE GAP OVER BUDGET: ${gap} ms > 500 ms"; ok=0; }
[ "$ok" -eq 1 ]
