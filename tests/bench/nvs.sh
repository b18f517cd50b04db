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

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b > 0 ? a / b : 0) }'; }

# --- (1) 10,000-entry CSV ------------------------------------------------------------------------
t0=$(now); "$py" -m esp_idf_nvs_partition_gen generate "$work/big.csv" "$work/big_py.bin" 0x100000 >/dev/null; t1=$(now)
"$ours" -q nvs generate "$work/big.csv" "$work/big_rs.bin" 0x100000; t2=$(now)
cmp "$work/big_py.bin" "$work/big_rs.bin" || { echo "FAIL: 10,000-entry images differ" >&2; exit 1; }
py_big=$(ms "$t0" "$t1"); rs_big=$(ms "$t1" "$t2")

# --- (2) 100 mfg_nvs CSVs ------------------------------------------------------------------------
t0=$(now)
for f in "$work"/mfg_*.csv; do "$py" -m esp_idf_nvs_partition_gen generate "$f" "${f%.csv}_py.bin" 0x1C000 >/dev/null; done
t1=$(now)
for f in "$work"/mfg_*.csv; do "$ours" -q nvs generate "$f" "${f%.csv}_rs.bin" 0x1C000; done
t2=$(now)
for f in "$work"/mfg_*.csv; do cmp "${f%.csv}_py.bin" "${f%.csv}_rs.bin" || { echo "FAIL: $f differs" >&2; exit 1; }; done
py_mfg=$(ms "$t0" "$t1"); rs_mfg=$(ms "$t1" "$t2")

printf '\nNVS generate benchmark (same bytes checked with cmp)\n'
printf '%-34s %10s %10s %8s\n' "input" "python ms" "espfleet ms" "ratio"
printf '%-34s %10d %10d %7sx\n' "10,000-entry CSV (1 run)" "$py_big" "$rs_big" "$(ratio "$py_big" "$(( rs_big > 0 ? rs_big : 1 ))")"
printf '%-34s %10d %10d %7sx\n' "100 mfg_nvs CSVs (100 processes)" "$py_mfg" "$rs_mfg" "$(ratio "$py_mfg" "$(( rs_mfg > 0 ? rs_mfg : 1 ))")"
