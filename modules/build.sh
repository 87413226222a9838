#!/usr/bin/env bash
# Rebuilds every example module in this directory from its source.
# The built .wasm files are committed, so serving the examples needs none of this.
# Idempotent: run it as often as you like; missing toolchains are installed.
set -euo pipefail
cd "$(dirname "$0")"

need() { command -v "$1" >/dev/null 2>&1; }

if ! need wat2wasm; then
  echo "installing wabt (wat2wasm) from Debian" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wabt; else sudo apt-get update -qq && sudo apt-get install -y -qq wabt; fi
fi

for src in *.wat; do
  wat2wasm "$src" -o "${src%.wat}.wasm"
  echo "built ${src%.wat}.wasm from $src"
done
