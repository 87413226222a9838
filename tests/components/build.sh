#!/usr/bin/env bash
# Rebuilds the test components into ../fixtures/components/ (committed, so the tests need
# none of this). Build output goes to CARGO_TARGET_DIR (default
# /tmp/wasmgate-test-components), never into the repository.
set -euo pipefail
cd "$(dirname "$0")"
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/wasmgate-test-components}
cargo build --release --target wasm32-wasip2 --locked
mkdir -p ../fixtures/components
for c in hello_http echo_http stream_http spin_http cli_only probe_http kv_http service_http; do
  cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/$c.wasm" "../fixtures/components/$c.wasm"
done
ls -l ../fixtures/components/
