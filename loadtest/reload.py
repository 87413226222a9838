#!/usr/bin/env python3
"""Hot-reload benchmarks (issue: hot reload and the compiled-module cache).

1. Reload latency: from the end of a module file's write to the first response from the
   new version, polled over one keep-alive connection; 30 swaps.
2. Time to ready with 100 modules: cold (empty cache) versus a restart from the cache.
3. p99 latency of a steady hello load (wrk, 32 connections) with and without another
   module being replaced every 100 ms, measured back to back in one run.

Run from anywhere: python3 loadtest/reload.py   (builds the release binary first)
"""
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Gateway, build_release, hello_wat, wat_to_wasm, wrk  # noqa: E402

MODULES = 100
FUNCTIONS_PER_MODULE = 300  # real code, so compiling costs what a small real module costs
WRK_SECONDS = 10


def reload_latency(tmp):
    mods, cache = os.path.join(tmp, "lat", "modules"), os.path.join(tmp, "lat", "cache")
    os.makedirs(mods)
    versions = []
    for i in range(2):
        path = os.path.join(tmp, f"v{i}.wasm")
        wat_to_wasm(hello_wat(f"version {i}"), path)
        versions.append((open(path, "rb").read(), f"version {i}\n".encode()))
    open(os.path.join(mods, "svc.wasm"), "wb").write(versions[0][0])
    gw = Gateway(mods, cache)
    gw.start()
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    samples = []
    try:
        for i in range(1, 31):
            data, want = versions[i % 2]
            with open(os.path.join(mods, "svc.wasm"), "wb") as f:  # a plain overwrite, like cp
                f.write(data)
            written = time.monotonic()
            while True:
                conn.request("GET", "/svc")
                body = conn.getresponse().read()
                if body == want:
                    samples.append((time.monotonic() - written) * 1000)
                    break
                if time.monotonic() - written > 5:
                    raise RuntimeError("reload not seen within 5 s")
    finally:
        gw.stop()
    samples.sort()
    return statistics.median(samples), samples[-1]


def restart_times(tmp):
    base = os.path.join(tmp, "restart")
    mods, cache = os.path.join(base, "modules"), os.path.join(base, "cache")
    os.makedirs(mods)
    for i in range(MODULES):
        wat_to_wasm(hello_wat(f"module {i}", FUNCTIONS_PER_MODULE), os.path.join(mods, f"m{i:03}.wasm"))
    gw = Gateway(mods, cache)
    cold = gw.start()
    gw.stop()
    warm = min(_restart(gw) for _ in range(3))
    return cold, warm


def _restart(gw):
    t = gw.start()
    gw.stop()
    return t


def p99_with_reloads(tmp):
    mods, cache = os.path.join(tmp, "p99", "modules"), os.path.join(tmp, "p99", "cache")
    os.makedirs(mods)
    wat_to_wasm(hello_wat("hello, world"), os.path.join(mods, "hello.wasm"))
    variants = []
    for i in range(2):
        path = os.path.join(tmp, f"other{i}.wasm")
        wat_to_wasm(hello_wat(f"other {i}", FUNCTIONS_PER_MODULE), path)
        variants.append(open(path, "rb").read())
    open(os.path.join(mods, "other.wasm"), "wb").write(variants[0])
    gw = Gateway(mods, cache)
    log = os.path.join(tmp, "p99.log")
    gw.start(log)
    url = f"http://127.0.0.1:{gw.port}/hello"
    try:
        wrk(url, 2)  # warm-up
        quiet = wrk(url, WRK_SECONDS)
        stop = threading.Event()

        def swapper():
            i = 0
            while not stop.is_set():
                i += 1
                # A distinct file every time, so every swap really compiles.
                # (a custom section: id 0, 5 bytes: name length 1, name "x", 3 bytes of counter)
                data = variants[i % 2] + bytes([0, 5, 1, ord("x")]) + i.to_bytes(4, "little")[:3]
                open(os.path.join(mods, "other.wasm"), "wb").write(data)
                time.sleep(0.1)
            return i

        t = threading.Thread(target=swapper)
        t.start()
        busy = wrk(url, WRK_SECONDS)
        stop.set()
        t.join()
    finally:
        gw.stop()
    text = open(log, encoding="utf-8", errors="replace").read()
    reloads, failures = text.count("module reloaded"), text.count("failed to load")
    return quiet, busy, reloads, failures


def main():
    build_release()
    tmp = tempfile.mkdtemp(prefix="wasmgate-reload-")
    try:
        med, worst = reload_latency(tmp)
        print(f"reload latency (write end -> first new response, 30 swaps): median {med:.1f} ms, max {worst:.1f} ms")
        cold, warm = restart_times(tmp)
        print(f"time to ready, {MODULES} modules of {FUNCTIONS_PER_MODULE} functions: cold {cold * 1000:.0f} ms, "
              f"from cache {warm * 1000:.0f} ms, ratio {cold / warm:.1f}x")
        quiet, busy, reloads, failures = p99_with_reloads(tmp)
        print(f"hello under wrk -c32 for {WRK_SECONDS}s: p99 {quiet[2]:.2f} ms quiet, {busy[2]:.2f} ms with a reload "
              f"every 100 ms (ratio {busy[2] / quiet[2]:.2f}); req/s {quiet[0]:.0f} vs {busy[0]:.0f}; "
              f"non-2xx {quiet[3]} / {busy[3]} {busy[5]}; {reloads} reloads compiled, {failures} failed")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
