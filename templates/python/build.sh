#!/bin/sh
# Builds {{name}}.wasm (see README.md for the toolchain): app.py and a Python interpreter,
# about 19 MB.
set -e
cd "$(dirname "$0")"
componentize-py -d wit -w wasi:http/proxy@0.2.12 componentize app -o {{name}}.wasm
echo "built {{name}}.wasm"
