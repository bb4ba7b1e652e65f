#!/usr/bin/env python3
"""Checks deploy/ against the binary it deploys, as far as this machine can
(no Docker engine, no Kubernetes): every YAML parses, each manifest has the
fields its kind needs, names and labels that refer to each other agree,
ports and flags match what `vigil serve` accepts, the grace period covers the
drain, and every metric the rules and the dashboard query is one Vigil exports
(or a recording rule of the rules file).

    scripts/check-deploy.py SOURCE_DIR VIGIL_BINARY
"""
import json
import os
import re
import subprocess
import sys

import yaml

problems = []


def check(ok, message):
    if not ok:
        problems.append(message)
    return ok


def main():
    src, vigil = sys.argv[1], sys.argv[2]
    deploy = os.path.join(src, "deploy")
    help_text = subprocess.run([vigil, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    flags = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text))

    # --- Kubernetes manifests ---
    docs = {}
    kdir = os.path.join(deploy, "kubernetes")
    for name in sorted(os.listdir(kdir)):
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(kdir, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                for field in ("apiVersion", "kind", "metadata"):
                    check(field in doc, f"{name}: no {field}")
                check("name" in doc.get("metadata", {}), f"{name}: metadata has no name")
                docs.setdefault(doc["kind"], []).append((name, doc))
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Secret", "ConfigMap"):
        check(kind in docs, f"deploy/kubernetes has no {kind}")
    if problems:
        return

    _, dep = docs["Deployment"][0]
    spec = dep["spec"]
    labels = spec["template"]["metadata"]["labels"]
    check(spec["selector"]["matchLabels"].items() <= labels.items(), "Deployment: selector does not match its pods")
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports.get("http") == 8000 and ports.get("grpc") == 8001,
          f"Deployment: ports {ports}, the image serves http 8000 and grpc 8001")
    args = c.get("args", [])
    for a in args:
        if a.startswith("--"):
            check(a in flags, f"Deployment: `vigil serve` has no flag {a}")
    check(c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready", "Deployment: readiness is not /v2/health/ready")
    check(c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live", "Deployment: liveness is not /v2/health/live")
    for probe in ("readinessProbe", "livenessProbe"):
        check(c[probe]["httpGet"]["port"] in ports, f"Deployment: {probe} names no container port")
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    sleep_s = float(pre_stop[-1]) if pre_stop[0].endswith("sleep") else 0
    drain_s = float(args[args.index("--shutdown-timeout") + 1]) if "--shutdown-timeout" in args else 30
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace >= sleep_s + drain_s, f"Deployment: grace {grace} s < preStop {sleep_s} s + drain {drain_s} s")
    check(pod["securityContext"].get("runAsNonRoot") is True, "Deployment: not runAsNonRoot")
    # The store URL comes from the Secret.
    env = {e["name"]: e for e in c.get("env", [])}
    store_arg = args[args.index("--store") + 1] if check("--store" in args, "Deployment: no --store") else ""
    var = store_arg[2:-1] if store_arg.startswith("$(") else ""
    ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
    secrets = {d["metadata"]["name"]: d for _, d in docs["Secret"]}
    check(ref.get("name") in secrets, f"Deployment: --store does not come from a Secret of deploy/kubernetes ({ref})")
    if ref.get("name") in secrets:
        data = secrets[ref["name"]].get("stringData", {})
        check(ref.get("key") in data, f"Secret {ref['name']}: no key {ref.get('key')}")
        check(str(data.get(ref.get("key"), "")).startswith("postgres://"), "Secret: the store URL is not postgres://")
    configmaps = {d["metadata"]["name"] for _, d in docs["ConfigMap"]}
    for v in pod.get("volumes", []):
        if "configMap" in v:
            check(v["configMap"]["name"] in configmaps, f"Deployment: volume {v['name']} names an unknown ConfigMap")

    _, svc = docs["Service"][0]
    check(svc["spec"]["selector"].items() <= labels.items(), "Service: selector does not match the pods")
    for p in svc["spec"]["ports"]:
        check(p["targetPort"] in ports or p["targetPort"] in ports.values(), f"Service: targetPort {p['targetPort']}")
    _, pdb = docs["PodDisruptionBudget"][0]
    check(pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), "PDB: selector does not match the pods")
    check(pdb["spec"].get("minAvailable", 0) < spec.get("replicas", 1), "PDB: minAvailable leaves no room to drain")
    _, hpa = docs["HorizontalPodAutoscaler"][0]
    check(hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], "HPA: scales another Deployment")
    hpa_metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]

    # --- Prometheus rules, the adapter, the dashboard: metric names ---
    exported = set()
    for root, _, files in os.walk(os.path.join(src, "src")):
        for f in files:
            if f.endswith(".cc") and not f.endswith("_test.cc"):
                with open(os.path.join(root, f)) as fh:
                    exported |= set(re.findall(r'"((?:vigil|process)_[a-z0-9_]+)"', fh.read()))
    with open(os.path.join(deploy, "prometheus", "vigil-rules.yml")) as f:
        rules = yaml.safe_load(f)
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    known = exported | recorded | {"up"}

    def metrics_in(expr):
        names = set(re.findall(r"\b((?:vigil|process)_[a-z0-9_]+|[a-z_]+:[a-z0-9_:]+)", expr))
        return {re.sub(r"_(bucket|sum|count)$", "", n) if n not in known else n for n in names}

    for g in rules["groups"]:
        for r in g["rules"]:
            for m in metrics_in(r["expr"]):
                check(m in known, f"vigil-rules.yml: {r.get('record') or r.get('alert')} queries unknown {m}")
    _, adapter = docs["ConfigMap"][[d["metadata"]["name"] for _, d in docs["ConfigMap"]].index("adapter-config")]
    adapter_rules = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]
    check(any(r["name"]["as"] == hpa_metric for r in adapter_rules), f"HPA metric {hpa_metric} is not served by the adapter")
    for r in adapter_rules:
        for m in metrics_in(r["seriesQuery"]):
            check(m in recorded, f"adapter: {m} is not a recording rule of vigil-rules.yml")
    with open(os.path.join(deploy, "grafana", "vigil-dashboard.json")) as f:
        dash = json.load(f)
    check(dash.get("uid") and dash.get("title") and dash.get("panels"), "dashboard: no uid, title or panels")
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if isinstance(v.get("query"), dict)]
    check(len(exprs) > 10, "dashboard: fewer than 10 queries")
    for e in exprs:
        for m in metrics_in(e):
            check(m in known, f"dashboard queries unknown {m}")

    # --- Dockerfile ---
    with open(os.path.join(deploy, "Dockerfile")) as f:
        docker = f.read()
    check(docker.count("FROM debian:12") >= 2, "Dockerfile: not a multi-stage Debian 12 build")
    exposed = set(map(int, re.findall(r"^EXPOSE (.*)$", docker, re.M)[0].split()))
    check(exposed == set(ports.values()), f"Dockerfile exposes {exposed}, the Deployment {set(ports.values())}")
    user = re.findall(r"^USER (\S+)$", docker, re.M)
    check(user and user[-1] not in ("root", "0"), "Dockerfile: the last USER is root")
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*?\])$", docker, re.M | re.S).group(1).replace("\\\n", ""))
    for a in entry:
        if a.startswith("--"):
            check(a in flags, f"Dockerfile: `vigil serve` has no flag {a}")
    check(entry[entry.index("--http-port") + 1] == "8000", "Dockerfile: --http-port is not 8000")


if __name__ == "__main__":
    main()
    for p in problems:
        print("deploy: " + p)
    print(f"deploy check: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)
