#!/usr/bin/env bash
# Benchmark: `espfleet nvs generate` against `python -m esp_idf_nvs_partition_gen generate`
# (the pinned PyPI oracle) on (1) one 10,000-entry CSV and (2) 100 ESP-AT-style mfg_nvs CSVs,
# one process per CSV for both tools, as a build system runs them. Checks that every output
# is byte-identical, then prints both times and the ratios.
#
#   bash tests/bench/nvs.sh            # builds espfleet --release first
#
# Python: $ESPFLEET_ORACLE_PYTHON, else .venv-oracles/bin/python (created by tests/run.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
py=${ESPFLEET_ORACLE_PYTHON:-$root/.venv-oracles/bin/python}
[ -x "$py" ] || { echo "no oracle Python at $py: run bash tests/run.sh first" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release --locked -q -p espfleet
ours="$target/release/espfleet"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- inputs (deterministic; Python only writes the CSVs and PEM-like files) ------------------
"$py" - "$work" <<'PY'
import base64, hashlib, os, sys
work = sys.argv[1]

def rnd(seed, n):
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}/{i}".encode()).digest()
        i += 1
    return out[:n]

# (1) 10,000 entries: namespaces, every primitive type, strings, hex2bin and base64 blobs.
rows = ["key,type,encoding,value"]
types = ["u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64"]
ranges = {"u8": 255, "i8": 127, "u16": 65535, "i16": 32767, "u32": 4294967295, "i32": 2147483647,
          "u64": 18446744073709551615, "i64": 9223372036854775807}
n = 0
while n < 10000:
    if n % 100 == 0:
        rows.append(f"ns{n // 100},namespace,,")
        n += 1
        continue
    k = f"k{n}"
    m = n % 10
    if m < 6:
        t = types[n % 8]
        rows.append(f"{k},data,{t},{(n * 7919) % ranges[t]}")
    elif m < 8:
        rows.append(f'{k},data,string,"value {n}, {"x" * (n % 40)}"')
    elif m == 8:
        rows.append(f"{k},data,hex2bin,{rnd(n, 16 + n % 64).hex()}")
    else:
        rows.append(f"{k},data,base64,{base64.b64encode(rnd(n, 24 + n % 48)).decode()}")
    n += 1
open(os.path.join(work, "big.csv"), "w").write("\n".join(rows) + "\n")

# (2) 100 mfg_nvs CSVs in esp-at's shape (PKI files as file/binary rows, factory_param, ble_data).
pem_dir = os.path.join(work, "pem")
os.makedirs(pem_dir)
pki = [("server_cert", ["server_cert"], 1164), ("server_key", ["server_key"], 1675), ("server_ca", ["server_ca"], 1164),
       ("client_cert", ["client_cert.0", "client_cert.1"], 1164), ("client_key", ["client_key.0", "client_key.1"], 1675),
       ("client_ca", ["client_ca.0", "client_ca.1"], 1164), ("mqtt_cert", ["mqtt_cert"], 1155),
       ("mqtt_key", ["mqtt_key"], 1679), ("mqtt_ca", ["mqtt_ca"], 1159)]
for i in range(100):
    lines = ["key,type,encoding,value"]
    for ns, keys, size in pki:
        lines.append(f"{ns},namespace,,")
        for key in keys:
            path = os.path.join(pem_dir, f"{i}_{key}.pem")
            body = base64.encodebytes(rnd(f"{i}{key}", size * 3 // 4 - 60)).decode()
            open(path, "w").write(f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n")
            lines.append(f"{key},file,binary,{path}")
    lines += ["factory_param,namespace,,", "version,data,i8,4", f'module_name,data,string,"MODULE-{i:03}"',
              f"max_tx_power,data,i8,{60 + i % 20}", 'country_code,data,string,"CN"', "start_channel,data,u8,1",
              "channel_num,data,u8,13", "uart_port,data,i8,1", "uart_baudrate,data,i32,115200",
              f"uart_tx_pin,data,i32,{i % 40}", "uart_rx_pin,data,i32,16", "uart_cts_pin,data,i32,15",
              "uart_rts_pin,data,i32,14", "sys_store,data,u8,1", "ble_data,namespace,,"]
    for k in range(31):
        lines.append(f'cfg{k},data,string,"{k},16,0x{0x2800 + k:04X},0x01,2,2,A0{k:02}"')
    open(os.path.join(work, f"mfg_{i:03}.csv"), "w").write("\n".join(lines) + "\n")
PY

# Wall time is noisy on a shared machine, so each measurement is repeated and the fastest run
# counts; CPU time (user + sys of the tool's processes) is printed as well.
TIMEFORMAT='%R %U %S'
best_real=0 best_cpu=0
measure() { # measure REPEATS command... -> sets best_real / best_cpu (milliseconds)
  local reps=$1; shift
  best_real=999999999 best_cpu=999999999
  for ((r = 0; r < reps; r++)); do
    local t
    t=$( { time "$@" >/dev/null; } 2>&1 | tail -1 )
    read -r real user sys <<<"$t"
    local ms cpu
    ms=$(awk -v a="$real" 'BEGIN { printf "%d", a * 1000 }')
    cpu=$(awk -v a="$user" -v b="$sys" 'BEGIN { printf "%d", (a + b) * 1000 }')
    if ((ms < best_real)); then best_real=$ms; fi
    if ((cpu < best_cpu)); then best_cpu=$cpu; fi
  done
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b < 1) b = 1; printf "%.0f", a / b }'; }

big_py() { "$py" -m esp_idf_nvs_partition_gen generate "$work/big.csv" "$work/big_py.bin" 0x100000; }
big_rs() { "$ours" -q nvs generate "$work/big.csv" "$work/big_rs.bin" 0x100000; }
mfg_py() { for f in "$work"/mfg_*.csv; do "$py" -m esp_idf_nvs_partition_gen generate "$f" "${f%.csv}_py.bin" 0x1C000 >/dev/null; done; }
mfg_rs() { for f in "$work"/mfg_*.csv; do "$ours" -q nvs generate "$f" "${f%.csv}_rs.bin" 0x1C000; done; }

measure 3 big_py; py_big=$best_real py_big_cpu=$best_cpu
measure 10 big_rs; rs_big=$best_real rs_big_cpu=$best_cpu
cmp "$work/big_py.bin" "$work/big_rs.bin" || { echo "FAIL: 10,000-entry images differ" >&2; exit 1; }
measure 1 mfg_py; py_mfg=$best_real py_mfg_cpu=$best_cpu
measure 3 mfg_rs; rs_mfg=$best_real rs_mfg_cpu=$best_cpu
for f in "$work"/mfg_*.csv; do cmp "${f%.csv}_py.bin" "${f%.csv}_rs.bin" || { echo "FAIL: $f differs" >&2; exit 1; }; done

printf '\nNVS generate benchmark: espfleet vs esp-idf-nvs-partition-gen (all outputs identical, checked with cmp)\n'
printf '%-34s %11s %11s %7s   %11s %11s %7s\n' "input" "python wall" "ours wall" "ratio" "python cpu" "ours cpu" "ratio"
printf '%-34s %9d ms %9d ms %6sx   %8d ms %8d ms %6sx\n' "10,000-entry CSV" "$py_big" "$rs_big" "$(ratio "$py_big" "$rs_big")" \
  "$py_big_cpu" "$rs_big_cpu" "$(ratio "$py_big_cpu" "$rs_big_cpu")"
printf '%-34s %9d ms %9d ms %6sx   %8d ms %8d ms %6sx\n' "100 mfg_nvs CSVs (100 processes)" "$py_mfg" "$rs_mfg" "$(ratio "$py_mfg" "$rs_mfg")" \
  "$py_mfg_cpu" "$rs_mfg_cpu" "$(ratio "$py_mfg_cpu" "$rs_mfg_cpu")"
