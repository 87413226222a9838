#!/usr/bin/env python3
"""Three wasmgate replicas behind HAProxy, under steady load, with zero failed requests.

Installs HAProxy, wrk and wabt from Debian when missing. Starts three replicas sharing
one modules directory (and cache), and HAProxy (deploy/haproxy/haproxy.cfg) health-checking
their /readyz, all on loopback. While wrk drives hello through HAProxy it
  (a) copies a new version of the module into the shared directory and waits until every
      replica serves it, then
  (b) restarts the replicas one by one with SIGTERM (a rolling restart).
Checks that wrk saw no error and no non-2xx response, and ends with "N passed, M failed".
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "loadtest"))
from common import Gateway, build_release, ensure_apt, hello_wat, start_haproxy, wat_to_wasm, wrk_failures  # noqa: E402

REPLICAS = 3
WRK_SECONDS = 20
# Replicas keep accepting this long after readiness turns 503: several HAProxy checks.
REPLICA_CONFIG = "shutdown_delay_ms = 800\n"
RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(ok)
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {str(detail)[:500]}"), flush=True)


def body(port, path="/hello"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.read().decode()
    except OSError as e:
        return f"error: {e}"


def wait_until(fn, within):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.05)
    return False


def main():
    ensure_apt("haproxy", "haproxy")
    ensure_apt("wrk", "wrk")
    build_release()
    tmp = tempfile.mkdtemp(prefix="wasmgate-lb-")
    mods, cache = os.path.join(tmp, "modules"), os.path.join(tmp, "cache")
    os.makedirs(mods)
    wat_to_wasm(hello_wat("version 1"), os.path.join(mods, "hello.wasm"))
    wat_to_wasm(hello_wat("version 2"), os.path.join(tmp, "v2.wasm"))
    replicas = [Gateway(mods, cache, REPLICA_CONFIG) for _ in range(REPLICAS)]
    for i, r in enumerate(replicas):
        r.start(os.path.join(tmp, f"replica{i}.log"))
    haproxy, lb_port = start_haproxy(replicas, tmp)
    wrk = None
    try:
        up = wait_until(lambda: body(lb_port) == "version 1\n", 10)
        check("HAProxy serves hello through the replicas", up,
              (body(lb_port), haproxy.poll(), open(os.path.join(tmp, "haproxy.log"), errors="replace").read()[-500:]))
        if not up:
            raise SystemExit(1)
        wrk = subprocess.Popen(["wrk", "-t1", "-c16", f"-d{WRK_SECONDS}s", f"http://127.0.0.1:{lb_port}/hello"],
                               stdout=subprocess.PIPE, text=True)
        time.sleep(1)

        tmp_copy = os.path.join(mods, ".hello.wasm.tmp")
        shutil.copyfile(os.path.join(tmp, "v2.wasm"), tmp_copy)
        os.replace(tmp_copy, os.path.join(mods, "hello.wasm"))
        t0 = time.monotonic()
        every = wait_until(lambda: all(body(r.port) == "version 2\n" for r in replicas), 10)
        check(f"every replica serves the new version ({time.monotonic() - t0:.2f} s)", every,
              [body(r.port) for r in replicas])

        for i, r in enumerate(replicas):
            r.stop()
            code = r.proc.returncode
            r.start(os.path.join(tmp, f"replica{i}.log"))
            check(f"replica {i} drained, exited {code} and came back", code == 0 and body(r.port) == "version 2\n",
                  (code, body(r.port)))
            time.sleep(0.6)  # a few health checks: HAProxy sees it ready again

        out, _ = wrk.communicate(timeout=WRK_SECONDS + 30)
        total, non2xx, errors = wrk_failures(out)
        check(f"no failed request through the load balancer ({total} requests)",
              total > 1000 and non2xx == 0 and errors == 0, out)
        check("HAProxy serves the new version at the end", body(lb_port) == "version 2\n", body(lb_port))
    finally:
        if wrk and wrk.poll() is None:
            wrk.kill()
        haproxy.terminate()
        haproxy.wait(10)
        for r in replicas:
            r.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(RESULTS)
    print(f"{passed} passed, {len(RESULTS) - passed} failed")
    sys.exit(0 if passed == len(RESULTS) else 1)


if __name__ == "__main__":
    main()
