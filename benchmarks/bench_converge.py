"""Converge speed: the whole platform's no-op and --check --diff, and the server's first converge to Ready, each
beside `kubectl apply --server-side` of the same objects and beside the community MLflow Helm chart (`helm
upgrade` no-op, `helm install --wait`), alternated in one run; plus a per-task profile.

    python benchmarks/bench_converge.py [--rounds 5] [--root CHECKOUT] [--skip-first] [--helm-chart DIR]

--helm-chart is a local copy of the community-charts `mlflow` chart 1.11.5 (`helm pull community-charts/mlflow
--version 1.11.5 --untar` where the internet is reachable; it is not vendored here). It is installed with our MLflow
image and an external PostgreSQL (our postgresql image, in its own namespace), its other values at their defaults;
its subchart dependencies (Bitnami PostgreSQL/MySQL, MinIO, all disabled by default) are dropped from a temporary
copy, since they cannot be downloaded. Helm itself is built from the Go module proxy into the cache.

--root runs another checkout's playbooks (an older commit, for a before/after profile) on the same cluster; the
results then go to results/converge-<name of that folder>.json. The no-op is `site.yml -i inventories/local` with
one served model (a registered iris model, alias champion). Every ansible-playbook run is profiled by
benchmarks/callback_plugins/converge_profile.py; the profiles of the median no-op and of the median first converge
are saved with the figures.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml
from common import ROOT, kubectl, kubectl_json, save

SERVED = [{"name": "iris", "model": "bench-converge-iris", "alias": "champion", "replicas": 1}]
TRACKING = "http://127.0.0.1:30500"
COPY_NS = "bench-kubectl"  # where kubectl applies the same objects
FIRST_ROLE_NS, FIRST_KUBECTL_NS = "bench-first-role", "bench-first-kubectl"
HELM_VERSION = "v3.21.4"  # the helm.sh/helm/v3 version the Go module proxy here serves and approves (not v3.22.0)
HELM = Path(os.environ.get("MLP_CACHE", "/var/cache/mlplatform")) / "helm" / HELM_VERSION / "helm"
HELM_NS, HELM_DB_NS = "bench-helm", "bench-helm-db"


def helm(*args: str) -> str:
    if not HELM.exists():
        HELM.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "install", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"], check=True,
                       env={**os.environ, "GOBIN": str(HELM.parent), "GOFLAGS": "-trimpath"})
    proc = subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def helm_chart(source: Path) -> Path:
    """A temporary copy of the chart without its subchart dependencies (nothing else changed)."""
    copy = Path(tempfile.mkdtemp(prefix="bench-chart-")) / "mlflow"
    shutil.copytree(source, copy)
    chart = yaml.safe_load((copy / "Chart.yaml").read_text())
    assert chart["name"] == "mlflow" and chart["version"] == "1.11.5", f"not the mlflow chart 1.11.5: {chart}"
    chart.pop("dependencies", None)
    (copy / "Chart.yaml").write_text(yaml.safe_dump(chart))
    (copy / "Chart.lock").unlink(missing_ok=True)
    return copy


def helm_database() -> None:
    """The chart's external PostgreSQL: our postgresql image in its own namespace, one database per install."""
    kubectl("create", "namespace", HELM_DB_NS, check=False)
    manifest = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg", "namespace": HELM_DB_NS},
         "stringData": {"password": "bench-password"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pg", "namespace": HELM_DB_NS},
         "spec": {"selector": {"app": "pg"}, "ports": [{"port": 5432}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pg", "namespace": HELM_DB_NS},
         "spec": {"selector": {"matchLabels": {"app": "pg"}}, "template": {"metadata": {"labels": {"app": "pg"}},
                                                                            "spec": {
             "securityContext": {"runAsUser": 999, "runAsGroup": 999, "fsGroup": 999},
             "containers": [{"name": "pg", "image": "docker.io/mlplatform/postgresql:15",
                             "imagePullPolicy": "IfNotPresent",
                             "env": [{"name": "POSTGRES_DB", "value": "mlflow"},
                                     {"name": "POSTGRES_USER", "value": "mlflow"},
                                     {"name": "POSTGRES_PASSWORD_FILE", "value": "/run/secrets/db/password"}],
                             "readinessProbe": {"exec": {"command": ["pg_isready", "-h", "127.0.0.1", "-q"]}},
                             "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"},
                                              {"name": "secret", "mountPath": "/run/secrets/db"}]}],
             "volumes": [{"name": "data", "emptyDir": {}}, {"name": "secret", "secret": {"secretName": "pg"}}]}}}}]}
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    kubectl("-n", HELM_DB_NS, "rollout", "status", "deployment/pg", "--timeout=180s")


def helm_values(database: str) -> Path:
    values = {"image": {"repository": "docker.io/mlplatform/mlflow", "tag": "3.17.2", "pullPolicy": "IfNotPresent"},
              "backendStore": {"postgres": {"enabled": True, "host": f"pg.{HELM_DB_NS}.svc.cluster.local",
                                            "port": 5432, "database": database, "user": "mlflow",
                                            "password": "bench-password", "driver": "psycopg2"}}}
    path = Path(tempfile.mkstemp(suffix=".yaml")[1])
    path.write_text(yaml.safe_dump(values))
    return path


def helm_remove() -> None:
    subprocess.run([str(HELM), "uninstall", "mlflow", "-n", HELM_NS, "--wait"], capture_output=True, check=False)
    kubectl("delete", "namespace", HELM_NS, "--wait=true", "--ignore-not-found")


def helm_install(chart: Path, database: str) -> float:
    """Seconds from `helm install --wait` to a Ready server, on a fresh database."""
    for sql in (f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", f"CREATE DATABASE {database} OWNER mlflow"):
        kubectl("-n", HELM_DB_NS, "exec", "deploy/pg", "--", "psql", "-h", "/tmp", "-d", "mlflow", "-c", sql)
    start = time.monotonic()
    helm("install", "mlflow", str(chart), "-n", HELM_NS, "--create-namespace", "-f", str(helm_values(database)),
         "--wait", "--timeout", "300s")
    return time.monotonic() - start


def playbook(root: Path, path: str, extra: dict, inventory: str, check: bool = False) -> tuple[float, dict, str]:
    """(seconds, profile, output) of one ansible-playbook run of the checkout at root."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as variables, \
            tempfile.NamedTemporaryFile(suffix=".json", delete=False) as profile:
        json.dump(extra, variables)
    env = {**os.environ, "ANSIBLE_CONFIG": str(root / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "benchmarks" / "callback_plugins"),
           "ANSIBLE_CALLBACKS_ENABLED": "converge_profile", "CONVERGE_PROFILE": profile.name}
    args = ["ansible-playbook", "-i", inventory, path, "-e", f"@{variables.name}"] + (["--check", "--diff"] if check
                                                                                       else [])
    start = time.monotonic()
    proc = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    os.unlink(variables.name)
    data = json.loads(Path(profile.name).read_text() or "{}")
    os.unlink(profile.name)
    if proc.returncode != 0:
        raise RuntimeError(f"{path} failed:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}")
    return seconds, data, proc.stdout


def changed(output: str) -> int:
    return int(output.rsplit("changed=", 1)[1].split()[0])


def register_model() -> None:
    secret = kubectl_json("-n", "mlflow", "secret", "mlflow-credentials")
    os.environ.update(MLFLOW_TRACKING_URI=TRACKING, MLFLOW_TRACKING_USERNAME="admin",
                      MLFLOW_TRACKING_PASSWORD=base64.b64decode(secret["data"]["admin-password"]).decode())
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    client = mlflow.MlflowClient()
    name = SERVED[0]["model"]
    if client.search_registered_models(f"name = '{name}'"):
        return
    X, y = load_iris(return_X_y=True, as_frame=True)
    mlflow.set_experiment(name)
    with mlflow.start_run():
        mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(X, y), name="model", input_example=X.head(1),
                                 registered_model_name=name)
    client.set_registered_model_alias(name, "champion", 1)


def live_objects(namespaces: list[str]) -> list[dict]:
    """The converged objects the roles applied, as a client would send them, moved to COPY_NS (names prefixed by
    their namespace so that both namespaces' objects fit)."""
    kinds = ("serviceaccounts,secrets,configmaps,services,statefulsets,deployments,networkpolicies,"
             "persistentvolumeclaims,poddisruptionbudgets,ingresses,cronjobs,roles,rolebindings")
    objects = []
    for ns in namespaces:
        for item in kubectl_json("-n", ns, kinds, "-l", "mlplatform.mlflow/object-set")["items"]:
            meta = item["metadata"]
            if item["kind"] == "PersistentVolumeClaim" and meta["name"].startswith("data-"):
                continue
            spec = dict(item.get("spec") or {})
            if item["kind"] == "Service":
                spec = {k: v for k, v in spec.items()
                        if k not in ("clusterIP", "clusterIPs", "externalTrafficPolicy", "healthCheckNodePort")}
                spec["ports"] = [{k: v for k, v in p.items() if k != "nodePort"} for p in spec.get("ports", [])]
                spec["type"] = "ClusterIP"
            if item["kind"] == "PersistentVolumeClaim":
                spec = {k: v for k, v in spec.items() if k in ("accessModes", "resources", "storageClassName")}
            if item["kind"] == "Ingress":
                spec["rules"] = [{**r, "host": f"{ns}-{r.get('host', 'x')}"} for r in spec.get("rules", [])]
            clean = {"apiVersion": item["apiVersion"], "kind": item["kind"],
                     "metadata": {"name": meta["name"], "namespace": COPY_NS, "labels": meta.get("labels", {})}}
            clean.update({k: item[k] for k in ("data", "type") if k in item})
            if spec:
                clean["spec"] = spec
            objects.append(clean)
    names = defaultdict(int)
    for obj in objects:  # two namespaces moved into one: a name both use gets a suffix
        key = (obj["kind"], obj["metadata"]["name"])
        names[key] += 1
        if names[key] > 1:
            obj["metadata"]["name"] += f"-{names[key]}"
    return objects


def kubectl_apply(objects: list[dict], namespace: str = COPY_NS) -> None:
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
    kubectl("apply", "--server-side", "--field-manager=bench", "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))


def timed(fn, *args) -> float:
    start = time.monotonic()
    fn(*args)
    return time.monotonic() - start


def by_kind(profile: dict) -> dict[str, dict]:
    totals: dict[str, dict] = defaultdict(lambda: {"tasks": 0, "seconds": 0.0})
    for task in profile.get("tasks", []):
        totals[task["kind"]]["tasks"] += 1
        totals[task["kind"]]["seconds"] = round(totals[task["kind"]]["seconds"] + task.get("seconds", 0), 3)
    return dict(totals)


def median_run(runs: list[tuple[float, dict, str]]) -> tuple[float, dict, str]:
    return sorted(runs, key=lambda r: r[0])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--skip-first", action="store_true", help="skip the first-converge comparison")
    parser.add_argument("--helm-chart", type=Path, help="a local copy of the community-charts mlflow chart 1.11.5")
    args = parser.parse_args()
    chart = helm_chart(args.helm_chart) if args.helm_chart else None
    root = args.root.resolve()
    site = ("playbooks/site.yml", {"model_serving_models": SERVED}, "inventories/local")

    for ns in (FIRST_ROLE_NS, FIRST_KUBECTL_NS, COPY_NS, HELM_NS):  # what an interrupted run left (CPU requests)
        kubectl("delete", "namespace", ns, "--wait=true", "--ignore-not-found")
    playbook(root, site[0], {}, site[2])  # the platform, converged
    register_model()
    playbook(root, *site)  # and the served model
    kubectl("create", "namespace", COPY_NS, check=False)
    objects = live_objects(["mlflow", "mlflow-serving"])
    kubectl_apply(objects)

    if chart:
        helm_database()
        helm_remove()
        helm_install(chart, "noop")
        helm_noop_values = helm_values("noop")
    noop, check, k_noop, h_noop = [], [], [], []
    for _ in range(args.rounds):  # alternated: role, kubectl, helm, role --check --diff, kubectl, helm
        noop.append(playbook(root, *site))
        k_noop.append(timed(kubectl_apply, objects))
        if chart:
            h_noop.append(timed(helm, "upgrade", "mlflow", str(chart), "-n", HELM_NS, "-f", str(helm_noop_values)))
        check.append(playbook(root, *site, check=True))
        k_noop.append(timed(kubectl_apply, objects))
        if chart:
            h_noop.append(timed(helm, "upgrade", "mlflow", str(chart), "-n", HELM_NS, "-f", str(helm_noop_values)))
    assert all(changed(out) == 0 for _s, _p, out in noop + check), "a no-op run changed something"
    assert all("+++ after" not in out for _s, _p, out in check), "--check --diff printed a diff on a no-op"
    results = {
        "root": str(root), "rounds": args.rounds, "objects": len(objects),
        "noop_site_s": [round(s, 2) for s, _p, _o in noop], "noop_site_median_s": round(median_run(noop)[0], 2),
        "check_diff_site_s": [round(s, 2) for s, _p, _o in check],
        "check_diff_site_median_s": round(median_run(check)[0], 2),
        "kubectl_noop_apply_s": [round(s, 2) for s in k_noop],
        "kubectl_noop_apply_median_s": round(statistics.median(k_noop), 2),
        "noop_profile_by_kind": by_kind(median_run(noop)[1]),
        "noop_profile": median_run(noop)[1],
    }
    results["noop_vs_kubectl"] = round(results["noop_site_median_s"] / results["kubectl_noop_apply_median_s"], 1)
    if chart:
        results.update({"helm_version": HELM_VERSION, "helm_noop_upgrade_s": [round(x, 2) for x in h_noop],
                        "helm_noop_upgrade_median_s": round(statistics.median(h_noop), 2)})
    if not args.skip_first:
        # One side at a time on the node (2 CPUs: requests of three servers at once do not fit): whatever a side
        # created is deleted, and its deletion waited for, before the next side starts.
        kubectl("delete", "namespace", COPY_NS, "--wait=true", "--ignore-not-found")
        if chart:
            helm_remove()
        role_first, kubectl_first, helm_first, server_objects = [], [], [], []
        for index in range(args.rounds):
            role_first.append(playbook(root, "benchmarks/converge.yml", {"bench_namespace": FIRST_ROLE_NS},
                                       "tests/integration/inventory.yml"))
            server_objects = server_objects or live_objects([FIRST_ROLE_NS])  # what the role applied, once
            kubectl("delete", "namespace", FIRST_ROLE_NS, "--wait=true")
            kubectl("create", "namespace", FIRST_KUBECTL_NS)
            kubectl("label", "namespace", FIRST_KUBECTL_NS, "pod-security.kubernetes.io/enforce=restricted")
            start = time.monotonic()
            kubectl_apply(server_objects, FIRST_KUBECTL_NS)
            for workload in ("statefulset/mlflow-db", "deployment/mlflow"):
                kubectl("-n", FIRST_KUBECTL_NS, "rollout", "status", workload, "--timeout=300s")
            kubectl_first.append(time.monotonic() - start)
            kubectl("delete", "namespace", FIRST_KUBECTL_NS, "--wait=true")
            if chart:
                helm_first.append(helm_install(chart, f"first{index}"))
                helm_remove()
        results.update({"first_converge_role_s": [round(s, 1) for s, _p, _o in role_first],
                        "first_converge_role_median_s": round(median_run(role_first)[0], 1),
                        "first_converge_profile": median_run(role_first)[1],
                        "first_apply_kubectl_to_ready_s": [round(s, 1) for s in kubectl_first],
                        "first_apply_kubectl_median_s": round(statistics.median(kubectl_first), 1)})
        if chart:
            results.update({"helm_install_wait_s": [round(x, 1) for x in helm_first],
                            "helm_install_wait_median_s": round(statistics.median(helm_first), 1)})
            results["first_converge_vs_helm"] = round(results["first_converge_role_median_s"]
                                                      / results["helm_install_wait_median_s"], 2)
    kubectl("delete", "namespace", COPY_NS, "--wait=false", "--ignore-not-found")
    if chart:
        helm_remove()
        kubectl("delete", "namespace", HELM_DB_NS, "--wait=false")
    save("converge" if root == ROOT else f"converge-{root.name}", results)
    print(json.dumps({k: v for k, v in results.items() if not k.endswith("profile")}, indent=2))


if __name__ == "__main__":
    main()
