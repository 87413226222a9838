"""Shared by the load-test scripts: build and start wasmgate, install tools, make modules.

Stdlib only. Every server runs on 127.0.0.1 with ephemeral ports, and every load is bounded
in time.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# WASMGATE_BIN runs another build (an older commit's, to show what a change fixed).
BIN = os.environ.get("WASMGATE_BIN") or os.path.join(ROOT, "target", "release", "wasmgate")


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_apt(binary, package):
    """Installs a Debian package when its binary is missing."""
    if shutil.which(binary):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    sh(*sudo, "apt-get", "update", "-qq")
    sh(*sudo, "apt-get", "install", "-y", "-qq", package)


def build_release():
    """Builds the release binaries with the same target selection as ./test.sh, so that the
    dependencies are built once, with one set of features, for both."""
    if os.environ.get("WASMGATE_BIN"):
        return
    sh("cargo", "build", "--release", "--workspace", "--all-targets", "--quiet", cwd=ROOT)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def modules_dir_with_examples(tmp, names):
    """A new `tmp/modules` holding copies of the named example modules from modules/."""
    mods = os.path.join(tmp, "modules")
    os.makedirs(mods)
    for name in names:
        shutil.copy(os.path.join(ROOT, "modules", f"{name}.wasm"), mods)
    return mods


def wat_to_wasm(text, out_path):
    ensure_apt("wat2wasm", "wabt")
    with tempfile.NamedTemporaryFile("w", suffix=".wat", delete=False) as f:
        f.write(text)
    try:
        sh("wat2wasm", f.name, "-o", out_path)
    finally:
        os.unlink(f.name)


def hello_wat(text, extra_functions=0):
    """A hello module answering `text`, padded with `extra_functions` functions of real code."""
    funcs = "".join(
        f"(func $f{i} (param i32) (result i32) (local.get 0) (i32.const {i}) (i32.mul) "
        f"(i32.const 7) (i32.add) (i32.const {i + 1}) (i32.xor))\n"
        for i in range(extra_functions)
    )
    data = text.replace("\\", "\\\\").replace('"', '\\"') + "\\n"
    return f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{data}")
  {funcs}
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const {len(text) + 1}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


class Gateway:
    """A wasmgate process serving `modules_dir` on fresh ports."""

    def __init__(self, modules_dir, cache_dir, extra="", binary=BIN, wrapper=()):
        self.binary = binary
        # A command the process runs under (valgrind, say).
        self.wrapper = list(wrapper)
        self.port, self.admin = free_port(), free_port()
        self.config = os.path.join(os.path.dirname(modules_dir), f"wasmgate-{self.port}.toml")
        with open(self.config, "w") as f:
            f.write(f'listen = "127.0.0.1:{self.port}"\nadmin_listen = "127.0.0.1:{self.admin}"\n'
                    f'modules_dir = "{modules_dir}"\ncache_dir = "{cache_dir}"\n{extra}')
        self.proc = None

    def start(self, log_path=os.devnull):
        """Starts the process; returns seconds until /readyz said 200."""
        t0 = time.monotonic()
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([*self.wrapper, self.binary, "serve", "--config", self.config],
                                     stdout=self.log, stderr=self.log)
        while time.monotonic() - t0 < 120:
            if self.proc.poll() is not None:
                raise RuntimeError("wasmgate exited during start-up")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.002)
        raise RuntimeError("not ready in 120 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def cpu_times(self):
        """The process's CPU seconds so far: (user, system)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def cpu_seconds(self):
        return sum(self.cpu_times())


def wrk(url, seconds, connections=32, threads=1):
    """Runs wrk; returns (requests per second, p50 ms, p99 ms, non-2xx count, requests)."""
    ensure_apt("wrk", "wrk")
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         check=True, capture_output=True, text=True).stdout
    def ms(label):
        for line in out.splitlines():
            parts = line.split()
            if parts[:1] == [label]:
                return to_ms(parts[1])
        return float("nan")
    rps = next(float(l.split()[1]) for l in out.splitlines() if l.startswith("Requests/sec"))
    total = next(int(l.split()[0]) for l in out.splitlines() if "requests in" in l)
    non2xx = next((int(l.split()[-1]) for l in out.splitlines() if "Non-2xx" in l), 0)
    errors = next((l for l in out.splitlines() if "Socket errors" in l), "")
    return rps, ms("50%"), ms("99%"), non2xx, total, errors


def to_ms(text):
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


class Registry:
    """Debian's docker-registry (the CNCF Distribution registry) on a fresh loopback port,
    storing in `workdir`."""

    SERVER = "/usr/bin/docker-registry"

    def __init__(self, workdir, log_level="error"):
        ensure_apt("docker-registry", "docker-registry")
        os.makedirs(workdir, exist_ok=True)
        self.workdir, self.port = workdir, free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.config = os.path.join(workdir, "registry.yml")
        with open(self.config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: {log_level}\nstorage:\n  filesystem:\n"
                    f"    rootdirectory: {workdir}/data\nhttp:\n  addr: {self.host}\n")
        self.proc = None

    def start(self):
        self.log_path = os.path.join(self.workdir, "registry.log")
        self.proc = subprocess.Popen([self.SERVER, "serve", self.config], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "ab"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not answer in 30 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def push(self, wasm_path, repo_tag, binary=BIN):
        """`wasmgate push`es a module file; returns the manifest digest it printed."""
        out = subprocess.run([binary, "push", wasm_path, f"oci://{self.host}/{repo_tag}"],
                             check=True, capture_output=True, text=True).stdout
        return out.strip()


# What deploy/haproxy/haproxy.cfg retries with; without it, no request is retried.
HAPROXY_RETRIES = """    retries 3
    option redispatch
    retry-on conn-failure empty-response response-timeout
"""


def start_haproxy(replicas, tmp, retries=True, h2=False):
    """HAProxy (deploy/haproxy/haproxy.cfg) in front of `replicas`, health-checking their
    /readyz, with or without its retries, speaking HTTP/1.1 to them or, with `h2`, HTTP/2
    (`proto h2`, cleartext with prior knowledge); returns (process, listening port)."""
    ensure_apt("haproxy", "haproxy")
    port = free_port()
    proto = " proto h2" if h2 else ""
    servers = "\n".join(f"    server r{i} 127.0.0.1:{r.port} check port {r.admin}{proto}"
                        for i, r in enumerate(replicas))
    template = open(os.path.join(ROOT, "deploy", "haproxy", "haproxy.cfg")).read()
    if not retries:
        assert HAPROXY_RETRIES in template, "deploy/haproxy/haproxy.cfg changed its retries"
        template = template.replace(HAPROXY_RETRIES, "    retries 0\n")
    cfg = os.path.join(tmp, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(template.replace("{{LISTEN_PORT}}", str(port)).replace("{{SERVERS}}", servers))
    proc = subprocess.Popen(["haproxy", "-f", cfg, "-db"], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "haproxy.log"), "wb"))
    return proc, port


def wrk_failures(out):
    """From wrk's report: (requests, non-2xx responses, socket errors)."""
    total = int(m.group(1)) if (m := re.search(r"(\d+) requests in", out)) else 0
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in socket_errors.groups()) if socket_errors else 0
    return total, non2xx, errors
