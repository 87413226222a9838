#!/usr/bin/env python3
"""A newcomer's waits, against the build before issue 34 (--before BIN), in the same run.

1. `wasmgate run` of the Python example (modules/pypage.wasm, 19 MB) twice in a fresh
   directory: the first try compiles; the second loads the compiled code from the cache
   (before, it compiled again).
2. From `cp` to serving: a new 4.7 MB Go module (the `wasmgate new go` template built
   without `-ldflags="-s -w"`) copied into a running gateway's modules directory, timed
   until its route first answers 200; idle, and under load (wrk, 32 connections on
   /hello, for the whole copy and compile). Also counts what the route answered meanwhile
   (polled every 20 ms: before, a 404; now the request is held, then 200).

    python3 loadtest/first_function.py --before /path/to/old/wasmgate [--rounds N]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BIN, ROOT, Gateway, build_release, wat_to_wasm, hello_wat, wrk  # noqa: E402

PYPAGE = os.path.join(ROOT, "modules", "pypage.wasm")
POLL_S = 0.02


def timed_run(binary, cwd):
    t0 = time.monotonic()
    subprocess.run([binary, "run", PYPAGE, "--query", "name=Ada"], cwd=cwd, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t0


def go_module(work):
    """The Go template built without -s -w: about 4.7 MB."""
    subprocess.run([BIN, "new", "go", "gobench"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    project = os.path.join(work, "gobench")
    toolchains = os.path.join(ROOT, "modules", "toolchains.sh")
    subprocess.run(["bash", "-c", f"source {toolchains}; need_go; GOOS=wasip1 GOARCH=wasm "
                    "go build -trimpath -o gobench.wasm ."], cwd=project, check=True)
    return os.path.join(project, "gobench.wasm")


def status_of(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def cp_to_serving(binary, module, work, loaded):
    """Seconds from the start of a `cp` of `module` as a new module to its first 200, and
    the statuses seen meanwhile; with wrk on /hello for the whole time when `loaded`."""
    tmp = tempfile.mkdtemp(dir=work)
    mods = os.path.join(tmp, "modules")
    os.makedirs(mods)
    wat_to_wasm(hello_wat("hello"), os.path.join(mods, "hello.wasm"))
    gw = Gateway(mods, os.path.join(tmp, "cache"), binary=binary)
    gw.start()
    load = None
    try:
        if loaded:
            load = threading.Thread(target=wrk, args=(f"http://127.0.0.1:{gw.port}/hello", 40))
            load.start()
            time.sleep(2)
        seen = {}
        t0 = time.monotonic()
        subprocess.run(["cp", module, os.path.join(mods, "gobench.wasm")], check=True)
        while time.monotonic() - t0 < 120:
            status = status_of(gw.port, "/gobench")
            seen[status] = seen.get(status, 0) + 1
            if status == 200:
                return time.monotonic() - t0, seen
            time.sleep(POLL_S)
        return float("nan"), seen
    finally:
        if load:
            load.join()
        gw.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="a wasmgate binary from before issue 34")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    build_release()
    binaries = {"before": args.before, "after": BIN}
    work = tempfile.mkdtemp(prefix="wasmgate-first-")
    try:
        print("== wasmgate run of pypage.wasm (19 MB), seconds: first try, second try")
        for label, binary in binaries.items():
            firsts, seconds = [], []
            for _ in range(args.rounds):
                cwd = tempfile.mkdtemp(dir=work)
                firsts.append(timed_run(binary, cwd))
                seconds.append(timed_run(binary, cwd))
            print(f"{label:7} first {statistics.median(firsts):6.2f} s   second "
                  f"{statistics.median(seconds):6.3f} s   (medians of {args.rounds}; "
                  f"seconds {', '.join(f'{s:.3f}' for s in seconds)})", flush=True)
        module = go_module(work)
        print(f"== cp to serving, a new Go module of {os.path.getsize(module) / 1e6:.1f} MB")
        for loaded in (False, True):
            for label, binary in binaries.items():
                times, seen = [], {}
                for _ in range(args.rounds):
                    took, statuses = cp_to_serving(binary, module, work, loaded)
                    times.append(took)
                    for k, v in statuses.items():
                        seen[k] = seen.get(k, 0) + v
                print(f"{'under load' if loaded else 'idle':10} {label:7} median "
                      f"{statistics.median(times):5.2f} s  (each: {', '.join(f'{t:.2f}' for t in times)}); "
                      f"answers while deploying: {dict(sorted(seen.items(), key=str))}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
