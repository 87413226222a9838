#!/bin/sh
# Builds {{name}}.wasm (see README.md for the toolchain).
set -e
cd "$(dirname "$0")"
wat2wasm main.wat -o {{name}}.wasm
echo "built {{name}}.wasm"
