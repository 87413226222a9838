#!/usr/bin/env python3
"""Checks the deployment files. deploy/k8s: every core manifest against the Kubernetes API schema (strict:
unknown fields are errors), the PodMonitor and the Kustomization for the fields their
controllers require, the references between them (ports, names, selectors), and the
ConfigMap's wasmgate.toml by wasmgate itself. deploy/systemd: `systemd-analyze verify`
with the unit pointed at the built binary. Dockerfile: its stages, the precompile step and
a non-root user (no Docker engine runs here to build it). Installs kubernetes-validate
(PyPI) when missing. Ends with "N passed, M failed".
"""
import os
import subprocess
import sys
import tempfile
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
K8S = os.path.join(HERE, "k8s")
KUBERNETES_VERSION = "1.31.0"
CORE = ["configmap.yaml", "deployment.yaml", "service.yaml", "hpa.yaml"]
RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {str(detail)[:500]}"), flush=True)


def ensure_validator():
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "kubernetes-validate"], check=True)


def check_systemd():
    unit = open(os.path.join(HERE, "systemd", "wasmgate.service")).read()
    binary = os.path.join(ROOT, "target", "release", "wasmgate")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "wasmgate.service")
        open(path, "w").write(unit.replace("/usr/local/bin/wasmgate", binary))
        r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
        check("systemd-analyze verify accepts the unit", r.returncode == 0 and not r.stderr.strip(), r.stderr)
    check("the unit drains on SIGTERM and precompiles before start",
          "KillSignal=SIGTERM" in unit and "ExecStartPre=/usr/local/bin/wasmgate compile" in unit)


def check_dockerfile():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    stages = [line.split()[-1] for line in text.splitlines() if line.startswith("FROM ")]
    check("the Dockerfile builds, precompiles, then runs slim", stages == ["build", "precompile", "runtime"], stages)
    check("the image precompiles its modules with wasmgate compile", "wasmgate compile --modules" in text)
    check("the image runs as a non-root user", "USER 10001" in text)


def main():
    ensure_validator()
    import yaml

    docs = {f: yaml.safe_load(open(os.path.join(K8S, f))) for f in sorted(os.listdir(K8S)) if f.endswith(".yaml")}
    for f in CORE:
        r = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBERNETES_VERSION,
                            os.path.join(K8S, f)], capture_output=True, text=True)
        check(f"{f} is a valid Kubernetes {KUBERNETES_VERSION} object (strict)", r.returncode == 0, r.stdout + r.stderr)

    dep, svc, hpa, cm = (docs[f] for f in ("deployment.yaml", "service.yaml", "hpa.yaml", "configmap.yaml"))
    pm, kust = docs["podmonitor.yaml"], docs["kustomization.yaml"]
    check("PodMonitor has the fields the Prometheus Operator requires",
          pm.get("apiVersion") == "monitoring.coreos.com/v1" and pm.get("kind") == "PodMonitor"
          and pm["metadata"].get("name") and pm["spec"]["selector"].get("matchLabels")
          and all("port" in e for e in pm["spec"]["podMetricsEndpoints"]), pm)
    check("the Kustomization lists every manifest",
          sorted(kust["resources"]) == sorted(f for f in docs if f != "kustomization.yaml"), kust["resources"])

    pod = dep["spec"]["template"]
    container = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    labels = pod["metadata"]["labels"]
    check("the Deployment's selector matches its pods", dep["spec"]["selector"]["matchLabels"].items() <= labels.items())
    check("the Service selects the pods and targets a named port",
          svc["spec"]["selector"].items() <= labels.items() and all(p["targetPort"] in ports for p in svc["spec"]["ports"]))
    check("the probes use the admin port's /readyz and /healthz",
          container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
          and container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"})
    check("the PodMonitor scrapes a port the pods have",
          all(e["port"] in ports for e in pm["spec"]["podMetricsEndpoints"])
          and pm["spec"]["selector"]["matchLabels"].items() <= labels.items())
    check("the HPA scales the Deployment", hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
          and hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment")
    sc = container["securityContext"]
    check("the container is non-root with a read-only root filesystem",
          pod["spec"]["securityContext"]["runAsNonRoot"] and sc["readOnlyRootFilesystem"]
          and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"])
    check("resource requests and limits are set", container["resources"]["requests"] and container["resources"]["limits"])

    toml_text = cm["data"]["wasmgate.toml"]
    conf = tomllib.loads(toml_text)
    drain = (conf.get("shutdown_delay_ms", 0) + conf.get("shutdown_grace_ms", 30000)) / 1000
    check(f"terminationGracePeriodSeconds covers the drain ({drain:.0f} s)",
          pod["spec"]["terminationGracePeriodSeconds"] > drain, pod["spec"]["terminationGracePeriodSeconds"])
    check("the admin listener is reachable by probes (not loopback)", conf["admin_listen"].startswith("0.0.0.0"))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "wasmgate.toml")
        open(path, "w").write(toml_text)
        os.makedirs(os.path.join(tmp, "modules"))
        r = subprocess.run([os.path.join(ROOT, "target", "release", "wasmgate"), "compile", "--config", path,
                            "--modules", os.path.join(tmp, "modules"), "--cache-dir", os.path.join(tmp, "cache")],
                           capture_output=True, text=True)
        check("wasmgate accepts the ConfigMap's configuration", r.returncode == 0, r.stdout + r.stderr)

    check_systemd()
    check_dockerfile()
    passed = sum(RESULTS)
    print(f"{passed} passed, {len(RESULTS) - passed} failed")
    sys.exit(0 if passed == len(RESULTS) else 1)


if __name__ == "__main__":
    main()
