#!/bin/sh
# Builds {{name}}.wasm (see README.md for the toolchain).
set -e
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}"/wasm32-wasip2/release/{{name_snake}}.wasm {{name}}.wasm
echo "built {{name}}.wasm"
