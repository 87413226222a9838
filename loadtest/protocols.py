#!/usr/bin/env python3
"""hello over each protocol wasmgate speaks, against HTTP/1.1 in cleartext and against the
bare hyper reference speaking the same protocol, all in one run.

Each round drives, in turn: the reference and wasmgate over HTTP/1.1 at 32 connections
(wrk) and over cleartext HTTP/2 with 32 streams on 4 connections (h2load, Debian's
nghttp2-client), then a TLS wasmgate (its own certificate, made by openssl) over
HTTP/1.1 (wrk) and HTTP/2 by ALPN (h2load). The order rotates every round so that none
always runs after another. It prints each round, the medians, wasmgate's h2c req/s as a
ratio to its HTTP/1.1 req/s (issue 33 asks for 0.9 or more) and each TLS figure as a
ratio to its cleartext one. Then the TLS handshake rate, new sessions against resumed
ones (`openssl s_time -new` and `-reuse`, one client, as many handshakes as it can).

Run: python3 loadtest/protocols.py [--rounds 3] [--seconds 5]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Gateway, build_release, ensure_apt, modules_dir_with_examples, wrk  # noqa: E402
from throughput import Reference  # noqa: E402

CONNECTIONS = 32
H2_CONNECTIONS, H2_STREAMS = 4, 8


def h2load(url, seconds):
    """h2load at 32 streams on 4 connections for `seconds`: (req/s, failed requests)."""
    ensure_apt("h2load", "nghttp2-client")
    out = subprocess.run(["h2load", "-c", str(H2_CONNECTIONS), "-m", str(H2_STREAMS), "-t", "1",
                          "-D", str(seconds), "--warm-up-time", "1", url],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"finished in [^,]+, ([\d.]+) req/s", out).group(1))
    failed = re.search(r"requests: .* (\d+) failed, (\d+) errored", out)
    return rps, int(failed.group(1)) + int(failed.group(2))


def make_cert(workdir):
    """A self-signed certificate and key for 127.0.0.1 (openssl, ECDSA P-256)."""
    cert, key = os.path.join(workdir, "tls.crt"), os.path.join(workdir, "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def handshakes(port, seconds, reuse):
    """TLS handshakes per second of one `openssl s_time` client, each fetching /hello."""
    mode = "-reuse" if reuse else "-new"
    out = subprocess.run(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", mode, "-time", str(seconds),
                          "-www", "/hello/"], capture_output=True, text=True).stdout
    found = re.findall(r"(\d+) connections in (\d+) real seconds", out)
    if not found:
        raise RuntimeError(f"openssl s_time printed no rate:\n{out}")
    count, took = found[-1]
    return int(count) / max(int(took), 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    build_release()
    with tempfile.TemporaryDirectory() as tmp:
        mods = modules_dir_with_examples(tmp, ["hello"])
        cert, key = make_cert(tmp)
        ref = Reference()
        plain = Gateway(mods, os.path.join(tmp, "cache"))
        tls = Gateway(mods, os.path.join(tmp, "cache"), extra=f'tls_cert = "{cert}"\ntls_key = "{key}"\n')
        try:
            plain.start()
            tls.start()
            runs = {
                "reference http/1.1": lambda s: wrk(f"http://127.0.0.1:{ref.port}/", s, CONNECTIONS)[0],
                "reference h2c": lambda s: h2load(f"http://127.0.0.1:{ref.port}/", s)[0],
                "wasmgate http/1.1": lambda s: wrk(f"http://127.0.0.1:{plain.port}/hello", s, CONNECTIONS)[0],
                "wasmgate h2c": lambda s: h2load(f"http://127.0.0.1:{plain.port}/hello", s)[0],
                "wasmgate tls http/1.1": lambda s: wrk(f"https://127.0.0.1:{tls.port}/hello", s, CONNECTIONS)[0],
                "wasmgate tls h2": lambda s: h2load(f"https://127.0.0.1:{tls.port}/hello", s)[0],
            }
            seen = {name: [] for name in runs}
            names = list(runs)
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                line = []
                for name in order:
                    rps = runs[name](args.seconds)
                    seen[name].append(rps)
                    line.append(f"{name} {rps:,.0f}")
                print(f"round {r + 1}: " + "; ".join(line), flush=True)
            med = {name: statistics.median(v) for name, v in seen.items()}
            print("\nmedians (req/s):")
            for name in names:
                print(f"  {name:24} {med[name]:>10,.0f}")
            print(f"\nwasmgate h2c / http/1.1:        {med['wasmgate h2c'] / med['wasmgate http/1.1']:.3f}")
            print(f"reference h2c / http/1.1:       {med['reference h2c'] / med['reference http/1.1']:.3f}")
            print(f"wasmgate tls http/1.1 / clear:  {med['wasmgate tls http/1.1'] / med['wasmgate http/1.1']:.3f}")
            print(f"wasmgate tls h2 / h2c:          {med['wasmgate tls h2'] / med['wasmgate h2c']:.3f}")
            new = handshakes(tls.port, args.seconds, reuse=False)
            resumed = handshakes(tls.port, args.seconds, reuse=True)
            print(f"\nTLS handshakes/s, one openssl s_time client: new {new:,.0f}, resumed {resumed:,.0f} "
                  f"({resumed / new:.2f}x)")
        finally:
            plain.stop()
            tls.stop()
            ref.stop()


if __name__ == "__main__":
    main()
