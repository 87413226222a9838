#!/usr/bin/env python3
"""Where a hello request's server CPU goes, in µs per request and by stage of the pipeline.

Starts wasmgate (release build) serving hello, drives it with `wrk -t1 -c32`, records the
process for a few seconds with `perf record -e cpu-clock --call-graph dwarf` (this machine
has no hardware counters), and files every sample under the first stage of STAGES that
any frame of its call stack matches (a stack under the store's drop counts as teardown
even though it is also under the handler). Samples are turned into µs with the requests
served during the recording, read from the gateway's own `wasmgate_requests_total`.

Run: python3 loadtest/profile.py [--serve-threads N] [--seconds S]

Needs perf (Debian's linux-perf, installed when missing) and wrk. The recording adds some
cost of its own, so the total reads a little above loadtest/cpu_per_request.sh's figure;
what it is for is the split.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, Gateway, build_release, ensure_apt  # noqa: E402

# None: wasmgate's default (a serving thread per core).
SERVE_THREADS = int(sys.argv[sys.argv.index("--serve-threads") + 1]) if "--serve-threads" in sys.argv else None
SECONDS = int(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 5
SAMPLE_HZ = 1000
WARM_UP_SECONDS = 2

# (stage, pattern): the first stage whose pattern some frame of a stack matches is the
# stack's. Order matters where stages nest: the guest's teardown, instantiation and call sit
# inside the handler, and the handler inside hyper's dispatch.
STAGES = [
    ("guest: store teardown (slot reset)", r"drop_in_place<wasmtime::runtime::store::Store(Inner)?<|StoreOpaque as core::ops::drop::Drop"),
    ("guest: instantiate", r"instantiate_async|pre_instantiate_raw"),
    ("guest: call", r"call_async|wasmtime_fiber_start"),
    ("guest: Store::new", r"wasmtime::runtime::store::Store<T>::new"),
    ("cgi: environment", r"build_env"),
    ("cgi: parse output", r"parse_output"),
    ("metrics", r"metrics::|metrics_util"),
    ("request body", r"read_limited|read_body"),
    ("guest: other wasmtime work", r"wasmtime::|wasmtime_"),
    ("handler: the rest", r"wasmgate::invoke::invoke|PublicService::run|PublicService::handle"),
    ("kernel: send (writev)", r"writev"),
    ("kernel: receive", r"__libc_recv"),
    ("hyper: parse", r"Http1Transaction>::parse"),
    ("hyper: encode", r"Http1Transaction>::encode|proto::h1::encode"),
    ("hyper: the rest", r"hyper::"),
    ("tokio: epoll", r"epoll_wait"),
    ("tokio: park", r"park"),
    ("tokio: the rest", r"tokio::"),
]
STAGE_PATTERNS = [(stage, re.compile(pattern)) for stage, pattern in STAGES]


def requests_total(admin_port):
    """The sum of wasmgate_requests_total over every series."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("wasmgate_requests_total{"))


def stacks(script_output):
    """The frames of each sample in `perf script` output, leaf first."""
    frames = []
    for line in script_output.splitlines():
        if not line.strip():
            if frames:
                yield frames
            frames = []
        elif line[0] in " \t":
            frames.append(line.strip())
    if frames:
        yield frames


def stage_of(frames):
    for stage, pattern in STAGE_PATTERNS:
        if any(pattern.search(frame) for frame in frames):
            return stage
    return "other"


def record(gw, data_path):
    """Runs the load and the recording; returns the requests served while recording."""
    url = f"http://127.0.0.1:{gw.port}/hello"
    load = subprocess.Popen(["wrk", "-t1", "-c32", f"-d{SECONDS + 2 * WARM_UP_SECONDS}s", url],
                            stdout=subprocess.DEVNULL)
    try:
        time.sleep(WARM_UP_SECONDS)
        before = requests_total(gw.admin)
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(SAMPLE_HZ),
                        "--call-graph", "dwarf,32768", "-p", str(gw.proc.pid), "-o", data_path,
                        "--", "sleep", str(SECONDS)], check=True, stderr=subprocess.DEVNULL)
        return requests_total(gw.admin) - before
    finally:
        load.wait()


def main():
    ensure_apt("perf", "linux-perf")
    ensure_apt("wrk", "wrk")
    build_release()
    tmp = tempfile.mkdtemp(prefix="wasmgate-profile-")
    try:
        mods = os.path.join(tmp, "modules")
        os.makedirs(mods)
        shutil.copy(os.path.join(ROOT, "modules", "hello.wasm"), mods)
        threads = "" if SERVE_THREADS is None else f"serve_threads = {SERVE_THREADS}\n"
        gw = Gateway(mods, os.path.join(tmp, "cache"), threads)
        gw.start()
        data_path = os.path.join(tmp, "perf.data")
        try:
            served = record(gw, data_path)
        finally:
            gw.stop()
        # Without inlined frames: resolving them (addr2line per frame) takes perf minutes
        # for a few seconds of samples. The stages' patterns name functions that appear as
        # symbols of their own in a release build (BENCHMARKS.md's split found each stage
        # that a hello request goes through).
        script = subprocess.run(["perf", "script", "--no-inline", "-i", data_path], check=True,
                                capture_output=True, text=True).stdout
        counts = Counter(stage_of(frames) for frames in stacks(script))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    samples = sum(counts.values())
    us_per_sample = 1e6 / SAMPLE_HZ / max(served, 1)
    print(f"serve_threads = {'default' if SERVE_THREADS is None else SERVE_THREADS}: {served:.0f} requests in {SECONDS} s under wrk -t1 -c32, "
          f"{samples} samples, {samples * us_per_sample:.1f} µs of server CPU per request")
    for stage, n in counts.most_common():
        print(f"  {stage:<36} {n * us_per_sample:5.2f} µs  {100 * n / samples:4.1f}%")


if __name__ == "__main__":
    main()
