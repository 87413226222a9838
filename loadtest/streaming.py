#!/usr/bin/env python3
"""Streaming CGI under load: time to first byte, the gateway's memory while many clients
read big streams slowly, and hello throughput beside a baseline binary, in one run.

1. Time to first byte: the `slowlines` fixture writes a line every 100 ms for 2 s; 50
   requests (10 at a time) measure the time from sending the request to the first body
   byte, p50 and p99, against the target of `stream_after_ms` + 30 ms.
2. Memory: N clients (default 100) each read a stream of M MiB (default 100) from the
   `export` example at R MiB/s (default 1); the gateway's resident memory is sampled
   throughout, and its growth over the idle gateway is reported. The same export is then
   served buffered (`stream_after_bytes` above the stream's size, which is what a
   gateway without streaming does) to a few clients, to show what it costs.
3. Throughput: hello at 32 connections (wrk), the current binary and `--baseline` (an
   older commit's binary) in alternating rounds, beside the bare hyper reference.

Run: python3 loadtest/streaming.py [--baseline /tmp/wasmgate-base] [--clients 100]
     [--mib 100] [--rate-mib 1] [--buffered-clients 4]
"""
import argparse
import asyncio
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, Gateway, build_release, modules_dir_with_examples  # noqa: E402
from compare import hello_rounds  # noqa: E402
from throughput import rss_mib  # noqa: E402

SLOWLINES = os.path.join(ROOT, "tests", "fixtures", "slowlines.wat")
STREAM_AFTER_MS = 50
TTFB_REQUESTS = 50
TTFB_CONCURRENCY = 10
BYTES_PER_ROW = 23  # what export.wasm writes per row, on average
READ_BYTES = 64 * 1024
RSS_SAMPLE_S = 0.25


async def first_byte(port, path):
    """Seconds from sending GET `path` to the first byte of its body, then reads the rest."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += await more(reader, path)
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        sys.exit(f"{path}: {head[:60]!r}")
    # Chunked: the first chunk's size line, then its data.
    while b"\r\n" not in body or len(body.split(b"\r\n", 1)[1]) == 0:
        body += await more(reader, path)
    took = time.monotonic() - t0
    while await reader.read(READ_BYTES):
        pass
    writer.close()
    return took


async def more(reader, path):
    data = await reader.read(READ_BYTES)
    if not data:
        sys.exit(f"{path}: the connection ended before the first byte of the body")
    return data


async def ttfb_samples(port):
    gate = asyncio.Semaphore(TTFB_CONCURRENCY)

    async def one():
        async with gate:
            return await first_byte(port, "/slowlines")

    return await asyncio.gather(*(one() for _ in range(TTFB_REQUESTS)))


async def slow_reader(port, path, rate_bytes):
    """Reads GET `path` to its end at about `rate_bytes` per second; returns bytes read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=READ_BYTES)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    t0, total = time.monotonic(), 0
    while True:
        data = await reader.read(READ_BYTES)
        if not data:
            break
        total += len(data)
        ahead = total / rate_bytes - (time.monotonic() - t0)
        if ahead > 0:
            await asyncio.sleep(ahead)
    writer.close()
    return total


async def memory_under(gw, clients, path, rate_bytes):
    """Peak resident-memory growth (MiB) while `clients` slow readers read `path`."""
    base = rss_mib(gw.proc.pid)
    peak = base
    readers = asyncio.gather(*(slow_reader(gw.port, path, rate_bytes) for _ in range(clients)))
    while not readers.done():
        peak = max(peak, rss_mib(gw.proc.pid))
        await asyncio.sleep(RSS_SAMPLE_S)
    got = await readers
    return peak - base, min(got), max(got)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", help="an older wasmgate binary for the throughput rounds")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--mib", type=int, default=100, help="MiB each streaming client reads")
    parser.add_argument("--rate-mib", type=float, default=1.0, help="MiB/s each client reads")
    parser.add_argument("--buffered-clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    build_release()
    rows = args.mib * (1 << 20) // BYTES_PER_ROW
    rate = int(args.rate_mib * (1 << 20))
    stream_s = args.mib / args.rate_mib
    with tempfile.TemporaryDirectory() as tmp:
        mods = modules_dir_with_examples(tmp, ["export"])
        os.system(f"wat2wasm {SLOWLINES} -o {os.path.join(mods, 'slowlines.wasm')}")
        os.link(os.path.join(mods, "export.wasm"), os.path.join(mods, "buffered.wasm"))
        cap = 2 * args.mib << 20
        deadline = int(stream_s * 3 * 1000)
        slots = max(64, 2 * args.clients)
        extra = (f"max_instances = {slots}\n[limits]\nmax_concurrency = {slots}\n"
                 f"stream_after_ms = {STREAM_AFTER_MS}\n"
                 f"[modules.export]\nmax_output_bytes = {cap}\ntimeout_ms = {deadline}\n"
                 f"[modules.buffered]\nmax_output_bytes = {cap}\ntimeout_ms = {deadline}\n"
                 f"stream_after_bytes = {min(cap, 1 << 30)}\nstream_after_ms = {deadline}\n")
        gw = Gateway(mods, os.path.join(tmp, "cache"), extra)
        gw.start()
        try:
            ttfb = asyncio.run(ttfb_samples(gw.port))
            idle = rss_mib(gw.proc.pid)
            print(f"streaming: {args.clients} clients x {args.mib} MiB at {args.rate_mib} MiB/s "
                  f"(about {stream_s:.0f} s) ...", flush=True)
            grown, least, most = asyncio.run(memory_under(gw, args.clients, f"/export?rows={rows}", rate))
            print(f"buffered: {args.buffered_clients} clients x {args.mib} MiB ...", flush=True)
            grown_buffered, _, _ = asyncio.run(
                memory_under(gw, args.buffered_clients, f"/buffered?rows={rows}", rate))
        finally:
            gw.stop()
        rates = hello_rounds(args.baseline, args.rounds, args.seconds, 32, tmp, report=lambda line: None)
    target = STREAM_AFTER_MS + 30
    print(f"\ntime to first byte, slowlines (a line every 100 ms), {TTFB_REQUESTS} requests, "
          f"{TTFB_CONCURRENCY} at a time:")
    print(f"  p50 {pct(ttfb, 0.5) * 1000:7.1f} ms   p99 {pct(ttfb, 0.99) * 1000:7.1f} ms   "
          f"target p99 < {target} ms (stream_after_ms + 30)")
    print(f"\nresident memory, idle gateway {idle:.0f} MiB:")
    print(f"  streamed: {args.clients} clients x {args.mib} MiB at {args.rate_mib} MiB/s: "
          f"+{grown:.1f} MiB peak ({grown / args.clients:.2f} MiB per client; "
          f"each read {least / 2**20:.0f}-{most / 2**20:.0f} MiB); target < 64 MiB")
    print(f"  buffered: {args.buffered_clients} clients x {args.mib} MiB: +{grown_buffered:.1f} MiB peak "
          f"({grown_buffered / args.buffered_clients:.1f} MiB per client)")
    print(f"\nhello, wrk -t1 -c32, medians of {args.rounds} rounds of {args.seconds} s:")
    for label, value in rates.items():
        print(f"  {label:<9} {value:9.0f} req/s  ({value / rates['reference']:.3f} x reference)")
    if "baseline" in rates:
        print(f"  current / baseline: {rates['current'] / rates['baseline']:.3f}")


if __name__ == "__main__":
    main()
