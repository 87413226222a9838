#!/usr/bin/env python3
"""A fleet sharing its state: three replicas behind HAProxy keep one counter in one Redis.

Installs redis-server, HAProxy, wrk and wabt from Debian when missing. Starts Debian's
redis-server (persisting nothing) and three replicas that share nothing else (each its own
modules directory and cache, as pods would), each serving a counter module (one
`kv_increment` per request) on `[kv] backend = "redis://..."`, behind HAProxy
(deploy/haproxy/haproxy.cfg). wrk drives the counter through HAProxy; then it checks that
  (a) wrk saw no error and no non-2xx response, and every replica served a share;
  (b) the counter's final value is exactly the number of requests the replicas answered
      successfully (the sum of their wasmgate_requests_total{module="counter",outcome="ok"}),
      and at least the number wrk saw (it does not count those in flight when it stops):
      no increment lost and none repeated, across processes;
  (c) with Redis stopped, each replica answers the counter with its error at once and
      serves its other modules; restarted, the counter goes on from where it was.
Ends with "N passed, M failed".
"""
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "loadtest"))
from common import Gateway, build_release, ensure_apt, free_port, hello_wat, start_haproxy, wat_to_wasm, wrk_failures  # noqa: E402
from kv import COUNTER_WAT  # noqa: E402

REPLICAS = 3
WRK_SECONDS = 15
CONNECTIONS = 32
RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(ok)
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {str(detail)[:500]}"), flush=True)


def fetch(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def ok_requests(replica):
    """The replica's wasmgate_requests_total{module="counter",outcome="ok"}."""
    _, text = fetch(replica.admin, "/metrics")
    series = 'wasmgate_requests_total{module="counter",outcome="ok"} '
    return next((int(float(l[len(series):])) for l in text.splitlines() if l.startswith(series)), 0)


class Redis:
    """redis-server on a fixed loopback port, so that it can be stopped and started again."""

    def __init__(self, workdir):
        ensure_apt("redis-server", "redis-server")
        self.port, self.workdir, self.proc = free_port(), workdir, None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def main():
    for binary, package in [("haproxy", "haproxy"), ("wrk", "wrk")]:
        ensure_apt(binary, package)
    build_release()
    tmp = tempfile.mkdtemp(prefix="wasmgate-kv-fleet-")
    redis = Redis(tmp)
    redis.start()
    config = (f'[kv]\nbackend = "redis://127.0.0.1:{redis.port}"\n'
              '[modules.counter]\nkv_stores = ["counts"]\n')
    replicas = []
    for i in range(REPLICAS):
        mods, cache = os.path.join(tmp, f"r{i}", "modules"), os.path.join(tmp, f"r{i}", "cache")
        os.makedirs(mods)
        wat_to_wasm(COUNTER_WAT, os.path.join(mods, "counter.wasm"))
        wat_to_wasm(hello_wat(f"replica {i}"), os.path.join(mods, "hello.wasm"))
        replicas.append(Gateway(mods, cache, config))
        replicas[-1].start(os.path.join(tmp, f"replica{i}.log"))
    haproxy, lb_port = start_haproxy(replicas, tmp)
    try:
        time.sleep(0.5)
        out = subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{WRK_SECONDS}s",
                              f"http://127.0.0.1:{lb_port}/counter"],
                             capture_output=True, text=True, timeout=WRK_SECONDS + 30).stdout
        total, non2xx, errors = wrk_failures(out)
        shares = [ok_requests(r) for r in replicas]
        check(f"wrk through HAProxy: no failed request ({total} requests), every replica served a share {shares}",
              total > 1000 and non2xx == 0 and errors == 0 and all(s > total / (3 * REPLICAS) for s in shares), out)

        status, final = fetch(lb_port, "/counter")
        answered = sum(ok_requests(r) for r in replicas)
        value = int(final) if status == 200 and final.strip().isdigit() else -1
        print(f"final count {value}; requests the replicas answered ok {answered}; wrk saw {total} + 1")
        check("the shared counter equals the requests answered, across three processes (none lost, none twice)",
              value == answered and value >= total + 1, (value, answered, total))

        redis.stop()
        t0 = time.monotonic()
        down = [fetch(r.port, "/counter") for r in replicas]
        took = time.monotonic() - t0
        check(f"Redis stopped: each replica fails the counter at once ({took * 1000:.0f} ms for three) "
              "and serves hello on",
              all(s == 500 for s, _ in down) and took < 3
              and all(fetch(r.port, "/hello") == (200, f"replica {i}\n") for i, r in enumerate(replicas)),
              down)

        redis.start()
        deadline = time.monotonic() + 5
        back = fetch(lb_port, "/counter")
        while back[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            back = fetch(lb_port, "/counter")
        check("Redis back (append-only file): the counter goes on from where it was within 5 s",
              back[0] == 200 and int(back[1]) == value + 1, (back, value))
    finally:
        haproxy.terminate()
        haproxy.wait(10)
        for r in replicas:
            r.stop()
        redis.stop()
    passed = sum(RESULTS)
    print(f"{passed} passed, {len(RESULTS) - passed} failed")
    sys.exit(0 if passed == len(RESULTS) else 1)


if __name__ == "__main__":
    main()
