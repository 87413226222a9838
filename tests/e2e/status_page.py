#!/usr/bin/env python3
"""The admin status page in a real browser.

Installs Debian's Chromium and playwright-core (npm) when missing, serves hello, watenv
and a broken module, keeps traffic flowing, and runs status_page.mjs, which checks the page
shows the modules, their state and live latency, and saves a screenshot
(target/status-page.png). Ends with "N passed, M failed".
"""
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "loadtest"))
from common import Gateway, build_release, ensure_apt, modules_dir_with_examples  # noqa: E402

SCREENSHOT = os.path.join(ROOT, "target", "status-page.png")


def main():
    ensure_apt("chromium", "chromium")
    if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=HERE, check=True)
    build_release()
    tmp = tempfile.mkdtemp(prefix="wasmgate-status-")
    mods = modules_dir_with_examples(tmp, ("hello", "watenv", "rsapi"))
    open(os.path.join(mods, "broken.wasm"), "wb").write(b"not a module")
    gw = Gateway(mods, os.path.join(tmp, "cache"))
    gw.start()
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            for path in ("/hello", "/watenv", "/rsapi"):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{gw.port}{path}", timeout=5).read()
                except OSError:
                    pass
            time.sleep(0.01)

    t = threading.Thread(target=traffic)
    t.start()
    try:
        r = subprocess.run(["node", os.path.join(HERE, "status_page.mjs"), f"http://127.0.0.1:{gw.admin}/", SCREENSHOT],
                           timeout=120)
    finally:
        stop.set()
        t.join()
        gw.stop()
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
