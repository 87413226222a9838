#!/usr/bin/env python3
"""A counter function (one kv_increment per request) against hello, on each key-value
backend, with the bare hyper reference as the yardstick, all in one run.

Four servers take the same wrk load (32 connections, one wrk thread) in turn, round after
round, the order rotating so that none always runs after another: the reference, hello
(no store), the counter on the embedded store (every increment on disk before it is
acknowledged) and the counter on Redis over loopback (Debian's redis-server, persisting
nothing). It prints each round, the medians with p50 and p99, each counter's req/s as a
ratio to hello's (issue 32 aims at 0.5 or more), and checks that each counter's final
value accounts for every successful request. Then, with --scaling, hello and the embedded
counter at 1, 8, 32 and 128 connections: how group commit lets concurrent writers share
each fsync instead of waiting in line for their own.

Run: python3 loadtest/kv.py [--rounds 3] [--seconds 5] [--connections 32] [--scaling]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Gateway, build_release, ensure_apt, free_port, modules_dir_with_examples, wat_to_wasm, wrk  # noqa: E402
from throughput import Reference  # noqa: E402

# Increments `hits` of store `counts` by one and prints the new value (or the error code).
COUNTER_WAT = r"""(module
  (import "wasmgate" "kv_open" (func $kv_open (param i32 i32) (result i32)))
  (import "wasmgate" "kv_increment" (func $kv_increment (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "counts")
  (data (i32.const 120) "hits")
  (func $print_i64 (param $v i64)
    (local $p i32)
    (local.set $p (i32.const 340))
    (i32.store8 (local.get $p) (i32.const 10))
    (loop $d
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $d (i64.ne (local.get $v) (i64.const 0))))
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (i32.sub (i32.const 341) (local.get $p)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (local $h i32) (local $r i32)
    (local.set $h (call $kv_open (i32.const 100) (i32.const 6)))
    (if (i32.lt_s (local.get $h) (i32.const 0)) (then (unreachable)))
    (local.set $r (call $kv_increment (local.get $h) (i32.const 120) (i32.const 4) (i64.const 1) (i32.const 64)))
    (if (i32.lt_s (local.get $r) (i32.const 0)) (then (unreachable)))
    (call $print_i64 (i64.load (i32.const 64)))))
"""

STORES = '[modules.counter]\nkv_stores = ["counts"]\n'


class RedisServer:
    """Debian's redis-server on a fresh loopback port, persisting nothing."""

    def __init__(self, workdir):
        ensure_apt("redis-server", "redis-server")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def counter_gateway(tmp, label, kv_table):
    own = os.path.join(tmp, label)
    mods = os.path.join(own, "modules")
    os.makedirs(mods)
    wat_to_wasm(COUNTER_WAT, os.path.join(mods, "counter.wasm"))
    return Gateway(mods, os.path.join(own, "cache"), kv_table + STORES)


def final_count(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/counter", timeout=5) as r:
        return int(r.read())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--scaling", action="store_true", help="also hello and the embedded counter at 1-128 connections")
    args = parser.parse_args()
    build_release()
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(tmp)
        hello_dir = os.path.join(tmp, "hello")
        os.makedirs(hello_dir)
        gateways = {
            "hello": Gateway(modules_dir_with_examples(hello_dir, ["hello"]), os.path.join(hello_dir, "cache")),
            "embedded": counter_gateway(tmp, "embedded", f'[kv]\npath = "{tmp}/kv"\n'),
            "redis": counter_gateway(tmp, "redis", f'[kv]\nbackend = "redis://127.0.0.1:{redis.port}"\n'),
        }
        reference = Reference()
        urls = {"reference": f"http://127.0.0.1:{reference.port}/hello",
                "hello": f"http://127.0.0.1:{gateways['hello'].port}/hello",
                "embedded": f"http://127.0.0.1:{gateways['embedded'].port}/counter",
                "redis": f"http://127.0.0.1:{gateways['redis'].port}/counter"}
        results = {label: [] for label in urls}
        counted = {"embedded": 0, "redis": 0}
        try:
            for gw in gateways.values():
                gw.start()
            for label, url in urls.items():  # warm-up
                _, _, _, non2xx, total, _ = wrk(url, 1, args.connections)
                if label in counted:
                    counted[label] += total - non2xx
            for round_no in range(1, args.rounds + 1):
                order = list(urls)
                order = order[round_no % len(order):] + order[:round_no % len(order)]
                line = []
                for label in order:
                    rps, p50, p99, non2xx, total, errors = wrk(urls[label], args.seconds, args.connections)
                    if non2xx or errors:
                        sys.exit(f"{label}: {non2xx} non-2xx responses {errors}")
                    if label in counted:
                        counted[label] += total
                    results[label].append((rps, p50, p99))
                    line.append(f"{label} {rps:.0f} req/s (p50 {p50:.2f} ms, p99 {p99:.2f} ms)")
                print(f"round {round_no}: " + "; ".join(line), flush=True)
            finals = {label: final_count(gateways[label].port) for label in counted}
            scaling = []
            for connections in (1, 8, 32, 128) if args.scaling else ():
                row = [connections]
                for label in ("hello", "embedded"):
                    rps, p50, p99, non2xx, _, errors = wrk(urls[label], args.seconds, connections)
                    if non2xx or errors:
                        sys.exit(f"{label}: {non2xx} non-2xx responses {errors}")
                    row += [rps, p50, p99]
                scaling.append(row)
        finally:
            reference.stop()
            for gw in gateways.values():
                gw.stop()
            redis.stop()
    print(f"\nmedians over {args.rounds} rounds of {args.seconds} s, wrk -t1 -c{args.connections}:")
    median = {}
    for label, rows in results.items():
        median[label] = [statistics.median(r[i] for r in rows) for i in range(3)]
        rps, p50, p99 = median[label]
        print(f"  {label:<9} {rps:9.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    for label in counted:
        print(f"{label} counter / hello: {median[label][0] / median['hello'][0]:.3f}")
    print(f"hello / reference: {median['hello'][0] / median['reference'][0]:.3f}")
    if scaling:
        print("\nconnections   hello req/s (p50, p99)          embedded counter req/s (p50, p99)   ratio")
        for c, h, h50, h99, e, e50, e99 in scaling:
            print(f"{c:>11}   {h:9.0f} ({h50:5.2f}, {h99:5.2f} ms)   {e:9.0f} ({e50:5.2f}, {e99:5.2f} ms)      {e / h:.3f}")
    for label, final in finals.items():
        # wrk does not count the requests in flight when it stops; the server ran them.
        lost = counted[label] + 1 - final
        print(f"{label}: final count {final}, successful requests wrk saw {counted[label]} + 1")
        if lost > 0:
            sys.exit(f"{label}: {lost} acknowledged increments are missing")


if __name__ == "__main__":
    main()
