#!/usr/bin/env python3
"""What following OCI sources costs: 1000 modules, each following its own tag in a real
registry (Debian's docker-registry) at oci_poll_ms = 1000, against the same gateway
without sources, in one run.

Prints, for the gateway with 1000 sources:
- the registry's requests per second (counted from its access log) and per poll;
- the gateway's idle CPU (its own utime + stime over a quiet window), beside the gateway
  without sources;
- hello's req/s under wrk (32 connections), interleaved with the gateway without sources,
  as a ratio.
The push-to-served figures come from deploy/test_fleet.py (a fleet behind HAProxy).

Run: python3 loadtest/sources.py [--modules 1000] [--seconds 10] [--rounds 3]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Gateway, Registry, build_release, hello_wat, wat_to_wasm, wrk  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_POLL_MS = 1000


def tag_everywhere(registry, repo, tags):
    """Puts the manifest of REPO:t0 under every tag in `tags`."""
    url = f"http://{registry.host}/v2/{repo}/manifests/t0"
    req = urllib.request.Request(url, headers={"Accept": OCI_MANIFEST})
    manifest = urllib.request.urlopen(req).read()
    for tag in tags:
        put = urllib.request.Request(f"http://{registry.host}/v2/{repo}/manifests/{tag}", data=manifest,
                                     method="PUT", headers={"Content-Type": OCI_MANIFEST})
        urllib.request.urlopen(put).read()


def registry_requests(registry):
    """Requests the registry answered so far: all of them, and the manifest HEADs."""
    with open(registry.log_path, errors="replace") as f:
        done = [line for line in f if "response completed" in line]
    return len(done), sum(1 for line in done if "method=HEAD" in line)


def idle_cpu(gw, seconds):
    before = gw.cpu_seconds()
    time.sleep(seconds)
    return (gw.cpu_seconds() - before) / seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modules", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    build_release()
    tmp = tempfile.mkdtemp(prefix="wasmgate-sources-")
    registry = Registry(os.path.join(tmp, "registry"), log_level="info")
    registry.start()
    hello = os.path.join(tmp, "hello.wasm")
    wat_to_wasm(hello_wat("hello, world"), hello)
    registry.push(hello, "fns/hello:t0")
    tags = [f"t{i}" for i in range(1, args.modules)]
    tag_everywhere(registry, "fns/hello", tags)
    sources = "".join(f'\n[modules.m{i}]\nsource = "oci://{registry.host}/fns/hello:t{i}"\n'
                      for i in range(args.modules))
    gateways = {}
    for label, extra in (("with sources", f"oci_poll_ms = {OCI_POLL_MS}\n{sources}"), ("without", "")):
        own = os.path.join(tmp, label.replace(" ", "-"))
        mods = os.path.join(own, "modules")
        os.makedirs(mods)
        wat_to_wasm(hello_wat("hello, world"), os.path.join(mods, "hello.wasm"))
        gateways[label] = Gateway(mods, os.path.join(own, "cache"), extra)
        ready = gateways[label].start(os.path.join(own, "gateway.log"))
        print(f"{label}: ready in {ready:.1f} s")
    try:
        served = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{gateways['with sources'].admin}/modules").read())
        ready = sum(1 for m in served if m["state"] == "ready")
        print(f"{ready} of {len(served)} modules ready")
        time.sleep(2)
        total0, heads0 = registry_requests(registry)
        cpu = {label: idle_cpu(gw, args.seconds) for label, gw in gateways.items()}
        total1, heads1 = registry_requests(registry)
        # Both gateways' windows are timed, the registry's count spans both.
        window = args.seconds * len(gateways)
        rate, heads = (total1 - total0) / window, (heads1 - heads0) / window
        polls = args.modules * 1000 / OCI_POLL_MS
        print(f"registry: {rate:.0f} requests/s ({heads:.0f} of them manifest HEADs) for {args.modules} tags "
              f"polled every {OCI_POLL_MS} ms (at most {polls:.0f} polls/s)")
        print(f"idle gateway CPU: {cpu['with sources'] * 100:.1f}% of a core with {args.modules} sources, "
              f"{cpu['without'] * 100:.1f}% without")
        rates = {label: [] for label in gateways}
        for _ in range(args.rounds):
            for label, gw in gateways.items():
                rates[label].append(wrk(f"http://127.0.0.1:{gw.port}/hello", 5)[0])
        med = {label: statistics.median(r) for label, r in rates.items()}
        print(f"hello req/s (wrk -c32, medians of {args.rounds}): {med['with sources']:.0f} with sources, "
              f"{med['without']:.0f} without: {med['with sources'] / med['without']:.3f}x")
    finally:
        for gw in gateways.values():
            gw.stop()
        registry.stop()


if __name__ == "__main__":
    main()
