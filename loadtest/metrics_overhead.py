#!/usr/bin/env python3
"""What recording metrics costs: hello throughput with metrics on and off.

Two gateways (identical but for `metrics = false`) serve hello; wrk (-t1 -c32, 8 s) drives
them in alternation, three rounds each, so machine noise hits both alike. Prints req/s per
round and the ratio of the means. Run: python3 loadtest/metrics_overhead.py
"""
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, Gateway, build_release, wrk  # noqa: E402

ROUNDS, SECONDS = 3, 8


def main():
    build_release()
    tmp = tempfile.mkdtemp(prefix="wasmgate-metrics-")
    gateways = {}
    try:
        for label, extra in (("metrics on", ""), ("metrics off", "metrics = false\n")):
            mods = os.path.join(tmp, label.replace(" ", "_"), "modules")
            os.makedirs(mods)
            shutil.copy(os.path.join(ROOT, "modules", "hello.wasm"), mods)
            gw = Gateway(mods, os.path.join(os.path.dirname(mods), "cache"), extra)
            gw.start()
            gateways[label] = gw
            wrk(f"http://127.0.0.1:{gw.port}/hello", 2)  # warm-up
        results = {label: [] for label in gateways}
        for _ in range(ROUNDS):
            for label, gw in gateways.items():
                rps = wrk(f"http://127.0.0.1:{gw.port}/hello", SECONDS)[0]
                results[label].append(rps)
                print(f"{label}: {rps:.0f} req/s", flush=True)
        on, off = (statistics.mean(results[k]) for k in ("metrics on", "metrics off"))
        print(f"mean req/s: metrics on {on:.0f}, off {off:.0f}; on/off = {on / off:.3f} "
              f"({(1 - on / off) * 100:+.1f}% cost)")
    finally:
        for gw in gateways.values():
            gw.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
