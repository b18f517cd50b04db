#!/usr/bin/env bash
# Fleet build benchmark: N per-device manifests (default 1000), each with its own EC P-256
# certificate and key, sharing one base. Times, in one run:
#   espfleet: cold build (empty cache and output), warm rebuild (nothing changed), rebuild after
#             one shared base value (max-tx-power) changes;
#   Python:   Espressif's NVS generator (PyPI esp-idf-nvs-partition-gen, the oracle pin) run once
#             per device on the mfg_nvs CSV ESP-AT's mfg_nvs.py would write for it, in parallel
#             on every CPU (xargs -P). Writing the N CSVs is setup and not timed.
# and prints the ratios. Checks first that the Python image of device 1 is byte-identical to
# ours, so both sides do the same job.
#
# Usage: bash tests/bench/fleet.sh [N]      (release build; needs openssl and the oracle venv)
set -euo pipefail
N=${1:-1000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${ESPFLEET_ORACLE_PYTHON:-$ROOT/.venv-oracles/bin/python}
[ -x "$PY" ] || { echo "no oracle Python at $PY: run bash tests/run.sh (or create .venv-oracles)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl missing: apt-get install openssl" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release --quiet -p espfleet --manifest-path "$ROOT/Cargo.toml"
BIN=$CARGO_TARGET_DIR/release/espfleet
CPUS=$(nproc)

W=$(mktemp -d /tmp/espfleet-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
F=$W/fleet
mkdir -p "$F/pki" "$F/devices" "$W/csv" "$W/py"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

echo "setup: $N devices, EC P-256 keys and certificates (openssl), manifests, CSVs ..." >&2
cat > "$F/base.kdl" <<'KDL'
espfleet 1
module "WROOM-32" chip="esp32"
esp-at "v4.1.1.0"
wifi country="DE" start-channel=1 channel-count=13 max-tx-power=78
KDL
gen() {
    local d=$1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$F/pki/$d.key" \
        -out "$F/pki/$d.crt" -subj "/O=espfleet bench/CN=$d" -days 36500 2>/dev/null
}
export -f gen; export F
seq -f 'd%04g' 1 "$N" | xargs -P "$CPUS" -I{} bash -c 'gen {}'
for i in $(seq -f '%04g' 1 "$N"); do
    d=d$i
    cat > "$F/devices/$d.kdl" <<KDL
espfleet 1
extends "../base.kdl"
name "$d"
certificates {
    client-cert "../pki/$d.crt"
    client-key "../pki/$d.key"
}
match vid=0x10c4 pid=0xea60 serial="$d"
KDL
    # What ESP-AT's mfg_nvs.py writes for this device (v4.1.1.0, WROOM-32, the base's values).
    cat > "$W/csv/$d.csv" <<CSV
key,type,encoding,value
client_cert,namespace,,
client_cert,file,binary,$F/pki/$d.crt
client_key,namespace,,
client_key,file,binary,$F/pki/$d.key
factory_param,namespace,,
version,data,i8,4
module_name,data,string,WROOM-32
max_tx_power,data,i8,78
country_code,data,string,DE
start_channel,data,u8,1
channel_num,data,u8,13
uart_port,data,i8,1
uart_baudrate,data,i32,115200
uart_tx_pin,data,i32,17
uart_rx_pin,data,i32,16
uart_cts_pin,data,i32,15
uart_rts_pin,data,i32,14
sys_store,data,u8,1
CSV
done

build() { "$BIN" build "$F" --out "$W/out" --cache-dir "$W/cache" --no-lock --quiet; }
t0=$(now); build; t1=$(now); cold=$(secs "$t0" "$t1")
t0=$(now); build; t1=$(now); warm=$(secs "$t0" "$t1")
sed -i 's/max-tx-power=78/max-tx-power=80/' "$F/base.kdl"
t0=$(now); build; t1=$(now); change=$(secs "$t0" "$t1")

SIZE=$(printf '0x%x' "$(stat -c %s "$W/out/d0001/customized_partitions/mfg_nvs.bin")")
t0=$(now)
ls "$W/csv" | sed 's/\.csv$//' | xargs -P "$CPUS" -I{} \
    "$PY" -m esp_idf_nvs_partition_gen generate "$W/csv/{}.csv" "$W/py/{}.bin" "$SIZE" >/dev/null
t1=$(now); python=$(secs "$t0" "$t1")

# Same job: the Python image equals ours for the same inputs (base value restored).
sed -i 's/max-tx-power=80/max-tx-power=78/' "$F/base.kdl"
build
for d in d0001 "d$(printf '%04d' "$N")"; do
    cmp -s "$W/py/$d.bin" "$W/out/$d/customized_partitions/mfg_nvs.bin" ||
        { echo "MISMATCH: Python and espfleet mfg_nvs differ for $d" >&2; exit 1; }
done

echo "fleet build, $N devices (own P-256 cert + key each, one base), $CPUS CPUs"
printf '  espfleet cold build             %8.3f s\n' "$cold"
printf '  espfleet warm rebuild (no change) %6.3f s   = %5.2f %% of cold (target < 5 %%)\n' "$warm" \
    "$(awk -v w="$warm" -v c="$cold" 'BEGIN { print 100 * w / c }')"
printf '  espfleet after base value change %7.3f s   = %5.2f %% of cold\n' "$change" \
    "$(awk -v w="$change" -v c="$cold" 'BEGIN { print 100 * w / c }')"
printf '  Python nvs_partition_gen x %d    %8.3f s\n' "$N" "$python"
printf '  cold speed-up vs Python: %.1fx (target >= 20x)\n' \
    "$(awk -v p="$python" -v c="$cold" 'BEGIN { print p / c }')"
