#!/bin/sh
# Builds {{name}}.wasm (see README.md for the toolchain).
set -e
cd "$(dirname "$0")"
clang --target=wasm32-wasi -O2 -s -Wall -o {{name}}.wasm main.c
echo "built {{name}}.wasm"
