#!/usr/bin/env python3
"""Checks the deployment files. deploy/k8s: every core manifest against the Kubernetes API schema (strict:
unknown fields are errors), the PodMonitor and the Kustomization for the fields their
controllers require, the references between them (ports, names, selectors), and the
ConfigMap's wasmgate.toml by wasmgate itself. The overlays (deploy/k8s/registry: modules from
an OCI registry, the HPA on requests in flight through prometheus-adapter;
deploy/k8s/configmap-modules: modules from a ConfigMap volume; deploy/k8s/redis: the
key-value stores on an in-cluster Valkey; deploy/k8s/tls: TLS with a cert-manager
Certificate mounted as the pair) are rendered by applying
their JSON 6902 patches to the base, as kustomize does, and the results are checked the same
way, plus what each mode needs. deploy/systemd: `systemd-analyze verify`
with the unit pointed at the built binary. Dockerfile: its stages, the precompile step and
a non-root user (no Docker engine runs here to build it). deploy/envoy: the h2c upstream
example's structure (Debian ships no Envoy to run it). Installs kubernetes-validate
and jsonpatch (PyPI) when missing. Ends with "N passed, M failed".
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
        import jsonpatch  # noqa: F401
        import kubernetes_validate  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "kubernetes-validate", "jsonpatch"],
                       check=True)


def validate_strict(name, doc):
    """Checks one object against the Kubernetes API schema, unknown fields being errors."""
    import yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(doc, f)
    try:
        r = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBERNETES_VERSION,
                            f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    check(f"{name} is a valid Kubernetes {KUBERNETES_VERSION} object (strict)", r.returncode == 0, r.stdout + r.stderr)


def render(overlay, base):
    """The base's objects with the overlay's JSON 6902 patches applied, plus its own resources."""
    import jsonpatch
    import yaml

    root = os.path.join(K8S, overlay)
    kust = yaml.safe_load(open(os.path.join(root, "kustomization.yaml")))
    objects = {(d["kind"], d["metadata"]["name"]): d for d in base}
    for resource in kust["resources"]:
        if resource != "..":
            doc = yaml.safe_load(open(os.path.join(root, resource)))
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    for patch in kust.get("patches", []):
        target = (patch["target"]["kind"], patch["target"]["name"])
        ops = yaml.safe_load(open(os.path.join(root, patch["path"])))
        objects[target] = jsonpatch.apply_patch(objects[target], ops)
    return objects


def wasmgate_accepts(name, toml_text):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "wasmgate.toml")
        open(path, "w").write(toml_text)
        os.makedirs(os.path.join(tmp, "modules"))
        r = subprocess.run([os.path.join(ROOT, "target", "release", "wasmgate"), "compile", "--config", path,
                            "--modules", os.path.join(tmp, "modules"), "--cache-dir", os.path.join(tmp, "cache")],
                           capture_output=True, text=True)
        check(f"wasmgate accepts the {name} configuration", r.returncode == 0, r.stdout + r.stderr)


def mounts(objects):
    """Where the wasmgate container mounts each volume, and the volumes by name."""
    spec = objects[("Deployment", "wasmgate")]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    return {m["mountPath"]: m["name"] for m in container["volumeMounts"]}, {v["name"]: v for v in spec["volumes"]}


def check_registry_mode(base):
    objects = render("registry", base)
    for (kind, name), doc in sorted(objects.items()):
        if kind != "PodMonitor":
            validate_strict(f"registry mode: {kind} {name}", doc)
    toml_text = objects[("ConfigMap", "wasmgate-config")]["data"]["wasmgate.toml"]
    conf = tomllib.loads(toml_text)
    wasmgate_accepts("registry mode", toml_text)
    sources = [m["source"] for m in conf.get("modules", {}).values() if "source" in m]
    check("registry mode: the config lists OCI sources", sources and all(s.startswith("oci://") for s in sources),
          sources)
    at, volumes = mounts(objects)
    cache = volumes.get(at.get(conf["cache_dir"]), {})
    check("registry mode: the cache (pulled modules) is an emptyDir, and no volume is shared",
          "emptyDir" in cache and not any("persistentVolumeClaim" in v or "nfs" in v for v in volumes.values()),
          (at, list(volumes)))
    env = objects[("Deployment", "wasmgate")]["spec"]["template"]["spec"]["containers"][0].get("env", [])
    check("registry mode: registry credentials come from a Secret, never inline",
          {e["name"] for e in env} >= {"WASMGATE_OCI_USERNAME", "WASMGATE_OCI_PASSWORD"}
          and all("secretKeyRef" in e.get("valueFrom", {}) for e in env), env)
    metrics = objects[("HorizontalPodAutoscaler", "wasmgate")]["spec"]["metrics"]
    pods = [m["pods"]["metric"]["name"] for m in metrics if m["type"] == "Pods"]
    rules = objects[("ConfigMap", "prometheus-adapter-wasmgate")]["data"]["config.yaml"]
    check("registry mode: the HPA scales on CPU and on a wasmgate metric that prometheus-adapter serves",
          any(m["type"] == "Resource" for m in metrics) and pods and all(f'as: "{p}"' in rules for p in pods),
          (metrics, rules))


def check_configmap_mode(base):
    import base64

    objects = render("configmap-modules", base)
    for (kind, name), doc in sorted(objects.items()):
        if kind != "PodMonitor":
            validate_strict(f"ConfigMap mode: {kind} {name}", doc)
    conf = tomllib.loads(objects[("ConfigMap", "wasmgate-config")]["data"]["wasmgate.toml"])
    at, volumes = mounts(objects)
    modules = volumes.get(at.get(conf["modules_dir"]), {})
    check("ConfigMap mode: the modules directory is the modules ConfigMap's volume",
          modules.get("configMap", {}).get("name") == "wasmgate-modules", (at, list(volumes)))
    data = objects[("ConfigMap", "wasmgate-modules")]["binaryData"]
    check("ConfigMap mode: every entry is NAME.wasm holding WebAssembly",
          data and all(k.endswith(".wasm") and base64.b64decode(v).startswith(b"\0asm") for k, v in data.items()),
          list(data))


def check_redis_mode(base):
    objects = render("redis", base)
    for (kind, name), doc in sorted(objects.items()):
        if kind != "PodMonitor":
            validate_strict(f"Redis mode: {kind} {name}", doc)
    toml_text = objects[("ConfigMap", "wasmgate-config")]["data"]["wasmgate.toml"]
    conf = tomllib.loads(toml_text)
    wasmgate_accepts("Redis mode", toml_text)
    backend = conf.get("kv", {}).get("backend", "")
    check("Redis mode: the stores are the in-cluster Valkey, and the config holds no password",
          backend.startswith("redis://wasmgate-kv:6379") and "@" not in backend, backend)
    service = objects[("Service", "wasmgate-kv")]
    valkey = objects[("StatefulSet", "wasmgate-kv")]["spec"]
    pod = valkey["template"]
    check("Redis mode: the Service selects the Valkey pods",
          service["spec"]["selector"].items() <= pod["metadata"]["labels"].items(), service["spec"]["selector"])
    args = pod["spec"]["containers"][0]["args"]
    check("Redis mode: Valkey keeps an append-only file on a persistent volume",
          "--appendonly" in args and args[args.index("--appendonly") + 1] == "yes"
          and any(m["mountPath"] == "/data" for m in pod["spec"]["containers"][0]["volumeMounts"])
          and valkey["volumeClaimTemplates"], args)

    def secret_of(env, name):
        return next((e["valueFrom"]["secretKeyRef"] for e in env if e["name"] == name), None)

    gateway_env = objects[("Deployment", "wasmgate")]["spec"]["template"]["spec"]["containers"][0]["env"]
    gateway_secret = secret_of(gateway_env, "WASMGATE_KV_PASSWORD")
    valkey_secret = secret_of(pod["spec"]["containers"][0]["env"], "VALKEY_PASSWORD")
    check("Redis mode: wasmgate and Valkey take the password from the same Secret key",
          gateway_secret is not None and gateway_secret == valkey_secret
          and "--requirepass" in args and args[args.index("--requirepass") + 1] == "$(VALKEY_PASSWORD)",
          (gateway_secret, valkey_secret))
    policy = objects[("NetworkPolicy", "wasmgate-kv")]["spec"]
    gateway_labels = objects[("Deployment", "wasmgate")]["spec"]["template"]["metadata"]["labels"]
    allowed = [f["podSelector"]["matchLabels"] for rule in policy["ingress"] for f in rule["from"]]
    check("Redis mode: only wasmgate's pods may reach Valkey",
          policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
          and allowed and all(a.items() <= gateway_labels.items() for a in allowed), policy)


def check_tls_mode(base):
    objects = render("tls", base)
    for (kind, name), doc in sorted(objects.items()):
        if kind not in ("PodMonitor", "Certificate"):
            validate_strict(f"TLS mode: {kind} {name}", doc)
    toml_text = objects[("ConfigMap", "wasmgate-config")]["data"]["wasmgate.toml"]
    conf = tomllib.loads(toml_text)
    wasmgate_accepts("TLS mode", toml_text)
    cert = objects[("Certificate", "wasmgate-tls")]
    spec = cert["spec"]
    check("TLS mode: the Certificate has what cert-manager requires (secretName, issuerRef, a name)",
          cert["apiVersion"] == "cert-manager.io/v1" and spec.get("secretName")
          and spec.get("issuerRef", {}).get("name") and (spec.get("dnsNames") or spec.get("commonName")), spec)
    at, volumes = mounts(objects)
    tls_dir = os.path.dirname(conf.get("tls_cert", ""))
    volume = volumes.get(at.get(tls_dir), {})
    container = objects[("Deployment", "wasmgate")]["spec"]["template"]["spec"]["containers"][0]
    whole = all("subPath" not in m for m in container["volumeMounts"] if m["mountPath"] == tls_dir)
    check("TLS mode: tls_cert and tls_key are the Certificate's Secret, mounted whole (so renewals show)",
          volume.get("secret", {}).get("secretName") == spec.get("secretName") and whole
          and conf.get("tls_cert") == f"{tls_dir}/tls.crt" and conf.get("tls_key") == f"{tls_dir}/tls.key",
          (conf.get("tls_cert"), conf.get("tls_key"), at, volume))
    probes = [container[p]["httpGet"]["port"] for p in ("readinessProbe", "livenessProbe")]
    check("TLS mode: the probes stay on the cleartext admin port", probes == ["admin", "admin"], probes)


def check_envoy():
    import yaml

    doc = yaml.safe_load(open(os.path.join(HERE, "envoy", "envoy.yaml")))
    cluster = doc["static_resources"]["clusters"][0]
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    check("Envoy example: the upstream speaks HTTP/2 in cleartext (explicit http2_protocol_options)",
          "http2_protocol_options" in options["explicit_http_config"] and "transport_socket" not in cluster, options)
    endpoints = [e["endpoint"] for group in cluster["load_assignment"]["endpoints"] for e in group["lb_endpoints"]]
    check("Envoy example: health checks ask each replica's admin port for /readyz",
          cluster["health_checks"][0]["http_health_check"]["path"] == "/readyz"
          and all(e["health_check_config"]["port_value"] == 9180 for e in endpoints), endpoints)


def check_systemd():
    unit = open(os.path.join(HERE, "systemd", "wasmgate.service")).read()
    binary = os.path.join(ROOT, "target", "release", "wasmgate")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "wasmgate.service")
        open(path, "w").write(unit.replace("/usr/local/bin/wasmgate", binary))
        r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
        check("systemd-analyze verify accepts the unit", r.returncode == 0 and not r.stderr.strip(), r.stderr)
    check("the unit drains on SIGTERM and precompiles before start",
          "KillSignal=SIGTERM" in unit and "ExecStartPre=-/usr/local/bin/wasmgate compile" in unit)


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
        validate_strict(f, docs[f])

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
    wasmgate_accepts("ConfigMap's", toml_text)

    base = [docs[f] for f in kust["resources"]]
    check_registry_mode(base)
    check_configmap_mode(base)
    check_redis_mode(base)
    check_tls_mode(base)
    check_envoy()
    check_systemd()
    check_dockerfile()
    passed = sum(RESULTS)
    print(f"{passed} passed, {len(RESULTS) - passed} failed")
    sys.exit(0 if passed == len(RESULTS) else 1)


if __name__ == "__main__":
    main()
