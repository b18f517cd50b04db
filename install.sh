#!/usr/bin/env bash
# Installs espfleet from this checkout on Debian/Ubuntu and builds the bundled example.
#
#   ./install.sh                 # as root, or as a user who may use sudo
#   ./install.sh --no-example    # install only
#
# 1. the Debian packages the build needs (apt-get update first, only if one is missing), through
#    sudo unless already root;
# 2. `cargo install --locked --path daemon`: both binaries, espfleet and espfleetd, into
#    $CARGO_INSTALL_ROOT/bin, else $CARGO_HOME/bin (~/.cargo/bin);
# 3. `espfleet build manifests/examples/wroom-32.kdl --out out/`: the example's images in
#    out/wroom-32/.
#
# Needs a Rust toolchain (https://rustup.rs, stable). Exit status: 0 done, 1 a step failed,
# 2 bad arguments.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

example=yes
for arg in "$@"; do
  case $arg in
    --no-example) example=no ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

# --- 1. Debian packages -------------------------------------------------------------------
# gcc/libc6-dev: the linker rustc calls; pkg-config/libudev-dev: the udev and serialport crates;
# ca-certificates: cargo fetching crates over HTTPS.
build_deps=(ca-certificates gcc libc6-dev pkg-config libudev-dev)
missing=()
for p in "${build_deps[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null; then
    as_root=(sudo)
  else
    die "missing Debian packages (${missing[*]}) and no sudo: run this as root, or install them first"
  fi
  say "installing Debian packages: ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- 2. the binaries ------------------------------------------------------------------------
cargo_home=${CARGO_HOME:-$HOME/.cargo}
user_path=$PATH
if ! command -v cargo >/dev/null; then
  [ -x "$cargo_home/bin/cargo" ] || die "no Rust toolchain: install it from https://rustup.rs (stable), then run ./install.sh again"
  export PATH="$cargo_home/bin:$PATH"
fi
say "building and installing espfleet and espfleetd (cargo install --locked --path daemon)"
cargo install --locked --path daemon
bin_dir=${CARGO_INSTALL_ROOT:-$cargo_home}/bin
espfleet="$bin_dir/espfleet"
[ -x "$espfleet" ] || die "espfleet was not installed into $bin_dir"
"$espfleet" --version

case ":$user_path:" in
  *":$bin_dir:"*) ;;
  *) say "add $bin_dir to your PATH to run espfleet by name" ;;
esac

# --- 3. the bundled example -----------------------------------------------------------------
if [ "$example" = yes ]; then
  say "building the bundled example: espfleet build manifests/examples/wroom-32.kdl --out out/"
  "$espfleet" build manifests/examples/wroom-32.kdl --out out/
  say "done: the images are in out/wroom-32/ (find out/wroom-32 -type f)"
fi
