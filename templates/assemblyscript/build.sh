#!/bin/sh
# Builds {{name}}.wasm (see README.md for the toolchain).
set -e
cd "$(dirname "$0")"
[ -d node_modules/assemblyscript ] || npm install --no-audit --no-fund
npm run build
echo "built {{name}}.wasm"
