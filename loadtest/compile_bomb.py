#!/usr/bin/env python3
"""What a compile bomb does to a running gateway (issue 29, part 2).

A compile bomb is a small module that Cranelift needs a long time and a lot of memory for:
here one function whose LOCALS i64 locals are all set inside LOOPS nested loops (every loop
header merges every local). The script serves hello, drops the bomb into the modules
directory, writes a small module 0.5 s later, and reports:

- how long the small module took to serve, from the end of its write (the contract: 1 s);
- the gateway process's resident memory before, at its peak while the bomb compiled, and
  after; and the peak of the whole process tree (the gateway and its compile workers);
- what became of the bomb (its /modules state and error) and when.

Run from the repository root, once per binary to compare, in the same session:
  python3 loadtest/compile_bomb.py [--binary PATH] [--locals 5000] [--loops 100] [--limit-s 120]
"""
import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BIN, Gateway, build_release, hello_wat, wat_to_wasm  # noqa: E402


def bomb_wat(locals_, loops):
    sets = " ".join(f"local.get {(i + 1) % locals_} i64.const 1 i64.add local.set {i}"
                    for i in range(locals_))
    return (f'(module (memory (export "memory") 1) (func (export "_start") (local{" i64" * locals_})'
            f'{" loop" * loops} {sets} local.get 0 i64.eqz br_if 0{" end" * loops}))')


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def children(pid):
    """The child processes of every thread of `pid` (a worker is the child of the thread
    that started it)."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return found


def module_entry(gw, name):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{gw.admin}/modules", timeout=2) as r:
            return next((m for m in json.load(r) if m["name"] == name), {})
    except OSError:
        return {}


def get(gw, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{gw.port}{path}", timeout=2) as r:
            return r.read()
    except OSError:
        return b""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=BIN)
    ap.add_argument("--locals", type=int, default=5000)
    ap.add_argument("--loops", type=int, default=100)
    ap.add_argument("--limit-s", type=float, default=120)
    args = ap.parse_args()
    if args.binary == BIN:
        build_release()
    with tempfile.TemporaryDirectory() as tmp:
        mods = os.path.join(tmp, "modules")
        os.makedirs(mods)
        wat_to_wasm(hello_wat("hello"), os.path.join(mods, "hello.wasm"))
        bomb = os.path.join(tmp, "bomb.wasm")
        wat_to_wasm(bomb_wat(args.locals, args.loops), bomb)
        small = os.path.join(tmp, "small.wasm")
        wat_to_wasm(hello_wat("small and quick"), small)
        gw = Gateway(mods, os.path.join(tmp, "cache"), binary=args.binary)
        gw.start(os.path.join(tmp, "gateway.log"))
        try:
            baseline = rss_kib(gw.proc.pid)
            os.replace(bomb, os.path.join(mods, "bomb.wasm"))
            dropped = time.monotonic()
            time.sleep(0.5)
            os.replace(small, os.path.join(mods, "small.wasm"))
            written = time.monotonic()
            small_ms = None
            peak_gw = peak_tree = 0
            state = {}
            while time.monotonic() - dropped < args.limit_s:
                peak_gw = max(peak_gw, rss_kib(gw.proc.pid))
                tree = rss_kib(gw.proc.pid) + sum(rss_kib(c) for c in children(gw.proc.pid))
                peak_tree = max(peak_tree, tree)
                if small_ms is None and get(gw, "/small") == b"small and quick\n":
                    small_ms = (time.monotonic() - written) * 1000
                state = module_entry(gw, "bomb")
                if small_ms is not None and state.get("state") in ("ready", "failed"):
                    break
                if gw.proc.poll() is not None:
                    state = {"state": f"the gateway exited ({gw.proc.returncode})"}
                    break
                time.sleep(0.05)
            took = time.monotonic() - dropped
            time.sleep(1)
            after = rss_kib(gw.proc.pid)
        finally:
            gw.stop()
        size = os.path.getsize(os.path.join(mods, "bomb.wasm"))
        print(f"binary: {args.binary}")
        print(f"bomb: {args.locals} locals x {args.loops} loops, {size} bytes")
        print(f"small module served after: "
              f"{'%.0f ms' % small_ms if small_ms is not None else f'not within {args.limit_s:.0f} s'}")
        print(f"gateway resident: {baseline / 1024:.0f} MiB before, {peak_gw / 1024:.0f} MiB at peak, "
              f"{after / 1024:.0f} MiB 1 s after the bomb's load ended")
        print(f"gateway and workers resident at peak: {peak_tree / 1024:.0f} MiB")
        print(f"bomb: {state.get('state', 'still loading')} after {took:.1f} s"
              + (f": {state['error']}" if state.get("error") else ""))


if __name__ == "__main__":
    main()
