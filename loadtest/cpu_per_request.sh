#!/usr/bin/env bash
# Server CPU time per request under `wrk -t1 -c32`, read from /proc/PID/stat before and
# after the run: the quick measurement used while optimising (BENCHMARKS.md, "What took the
# per-request cost down"). Expects release binaries (cargo build --release) and wrk.
#
#   loadtest/cpu_per_request.sh [gateway|reference|both] [MODULE] [SECONDS]
#
# The gateway serves ./modules with its default config; MODULE defaults to hello.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-both}
module=${2:-hello}
seconds=${3:-6}
clock_ticks=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

wait_for() {
    for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
    echo "no answer from $1" >&2
    return 1
}

# measure LABEL PID URL: one warm-up second, then the measured run.
measure() {
    wait_for "$3"
    wrk -t1 -c32 -d1s "$3" > /dev/null
    local before after out requests
    before=$(cpu_ticks "$2")
    out=$(wrk -t1 -c32 -d"${seconds}s" --latency "$3")
    after=$(cpu_ticks "$2")
    requests=$(awk '/requests in/ {print $1}' <<< "$out")
    awk -v label="$1" -v rps="$(awk '/Requests\/sec/ {print $2}' <<< "$out")" \
        -v p99="$(awk '$1 == "99%" {print $2}' <<< "$out")" \
        -v ticks=$((after - before)) -v hz="$clock_ticks" -v n="$requests" \
        'BEGIN { printf "%-9s %10.0f req/s  p99 %-8s  %6.2f us CPU per request\n", label, rps, p99, ticks / hz * 1e6 / n }'
}

if [ "$which" != reference ]; then
    ./target/release/wasmgate serve --listen 127.0.0.1:18080 --admin-listen 127.0.0.1:19180 > /dev/null 2>&1 &
    pid=$!
    measure gateway "$pid" "http://127.0.0.1:18080/$module"
    kill "$pid"; wait "$pid" 2> /dev/null || true
fi
if [ "$which" != gateway ]; then
    ./target/release/examples/hello-reference 127.0.0.1:18090 > /dev/null 2>&1 &
    pid=$!
    measure reference "$pid" "http://127.0.0.1:18090/"
    kill "$pid"; wait "$pid" 2> /dev/null || true
fi
