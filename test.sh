#!/usr/bin/env bash
# Runs every test of wasmgate: the unit and integration tests (release profile, so the
# wasmtime build is shared with the binary they start), then, when ../shared is beside
# the repository, the acceptance checks of the public contract against the same binary.
set -euo pipefail
cd "$(dirname "$0")"

# What the tests drive besides the gateway itself, from Debian's packages when missing:
# promtool (prometheus) lints /metrics in the acceptance checks.
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
if ((${#missing[@]})); then
  sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo test --release --all-targets

contract=../shared/acceptance/contract.py
if [[ -f $contract ]]; then
  WASMGATE_BIN="$PWD/target/release/wasmgate" python3 "$contract" core reload limits metrics ops
else
  echo "note: $contract not found; acceptance checks not run"
fi
