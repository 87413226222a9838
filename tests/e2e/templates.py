#!/usr/bin/env python3
"""Every `wasmgate new` template, from a fresh temporary directory, as a newcomer would use it:
`wasmgate new LANG NAME`, the toolchain its README names (installed when missing, through
modules/toolchains.sh, the commands modules/build.sh uses), `./build.sh`, then:

- `wasmgate run NAME.wasm --query name=Ada` prints its JSON greeting;
- one gateway serves every built module: GET ?name=Ada is 200 with {"greeting": "hello, Ada"},
  POST {"name": "Grace"} is 201 with "hello, Grace", a body that is not JSON is 400 with an
  "error"; each answer is application/json with Cache-Control: no-store and nosniff; the
  gateway's log has the function's own line ("greeted Ada"). The `wat` template, which
  parses no JSON, answers the query, echoes a JSON object (201) and refuses anything else (400).

A toolchain that cannot be installed is reported as SKIPPED, with why, and counts as a
failure under CI. Ends with "N passed, M failed, K skipped"; exits 1 on any failure.

    python3 tests/e2e/templates.py [LANG ...]      (default: every template)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "loadtest"))
from common import BIN, Gateway, build_release  # noqa: E402

TOOLCHAINS = os.path.join(ROOT, "modules", "toolchains.sh")
# Each template, and the toolchain its README installs (a modules/toolchains.sh function).
TEMPLATES = {
    "rust": "need_rust wasm32-wasip1",
    "go": "need_go",
    "c": "need_c",
    "assemblyscript": "need_node",
    "wat": "need_wat",
    "rust-component": "need_rust wasm32-wasip2",
    "python": "need_componentize_py",
    "javascript": "need_node",
    "rust-service": "need_rust wasm32-wasip2",
}
BUILD_TIMEOUT_S = 900
RESULTS = {"passed": 0, "failed": 0, "skipped": 0}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f": {detail}"), flush=True)


def skip(name, why):
    RESULTS["skipped"] += 1
    print(f"SKIPPED {name}: {why}", flush=True)


def shell(script, cwd, env=None):
    """Runs `script` in bash with modules/toolchains.sh sourced; returns (ok, output)."""
    done = subprocess.run(["bash", "-c", f"set -euo pipefail; source {TOOLCHAINS}; {script}"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    return done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def request(port, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=body.encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def build(lang, work, env):
    """`wasmgate new` then the toolchain and ./build.sh; returns the module's path or None."""
    name = f"tpl-{lang}"
    made = subprocess.run([BIN, "new", lang, name], cwd=work, capture_output=True, text=True)
    check(f"{lang}: wasmgate new", made.returncode == 0 and os.path.isfile(
        os.path.join(work, name, "README.md")), made.stdout + made.stderr)
    project = os.path.join(work, name)
    readme = open(os.path.join(project, "README.md")).read()
    check(f"{lang}: its README gives the install and build commands",
          "## Toolchain" in readme and "./build.sh" in readme and "{{" not in readme)
    installed, out = shell(TEMPLATES[lang], project, env)
    if not installed:
        skip(f"{lang}: build", f"its toolchain cannot be installed here:\n{out}")
        return None
    built, out = shell(f"{TEMPLATES[lang]}; ./build.sh", project, env)
    module = os.path.join(project, f"{name}.wasm")
    check(f"{lang}: ./build.sh builds {name}.wasm", built and os.path.isfile(module), out)
    return module if built and os.path.isfile(module) else None


def check_run(lang, module, work):
    done = subprocess.run([BIN, "run", module, "--query", "name=Ada"], cwd=work,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    expected = '"query":"name=Ada"' if lang == "wat" else "hello, Ada"
    check(f"{lang}: wasmgate run answers", done.returncode == 0 and expected in done.stdout,
          done.stdout + done.stderr)


def check_served(lang, port, log_path):
    path = f"/tpl-{lang}"
    status, headers, body = request(port, "GET", f"{path}?name=Ada")
    headers = {k.lower(): v for k, v in headers.items()}
    json_head = (headers.get("content-type") == "application/json"
                 and headers.get("cache-control") == "no-store"
                 and headers.get("x-content-type-options") == "nosniff")
    if lang == "wat":
        check(f"{lang}: GET answers the query", status == 200 and json.loads(body) == {"query": "name=Ada"}
              and json_head, f"{status} {headers} {body}")
        status, _, body = request(port, "POST", path, '{"name": "Grace"}')
        check(f"{lang}: POST echoes a JSON object, 201", status == 201 and json.loads(body) == {"name": "Grace"},
              f"{status} {body}")
    else:
        check(f"{lang}: GET ?name=Ada is 200 with its JSON, status and headers",
              status == 200 and json.loads(body) == {"greeting": "hello, Ada"} and json_head,
              f"{status} {headers} {body}")
        status, _, body = request(port, "POST", path, '{"name": "Grace"}')
        check(f"{lang}: POST a JSON body is 201", status == 201 and json.loads(body) == {"greeting": "hello, Grace"},
              f"{status} {body}")
    status, _, body = request(port, "POST", path, "not json")
    check(f"{lang}: a body that is not JSON is 400 with an error",
          status == 400 and "error" in json.loads(body), f"{status} {body}")
    if lang != "wat":
        log = open(log_path, errors="replace").read()
        check(f"{lang}: its log line reaches the gateway's log", f"[tpl-{lang}] greeted Ada" in log, log[-2000:])


def main():
    langs = sys.argv[1:] or list(TEMPLATES)
    build_release()
    work = tempfile.mkdtemp(prefix="wasmgate-templates-")
    env = dict(os.environ)
    # The Rust templates share one target directory, so their common crates build once.
    env["CARGO_TARGET_DIR"] = os.path.join(work, "cargo-target")
    modules = os.path.join(work, "modules")
    os.makedirs(modules)
    try:
        built = {}
        for lang in langs:
            t0 = time.monotonic()
            module = build(lang, work, env)
            print(f"     {lang}: {time.monotonic() - t0:.0f} s", flush=True)
            if module:
                check_run(lang, module, work)
                shutil.copy(module, modules)
                built[lang] = module
        if built:
            # The cache `wasmgate run` filled (its default, in the directory it ran in).
            gateway = Gateway(modules, os.path.join(work, ".wasmgate-cache"))
            log_path = os.path.join(work, "gateway.log")
            gateway.start(log_path)
            try:
                for lang in built:
                    check_served(lang, gateway.port, log_path)
            finally:
                gateway.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed, {RESULTS['skipped']} skipped")
    failed = RESULTS["failed"] or (RESULTS["skipped"] and os.environ.get("CI"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
