#!/usr/bin/env python3
"""The admin status page in a real browser.

Installs Debian's Chromium and playwright-core (npm) when missing, then runs
status_page.mjs against two gateways:

- one serving hello, watenv, rsapi, a module that always traps, a broken file and a slow
  module, with a pool of four slots. Before the page is opened it sends 60 requests to
  hello and 10 to the trapping module, so the first paint has lifetime figures to show;
  the script then drives traffic itself and checks the rates, the charts, the
  sparklines, the highlighted states, sorting, filtering and a narrow screen;
- one serving a thousand modules, where the page must render in under 2 s.

Each state's screenshot is saved under target/status-page/. Ends with "N passed, M failed".
"""
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "loadtest"))
from common import Gateway, build_release, ensure_apt, free_port, modules_dir_with_examples, wat_to_wasm  # noqa: E402

SCREENSHOTS = os.path.join(ROOT, "target", "status-page")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
HELLO_REQUESTS = 60
TRAP_REQUESTS = 10
COUNTER_REQUESTS = 3
MANY_MODULES = 1000


def fixture(name, mods, as_name=None):
    with open(os.path.join(FIXTURES, f"{name}.wat")) as f:
        wat_to_wasm(f.read(), os.path.join(mods, f"{as_name or name}.wasm"))


def send(port, path, times):
    for _ in range(times):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read()
        except urllib.error.HTTPError:
            pass


def browse(mode, gw, extra=()):
    return subprocess.run(["node", os.path.join(HERE, "status_page.mjs"), mode,
                           f"http://127.0.0.1:{gw.admin}/", f"http://127.0.0.1:{gw.port}", SCREENSHOTS,
                           *map(str, extra)], timeout=300).returncode


def main():
    ensure_apt("chromium", "chromium")
    if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=HERE, check=True)
    build_release()
    os.makedirs(SCREENSHOTS, exist_ok=True)
    failures = 0
    tmp = tempfile.mkdtemp(prefix="wasmgate-status-")
    try:
        mods = modules_dir_with_examples(os.path.join(tmp, "a"), ("hello", "watenv", "rsapi", "counter"))
        fixture("trap", mods, "crashy")
        fixture("sleepy", mods, "slow")
        open(os.path.join(mods, "broken.wasm"), "wb").write(b"not a module")
        # The counter's store is on a Redis that is not there: every call is unavailable.
        down = f'[kv]\nbackend = "redis://127.0.0.1:{free_port()}"\n[modules.counter]\nkv_stores = ["counts"]\n'
        gw = Gateway(mods, os.path.join(tmp, "a", "cache"),
                     "max_instances = 4\nqueue_timeout_ms = 5000\n[limits]\nmax_concurrency = 4\n" + down)
        gw.start()
        try:
            send(gw.port, "/hello", HELLO_REQUESTS)
            send(gw.port, "/crashy", TRAP_REQUESTS)
            send(gw.port, "/counter/x", COUNTER_REQUESTS)
            failures += browse("main", gw, (HELLO_REQUESTS, COUNTER_REQUESTS)) != 0
        finally:
            gw.stop()

        many = os.path.join(tmp, "b", "modules")
        os.makedirs(many)
        fixture("hello", many)
        for i in range(MANY_MODULES - 1):
            os.link(os.path.join(many, "hello.wasm"), os.path.join(many, f"m{i:04d}.wasm"))
        gw = Gateway(many, os.path.join(tmp, "b", "cache"), "max_instances = 64\n")
        gw.start()
        try:
            send(gw.port, "/hello", 5)
            failures += browse("thousand", gw, (MANY_MODULES,)) != 0
        finally:
            gw.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
