#!/bin/sh
# Builds {{name}}.wasm (see README.md for the toolchain): app.js and a JavaScript engine,
# about 13 MB.
#
# componentize-js 0.23's engine exports wasi:http/incoming-handler@0.2.10, so the world it
# is built against must say 0.2.10: the WIT in wit/ (0.2.12, as the gateway serves it) is
# relabelled into build/wit first. The gateway serves a 0.2.10 component as any 0.2.x one.
set -e
cd "$(dirname "$0")"
[ -d node_modules/@bytecodealliance/componentize-js ] || npm install --no-audit --no-fund
rm -rf build/wit && mkdir -p build && cp -r wit build/wit
sed -i -E 's/@0\.2\.1[12]\b/@0.2.10/g; s/version = 0\.2\.1[12]\b/version = 0.2.10/g' build/wit/*.wit build/wit/deps/*.wit
npx componentize-js --wit build/wit --world-name wasi:http/proxy@0.2.10 -o {{name}}.wasm app.js
echo "built {{name}}.wasm"
