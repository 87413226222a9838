#!/usr/bin/env python3
"""User-space instructions per hello request, wasmgate against the bare hyper reference,
counted by callgrind: a figure that a noisy, shared host does not move.

Timings on these machines wander by 10% between runs of the same binary, which hides any
change worth less than that; an instruction count repeats to within a fraction of a
percent, so a small change to the request path shows up here first (then has to show up
in req/s and CPU time too, in throughput.py, because instructions are not time: a memmove
of a large future, a cache miss and the kernel's side are not weighed right, or at all).

Each server runs under `valgrind --tool=callgrind` with the same configuration that
throughput.py gives it (wasmgate: its default, hello; the reference: a serving thread per
core), takes WARM_UP requests, has its counters zeroed, serves REQUESTS more on one
keep-alive connection, and is dumped. With `--top N`, wasmgate's N costliest functions
(their own instructions, per request) follow. `--module FILE` serves another module (a
wasi:http component, say) in hello's place, at `/NAME` after its file name. `--keep DIR`
copies wasmgate's callgrind dump there, for a breakdown by caller, e.g.
`callgrind_annotate --inclusive=yes DIR/wasmgate.callgrind` (divide by REQUESTS).

Run: python3 loadtest/instructions.py [--binary PATH] [--module FILE] [--top N] [--keep DIR]
Needs valgrind (Debian's valgrind, installed when missing).
"""
import argparse
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BIN, ROOT, Gateway, build_release, ensure_apt, free_port  # noqa: E402

WARM_UP = 200
REQUESTS = 2000
REFERENCE_BIN = os.path.join(ROOT, "target", "release", "examples", "hello-reference")


def callgrind(out):
    # --smc-check: wasm code is compiled into anonymous memory at run time.
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--smc-check=all-non-file"]


def drive(port, n, path="/hello"):
    """`n` sequential GETs of `path` on one connection; each must answer 200."""
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", path)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    for i in range(n):
        if i:
            conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"port {port}: {path} answered {response.status}")
    conn.close()


def count(pid, port, out, path="/hello"):
    """Instructions per request for `path` of the process `pid` serving on `port`."""
    drive(port, WARM_UP, path)
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
    drive(port, REQUESTS, path)
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    dumps = sorted(f for f in os.listdir(os.path.dirname(out)) if f.startswith(os.path.basename(out) + "."))
    path = os.path.join(os.path.dirname(out), dumps[-1])
    with open(path) as f:
        total = next(int(line.split()[1]) for line in f if line.startswith("summary:"))
    return total / REQUESTS, path


def top_functions(dump, n):
    """The `n` functions with the most instructions of their own, per request."""
    text = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", dump],
                          check=True, capture_output=True, text=True).stdout
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S.*)", line)
        if m and "PROGRAM TOTALS" not in line:
            name = m.group(2).split(":", 1)[-1].rsplit(" [", 1)[0]
            rows.append((int(m.group(1).replace(",", "")) / REQUESTS, name))
    return rows[:n]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=BIN, help="the wasmgate binary (default: the release build)")
    parser.add_argument("--module", default=os.path.join(ROOT, "modules", "hello.wasm"),
                        help="the module wasmgate serves (default: modules/hello.wasm)")
    parser.add_argument("--top", type=int, default=0, help="list wasmgate's N costliest functions")
    parser.add_argument("--keep", help="copy wasmgate's callgrind dump into this directory")
    args = parser.parse_args()
    ensure_apt("valgrind", "valgrind")
    build_release()
    tmp = tempfile.mkdtemp(prefix="wasmgate-instructions-")
    procs = []
    try:
        port = free_port()
        ref = subprocess.Popen([*callgrind(os.path.join(tmp, "ref.out")), REFERENCE_BIN,
                                f"127.0.0.1:{port}", str(os.cpu_count() or 1)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(ref)
        ref_count, _ = count(ref.pid, port, os.path.join(tmp, "ref.out"))
        ref.terminate()

        mods = os.path.join(tmp, "modules")
        os.makedirs(mods)
        shutil.copy(args.module, mods)
        path = "/" + os.path.splitext(os.path.basename(args.module))[0]
        gw = Gateway(mods, os.path.join(tmp, "cache"), binary=args.binary,
                     wrapper=callgrind(os.path.join(tmp, "gw.out")))
        gw.start(os.path.join(tmp, "gateway.log"))
        procs.append(gw.proc)
        gw_count, dump = count(gw.proc.pid, gw.port, os.path.join(tmp, "gw.out"), path)
        print(f"user-space instructions per request (callgrind, {REQUESTS} requests on one connection; "
              f"wasmgate serving {path}, the reference hello):")
        print(f"  reference {ref_count:9.0f}")
        print(f"  wasmgate  {gw_count:9.0f}  ({gw_count / ref_count:.2f}x the reference's, "
              f"{gw_count - ref_count:.0f} more)")
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            shutil.copy(dump, os.path.join(args.keep, "wasmgate.callgrind"))
            print(f"callgrind dump kept: {os.path.join(args.keep, 'wasmgate.callgrind')}")
        if args.top:
            print(f"wasmgate's {args.top} costliest functions, own instructions per request:")
            for per_request, name in top_functions(dump, args.top):
                print(f"  {per_request:7.0f}  {name[:150]}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
