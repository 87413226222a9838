#!/usr/bin/env python3
"""wasmgate against a bare hyper server, side by side (the performance issue's load test).

One command: builds the release binaries; starts `hello-reference` (the same hyper/tokio
setup as wasmgate, answering "hello, world" without WebAssembly) and wasmgate serving
hello; drives each with the same load and prints, per connection count, req/s, p50, p99
and the server's CPU time per request, with wasmgate's ratio to the reference. Then:
throughput with 1, 100 and 1000 modules loaded; resident memory with 1000 modules and
1000 pool slots; and PNG plots of latency percentiles and throughput per load level
(loadtest/results/). wrk (Debian) drives the load; oha (crates.io) too when installed
(`cargo install oha`), as a cross-check at 32 connections, and to run both servers at one
fixed request rate, where their CPU per request compares without the load generator's
own state (busy or idle) weighing on one side.

Run: python3 loadtest/throughput.py [--quick] [--serve-threads N]

`--serve-threads N` runs both servers with N serving threads, each with a runtime of its
own (wasmgate's `serve_threads`; the reference's second argument); the default, 0, is one
multi-threaded runtime. Its plots get a `-threads-N` suffix.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, Gateway, build_release, free_port, hello_wat, wat_to_wasm, wrk  # noqa: E402

QUICK = "--quick" in sys.argv
SERVE_THREADS = int(sys.argv[sys.argv.index("--serve-threads") + 1]) if "--serve-threads" in sys.argv else 0
PLOT_SUFFIX = f"-threads-{SERVE_THREADS}" if SERVE_THREADS else ""
SECONDS = 4 if QUICK else 8
CONNECTIONS = [1, 8, 32, 128]
MODULE_COUNTS = [1, 100, 1000]
# The same-rate comparison runs both servers at this share of wasmgate's top rate.
SAME_RATE_SHARE = 0.9
RESULTS_DIR = os.path.join(ROOT, "loadtest", "results")
REFERENCE_BIN = os.path.join(ROOT, "target", "release", "hello-reference")


class Reference:
    """The bare hyper hello server."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen([REFERENCE_BIN, f"127.0.0.1:{self.port}", str(SERVE_THREADS)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    cpu_seconds = Gateway.cpu_seconds

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def measure(server, path, connections, seconds=SECONDS):
    """wrk against `server`: req/s, p50 ms, p99 ms, CPU µs per request, errors."""
    cpu0 = server.cpu_seconds()
    rps, p50, p99, non2xx, total, errors = wrk(f"http://127.0.0.1:{server.port}{path}", seconds, connections)
    cpu = server.cpu_seconds() - cpu0
    return {"rps": rps, "p50": p50, "p99": p99, "cpu_us": cpu / max(total, 1) * 1e6,
            "non2xx": non2xx, "errors": errors}


def oha(server, path, connections=32, seconds=SECONDS, rate=None):
    """oha against `server` (optionally at a fixed `rate` of requests per second): req/s,
    p50 ms, p99 ms and CPU µs per request; None when oha is not installed or fails."""
    if not shutil.which("oha"):
        return None
    limit = ["-q", str(rate)] if rate else []
    cpu0 = server.cpu_seconds()
    out = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-c", str(connections),
                          *limit, f"http://127.0.0.1:{server.port}{path}"], capture_output=True, text=True)
    cpu = server.cpu_seconds() - cpu0
    if out.returncode != 0:
        return None
    data = json.loads(out.stdout)
    pct = data.get("latencyPercentiles", {})
    total = sum(data.get("statusCodeDistribution", {}).values())
    return {"rps": data["summary"]["requestsPerSec"], "p50": pct.get("p50", 0) * 1000,
            "p99": pct.get("p99", 0) * 1000, "cpu_us": cpu / max(total, 1) * 1e6}


def same_rate(ref, gw, gateway_rps):
    """Both servers at one fixed request rate (a little under what wasmgate sustained at 32
    connections), so the load generator behaves the same for both: at full speed the
    reference keeps the load generator busy, and a busy load generator is cheaper to answer.
    Prints the CPU per request of each and the ratio."""
    rate = int(gateway_rps * SAME_RATE_SHARE)
    e_ref, e_gw = oha(ref, "/hello", rate=rate), oha(gw, "/hello", rate=rate)
    if not (e_ref and e_gw):
        print("same rate: oha failed, not measured")
        return
    print(f"same rate (oha -c32 -q {rate}): reference {e_ref['cpu_us']:.1f} µs CPU/request "
          f"(p99 {e_ref['p99']:.2f} ms), wasmgate {e_gw['cpu_us']:.1f} µs (p99 {e_gw['p99']:.2f} ms); "
          f"cpu ratio {e_gw['cpu_us'] / e_ref['cpu_us']:.2f}")


def gateway_with(tmp, count, extra=""):
    home = tempfile.mkdtemp(prefix=f"m{count}-", dir=tmp)
    mods = os.path.join(home, "modules")
    os.makedirs(mods)
    shutil.copy(os.path.join(ROOT, "modules", "hello.wasm"), mods)
    if count > 1:
        base = os.path.join(tmp, "variant.wasm")
        if not os.path.exists(base):
            wat_to_wasm(hello_wat("another function"), base)
        data = open(base, "rb").read()
        for i in range(count - 1):
            # A custom section makes each file, and so each compiled module, distinct.
            tag = i.to_bytes(4, "little")
            open(os.path.join(mods, f"f{i:04}.wasm"), "wb").write(data + bytes([0, 6, 1, ord("x")]) + tag)
    gw = Gateway(mods, os.path.join(home, "cache"), f"serve_threads = {SERVE_THREADS}\n{extra}")
    ready = gw.start(os.path.join(home, "gateway.log"))
    return gw, ready


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pyplot():
    """matplotlib's pyplot, drawing to files; installed from PyPI when missing."""
    try:
        import matplotlib
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"], check=True)
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, ax, ylabel, title, name):
    """The axes and labels both plots share, then the PNG."""
    ax.set_xscale("log", base=2)
    ax.set_xlabel("connections (wrk -t1)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS_DIR, name), dpi=110)


def plot(rows):
    plt = pyplot()
    os.makedirs(RESULTS_DIR, exist_ok=True)
    conns = [r["c"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("ref", "bare hyper"), ("gw", "wasmgate")):
        ax.plot(conns, [r[key]["rps"] for r in rows], marker="o", label=label)
    save(fig, ax, "requests per second", "hello: throughput vs connections", f"throughput{PLOT_SUFFIX}.png")
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label, style in (("ref", "bare hyper", "--"), ("gw", "wasmgate", "-")):
        ax.plot(conns, [r[key]["p50"] for r in rows], style, marker="o", label=f"{label} p50")
        ax.plot(conns, [r[key]["p99"] for r in rows], style, marker="s", label=f"{label} p99")
    ax.set_yscale("log")
    save(fig, ax, "latency (ms)", "hello: latency percentiles per load level", f"latency{PLOT_SUFFIX}.png")


def main():
    build_release()
    tmp = tempfile.mkdtemp(prefix="wasmgate-throughput-")
    rows = []
    try:
        ref = Reference()
        gw, _ = gateway_with(tmp, 1)
        try:
            for server in (ref, gw):
                wrk(f"http://127.0.0.1:{server.port}/hello", 2)  # warm-up
            print(f"{'conns':>5} | {'reference req/s':>15} {'p50':>7} {'p99':>7} {'cpu/req':>8} | "
                  f"{'wasmgate req/s':>14} {'p50':>7} {'p99':>7} {'cpu/req':>8} | {'req/s':>5} {'cpu':>5}")
            for c in CONNECTIONS:
                r = measure(ref, "/hello", c)
                g = measure(gw, "/hello", c)
                rows.append({"c": c, "ref": r, "gw": g})
                print(f"{c:>5} | {r['rps']:>15.0f} {r['p50']:>6.2f}ms {r['p99']:>6.2f}ms {r['cpu_us']:>6.1f}µs | "
                      f"{g['rps']:>14.0f} {g['p50']:>6.2f}ms {g['p99']:>6.2f}ms {g['cpu_us']:>6.1f}µs | "
                      f"{g['rps'] / r['rps']:>5.2f} {g['cpu_us'] / r['cpu_us']:>5.2f}", flush=True)
                if g["non2xx"] or g["errors"]:
                    print(f"      wasmgate errors: non-2xx {g['non2xx']} {g['errors']}")
            o_ref, o_gw = oha(ref, "/hello"), oha(gw, "/hello")
            if o_ref and o_gw:
                print(f"oha -c32: reference {o_ref['rps']:.0f} req/s p99 {o_ref['p99']:.2f} ms; wasmgate "
                      f"{o_gw['rps']:.0f} req/s p99 {o_gw['p99']:.2f} ms; ratio {o_gw['rps'] / o_ref['rps']:.2f}")
                same_rate(ref, gw, next(r["gw"]["rps"] for r in rows if r["c"] == 32))
            else:
                print("oha: not installed (cargo install oha); the oha cross-check and the same-rate "
                      "CPU comparison were not run")
        finally:
            ref.stop()
            gw.stop()
        plot(rows)
        print(f"plots: {os.path.relpath(RESULTS_DIR, ROOT)}/throughput{PLOT_SUFFIX}.png, latency{PLOT_SUFFIX}.png")

        base = None
        for count in MODULE_COUNTS:
            gw, ready = gateway_with(tmp, count, "max_instances = 1000\n")
            try:
                wrk(f"http://127.0.0.1:{gw.port}/hello", 2)
                m = measure(gw, "/hello", 32)
                base = base or m["rps"]
                rss = rss_mib(gw.proc.pid)
                print(f"{count:>5} modules loaded (ready in {ready:.1f} s): {m['rps']:.0f} req/s "
                      f"({m['rps'] / base:.2f} of 1 module), p99 {m['p99']:.2f} ms, resident {rss:.0f} MiB "
                      f"with 1000 pool slots", flush=True)
            finally:
                gw.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
