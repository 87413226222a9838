#!/usr/bin/env python3
"""wasmgate against a real Prometheus, and the Grafana dashboard's queries against it.

Starts wasmgate (hello, watenv and a trapping module, its directory polled) and Prometheus (Debian's package,
installed when missing) on loopback, scraping the admin listener every second; drives
traffic to two modules; then checks that:
- `promtool check metrics` finds nothing wrong with /metrics;
- every expression of config/grafana/wasmgate.json parses (`promtool check rules`);
- every expression returns data through Prometheus's HTTP API;
- the dashboard's p99 latency query returns a finite value for each of the two modules.
Ends with "N passed, M failed"; exits 1 on any failure.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "loadtest"))
from common import Gateway, build_release, ensure_apt, free_port, modules_dir_with_examples, wat_to_wasm  # noqa: E402

DASHBOARD = os.path.join(ROOT, "config", "grafana", "wasmgate.json")
RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(ok)
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {str(detail)[:400]}"), flush=True)


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def dashboard_exprs():
    dash = json.load(open(DASHBOARD))
    exprs = [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            exprs.append((f"variable {var['name']}", var["definition"]))
    return exprs


def concrete(expr):
    """Substitutes Grafana's variables the way an 'All' selection does."""
    return expr.replace("$__rate_interval", "30s").replace("$instance", ".*").replace("$module", ".*")


def query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return json.loads(http_get(url))


def main():
    ensure_apt("promtool", "prometheus")
    build_release()
    tmp = tempfile.mkdtemp(prefix="wasmgate-prometheus-")
    mods = modules_dir_with_examples(tmp, ("hello", "watenv", "counter"))
    # The counter keeps its count in an embedded store; `sneaky`, the same module under a
    # name whose section lists no store, is refused it: the key-value panels get both.
    shutil.copy(os.path.join(mods, "counter.wasm"), os.path.join(mods, "sneaky.wasm"))
    stores = f'[kv]\npath = "{tmp}/kv"\n[modules.counter]\nkv_stores = ["counts"]\n'

    wat_to_wasm(open(os.path.join(ROOT, "tests", "fixtures", "trap.wat")).read(), os.path.join(mods, "crash.wasm"))
    # A polled modules directory, so the module-source panels have a source to show.
    gw = Gateway(mods, os.path.join(tmp, "cache"), 'watch = "poll"\npoll_interval_ms = 500\n' + stores)
    gw.start(os.path.join(tmp, "gateway.log"))

    prom_port = free_port()
    prom_cfg = os.path.join(tmp, "prometheus.yml")
    open(prom_cfg, "w").write(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: wasmgate\n    static_configs:\n      - targets: ['127.0.0.1:{gw.admin}']\n")
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={prom_cfg}", f"--storage.tsdb.path={os.path.join(tmp, 'tsdb')}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "prometheus.log"), "wb"))
    try:
        stop = threading.Event()

        def traffic(path):
            while not stop.is_set():
                try:
                    http_get(f"http://127.0.0.1:{gw.port}{path}")
                except OSError:
                    pass
                time.sleep(0.005)

        threads = [threading.Thread(target=traffic, args=(p,)) for p in ("/hello", "/watenv/x", "/crash", "/counter/x", "/sneaky")]
        for t in threads:
            t.start()
        # Wait for Prometheus to have scraped a good number of times.
        deadline = time.monotonic() + 60
        scraped = 0
        while time.monotonic() < deadline:
            try:
                r = query(prom_port, 'count_over_time(up{job="wasmgate"}[1m])')
                scraped = int(float(r["data"]["result"][0]["value"][1])) if r["data"]["result"] else 0
            except (OSError, ValueError, KeyError, IndexError):
                scraped = 0
            if scraped >= 8:
                break
            time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        check("prometheus scraped wasmgate", scraped >= 8, scraped)

        text = http_get(f"http://127.0.0.1:{gw.admin}/metrics")
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
        check("promtool check metrics is clean", r.returncode == 0, r.stdout + r.stderr)

        exprs = dashboard_exprs()
        rules = os.path.join(tmp, "rules.yml")
        with open(rules, "w") as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, (_, expr) in enumerate(exprs):
                if expr.startswith("label_values("):
                    continue
                f.write(f"      - record: dashboard_expr_{i}\n        expr: {json.dumps(concrete(expr))}\n")
        r = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True)
        check(f"promtool parses every dashboard expression ({len(exprs)})", r.returncode == 0, r.stdout + r.stderr)

        for title, expr in exprs:
            m = re.match(r"label_values\((\w+), (\w+)\)", expr)
            if m:
                url = f"http://127.0.0.1:{prom_port}/api/v1/label/{m.group(2)}/values?match[]={m.group(1)}"
                values = json.loads(http_get(url))["data"]
                check(f"dashboard {title} has values", len(values) > 0, values)
                continue
            r = query(prom_port, concrete(expr))
            ok = r.get("status") == "success" and len(r["data"]["result"]) > 0
            check(f"dashboard query returns data: {title}: {expr[:70]}", ok, r)

        p99 = next(e for t, e in exprs if t.startswith("Latency") and "0.99" in e)
        r = query(prom_port, concrete(p99))
        values = {s["metric"].get("module"): float(s["value"][1]) for s in r["data"]["result"]}
        finite = {m: v for m, v in values.items() if v == v and v not in (float("inf"), float("-inf"))}
        check("the dashboard's p99 latency has a value per module (hello, watenv)",
              "hello" in finite and "watenv" in finite, values)
        check("the p99 latencies are plausible (under 1 s)", all(v < 1 for v in finite.values()), finite)
    finally:
        prom.terminate()
        prom.wait(30)
        gw.stop()
    passed = sum(RESULTS)
    print(f"{passed} passed, {len(RESULTS) - passed} failed")
    sys.exit(0 if passed == len(RESULTS) else 1)


if __name__ == "__main__":
    main()
