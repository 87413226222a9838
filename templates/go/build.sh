#!/bin/sh
# Builds {{name}}.wasm (see README.md for the toolchain). -s -w drop the symbol table and
# DWARF: about half the size, and half the compile time in the gateway.
set -e
cd "$(dirname "$0")"
GOOS=wasip1 GOARCH=wasm go build -trimpath -ldflags="-s -w" -o {{name}}.wasm .
echo "built {{name}}.wasm"
