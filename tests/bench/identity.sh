#!/usr/bin/env bash
# Benchmark: plug-time per-device identity work and the embedded identity store.
#
#   bash tests/bench/identity.sh [RUNS] [BOARDS]      # default 3 runs of 200 boards
#
# Each run (identity/benches/identity.rs, release build) prints:
#  - per board: allocate (mint P-256, one durable transaction) + build that board's images in
#    memory through a warm cache — median, p90, range; target < 10 ms;
#  - allocations per second in the embedded store (WAL, synchronous=FULL) one transaction each,
#    with 16 clients sharing one store (group commit), in batches of 100, and the disk's fsync
#    time; the same on tmpfs for reference; target >= 1,000/s;
#  - the peer (openssl + esp-idf-nvs-partition-gen per board) and the ratio, after checking that
#    the peer's user NVS partition is byte-identical to espfleet's.
# Then the range of the headline figures across runs.
#
# Needs: openssl (Debian), the oracle Python ($ESPFLEET_ORACLE_PYTHON or .venv-oracles from
# tests/run.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
runs=${1:-3}
boards=${2:-200}
py=${ESPFLEET_ORACLE_PYTHON:-$root/.venv-oracles/bin/python}
[ -x "$py" ] || { echo "no oracle Python at $py: run bash tests/run.sh first" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is needed (Debian package openssl)" >&2; exit 1; }
cargo bench --locked -q -p espfleet-identity --bench identity --no-run
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for r in $(seq 1 "$runs"); do
  echo "### run $r of $runs (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  cargo bench --locked -q -p espfleet-identity --bench identity -- \
    --boards "$boards" --peer-boards 10 --python "$py" | tee -a "$log"
done
echo "### range across $runs runs"
range() { # label, grep pattern, sed expression extracting the number
  grep -E "$2" "$log" | sed -E "$3" | sort -g | awk -v l="$1" 'NR==1{lo=$1} {hi=$1} END{printf "%-64s %s – %s\n", l, lo, hi}'
}
range "per board, no firmware, daemon's images: median ms" '^no firmware, flashed' 's/.*median ([0-9.]+) ms.*/\1/'
range "per board, ESP-AT firmware, daemon's images: median ms" '^ESP-AT firmware, flashed' 's/.*median ([0-9.]+) ms.*/\1/'
range "store on the state disk, one transaction each (minted): /s" '^store on the state disk' 's/.*: ([0-9]+)\/s one transaction.*/\1/'
range "store on the state disk, 16 threads sharing one store: /s" '^store on the state disk' 's/.*, ([0-9]+)\/s with 16 threads.*/\1/'
range "store on the state disk, batches of 100: /s" '^store on the state disk' 's/.*, ([0-9]+)\/s in batches.*/\1/'
range "fsync on the state disk: ms" '^fsync' 's/.*: ([0-9.]+) ms/\1/'
range "ratio espfleet vs openssl + esp-idf-nvs-partition-gen per board: x" '^ratio' 's/.*espfleet ([0-9.]+)× faster.*/\1/'
