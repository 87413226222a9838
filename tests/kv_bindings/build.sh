#!/usr/bin/env bash
# Rebuilds the binding probes into ../fixtures/kv_bindings/ (committed, so the tests need
# none of this), with the toolchains modules/build.sh installs (run it first for Go, C and
# AssemblyScript). Build output goes to /tmp, never into the repository.
set -euo pipefail
cd "$(dirname "$0")"
OUT=$PWD/../fixtures/kv_bindings
TOOLS=${WASMGATE_TOOLCHAINS:-$HOME/.cache/wasmgate-toolchains}
mkdir -p "$OUT"

rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
(cd rust && CARGO_TARGET_DIR=/tmp/wasmgate-kv-probe cargo build --release --target wasm32-wasip1 --quiet)
cp /tmp/wasmgate-kv-probe/wasm32-wasip1/release/kv_probe_rust.wasm "$OUT/rust.wasm"

goroot=$("$TOOLS/go-venv/bin/python" -c 'import go, os; print(os.path.dirname(go.__file__))')
(cd go && GOROOT=$goroot GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOCACHE=$TOOLS/go-cache \
  GOOS=wasip1 GOARCH=wasm "$goroot/bin/go" build -trimpath -ldflags="-s -w" -o "$OUT/go.wasm" .)

clang --target=wasm32-wasi -O2 -s c/probe.c -o "$OUT/c.wasm"

asenv=../../modules/src/asenv
"$asenv/node_modules/.bin/asc" assemblyscript/probe.ts \
  --config "$asenv/node_modules/@assemblyscript/wasi-shim/asconfig.json" -O -o "$OUT/assemblyscript.wasm"
ls -l "$OUT"
