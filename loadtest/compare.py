#!/usr/bin/env python3
"""Two wasmgate binaries side by side: the current build against a baseline (an older
commit's release binary), with the bare hyper reference as the yardstick, all in one run.

Each round drives the reference, the baseline and the current binary in turn with the same
wrk load (hello, 32 connections, one wrk thread), so that a noisy neighbour weighs on all
three alike, and the baseline and the current binary swap places every round, so that
neither always runs right after the reference; it prints each round and the medians, and
the current binary's req/s as a ratio to the baseline's and to the reference's. This is how a change that should not cost
throughput (a refactoring, a new feature off the fast path) is checked.

Build a baseline binary once, for example:
    git worktree add /tmp/wg-base <commit> && (cd /tmp/wg-base && cargo build --release) \\
      && cp /tmp/wg-base/target/release/wasmgate /tmp/wasmgate-base

Run: python3 loadtest/compare.py --baseline /tmp/wasmgate-base [--rounds 5] [--seconds 5]

Two configurations of the current build compare the same way: `--baseline-config` and
`--config` add TOML lines to each side's config, and without `--baseline` both sides run
the current binary, for example:
    python3 loadtest/compare.py --baseline-config 'slot_reset = "memset"'
"""
import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, Gateway, build_release, modules_dir_with_examples, wrk  # noqa: E402
from throughput import Reference  # noqa: E402


def hello_rounds(baseline, rounds, seconds, connections, tmp, report=print, configs=("", "")):
    """Drives the reference, `baseline` (a binary, True for the current one with its own
    config, or None to leave it out) and the current build with the same wrk load, `rounds`
    times, the two gateways swapping places every round; `configs` are the TOML lines each
    gateway's config gets (baseline's, current's); `report` gets each round's line. Returns
    each server's median req/s."""
    servers = {}
    for label, binary, config in (("baseline", baseline, configs[0]), ("current", None, configs[1])):
        if label == "baseline" and not binary:
            continue
        own = os.path.join(tmp, f"hello-{label}")
        os.makedirs(own)
        mods = modules_dir_with_examples(own, ["hello"])
        extra = {} if binary in (None, True) else {"binary": binary}
        servers[label] = Gateway(mods, os.path.join(own, "cache"), config + "\n", **extra)
        servers[label].start()
    reference = Reference()
    urls = {"reference": f"http://127.0.0.1:{reference.port}/hello",
            **{label: f"http://127.0.0.1:{gw.port}/hello" for label, gw in servers.items()}}
    rates = {label: [] for label in urls}
    try:
        for url in urls.values():  # warm-up
            wrk(url, 1, connections)
        for round_no in range(1, rounds + 1):
            order = list(urls)
            if round_no % 2 == 0:
                order = order[:1] + order[1:][::-1]
            line = []
            for label in order:
                rps, p50, p99, non2xx, _, errors = wrk(urls[label], seconds, connections)
                if non2xx or errors:
                    sys.exit(f"{label}: {non2xx} non-2xx responses {errors}")
                rates[label].append(rps)
                line.append(f"{label} {rps:9.0f} req/s (p50 {p50:.2f} ms, p99 {p99:.2f} ms)")
            report(f"round {round_no}: " + "; ".join(line))
    finally:
        reference.stop()
        for gw in servers.values():
            gw.stop()
    return {label: statistics.median(r) for label, r in rates.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", help="the baseline wasmgate binary (default: the current one)")
    parser.add_argument("--baseline-config", default="", help="TOML lines for the baseline's config")
    parser.add_argument("--config", default="", help="TOML lines for the current build's config")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    build_release()
    with tempfile.TemporaryDirectory() as tmp:
        median = hello_rounds(args.baseline or True, args.rounds, args.seconds, args.connections, tmp,
                              lambda line: print(line, flush=True), (args.baseline_config, args.config))
    print(f"\nmedians over {args.rounds} rounds of {args.seconds} s, wrk -t1 -c{args.connections}:")
    for label, value in median.items():
        print(f"  {label:<9} {value:9.0f} req/s")
    print(f"current / baseline:  {median['current'] / median['baseline']:.3f}")
    print(f"current / reference: {median['current'] / median['reference']:.3f}")
    print(f"baseline / reference: {median['baseline'] / median['reference']:.3f}")


if __name__ == "__main__":
    main()
