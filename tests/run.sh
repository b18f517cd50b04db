#!/usr/bin/env bash
# The one command that runs every espfleet test, installing what the tests need first.
#
#   bash tests/run.sh
#
# 1. Debian packages listed in tests/apt-packages.txt (skipped when all are present);
# 2. the PyPI oracles pinned in tests/oracles/requirements.txt, in .venv-oracles/;
# 3. every Rust test in the workspace (unit, golden, differential, end-to-end);
# 4. every script in tests/checks/ (unit-file and udev-rule checks and the like).
#
# Tests find the oracles' Python through ESPFLEET_ORACLE_PYTHON, which this script sets.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

say() { printf '\n== %s\n' "$*"; }

# --- 1. Debian packages ------------------------------------------------------------------
mapfile -t pkgs < <(grep -v '^\s*#' tests/apt-packages.txt | tr -s ' \t' '\n' | grep -v '^$')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- 2. PyPI oracles ---------------------------------------------------------------------
venv="$root/.venv-oracles"
stamp="$venv/.requirements"
if ! cmp -s tests/oracles/requirements.txt "$stamp" 2>/dev/null; then
  say "installing the PyPI oracles into .venv-oracles"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/oracles/requirements.txt
  cp tests/oracles/requirements.txt "$stamp"
fi
export ESPFLEET_ORACLE_PYTHON="$venv/bin/python"
export PATH="$venv/bin:$PATH"

# --- 3. Rust tests -----------------------------------------------------------------------
say "cargo test --workspace"
cargo test --workspace --locked --no-fail-fast

# --- 4. Extra checks ---------------------------------------------------------------------
shopt -s nullglob
checks=(tests/checks/*.sh)
passed=0 failed=0
for check in "${checks[@]}"; do
  say "check: $check"
  if bash "$check"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $check"; fi
done
say "extra checks"
echo "checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
