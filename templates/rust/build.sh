#!/bin/sh
# Builds {{name}}.wasm (see README.md for the toolchain).
set -e
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip1
cp "${CARGO_TARGET_DIR:-target}"/wasm32-wasip1/release/{{name}}.wasm {{name}}.wasm
echo "built {{name}}.wasm"
