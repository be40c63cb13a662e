"""Predictions/s and p50/p99 of one serving pod: the model_serving role's pod versus `mlflow models serve` with
its defaults (1 worker), same image, same model, same CPU limit (1 core), measured with wrk from the node.

Runs are alternated (A, B, A, B, ...) and the median of each side is reported.
"""

from __future__ import annotations

import base64
import json
import os
import re
import statistics
import subprocess
import tempfile
import uuid

from common import kubectl, kubectl_json, run_playbook, save

SERVER_NS, SERVING_NS, NODE_PORT = "bench-mlflow", "bench-serving", 30531
TRACKING = f"http://127.0.0.1:{NODE_PORT}"
ROUNDS, DURATION = 3, "20s"
IMAGE = "docker.io/mlplatform/mlflow:3.17.2"


def server() -> str:
    result = run_playbook("benchmarks/serving_server.yml", {"bench_node_port": NODE_PORT})
    assert result.rc == 0, result.output[-3000:]
    secret = kubectl_json("-n", SERVER_NS, "secret", "mlflow-credentials")
    return base64.b64decode(secret["data"]["admin-password"]).decode()


def register(password: str) -> tuple[str, list]:
    os.environ.update(MLFLOW_TRACKING_URI=TRACKING, MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=password)
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    name = f"bench-{uuid.uuid4().hex[:6]}"
    X, y = load_iris(return_X_y=True, as_frame=True)
    mlflow.set_experiment(name)
    with mlflow.start_run():
        mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(X, y), name="model", input_example=X.head(1),
                                 registered_model_name=name)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", 1)
    return name, json.loads(X.head(1).to_json(orient="split", index=False))


def serve(name: str, password: str, workers: int) -> None:
    models = [{"name": "ours", "model": name, "alias": "champion", "replicas": 1, "cpu_request": "500m",
               "cpu_limit": "1", "memory_request": "1Gi", "memory_limit": "1Gi", "workers": workers}]
    result = run_playbook("benchmarks/serving_models.yml", {"bench_password": password, "bench_models": models})
    assert result.rc == 0, result.output[-3000:]


def baseline(name: str) -> None:
    """`mlflow models serve` exactly as its docs show it, in the same namespace, image and resources."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "baseline", "namespace": SERVING_NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "baseline"}}, "template": {
            "metadata": {"labels": {"app": "baseline"}},
            "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{
                         "name": "model", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                         "command": ["mlflow", "models", "serve", "-m", f"models:/{name}/1", "--env-manager", "local",
                                     "-h", "0.0.0.0", "-p", "8080"],
                         "envFrom": [{"secretRef": {"name": "model-serving-tracking"}}],
                         "env": [{"name": "HOME", "value": "/tmp"}],
                         "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                       "limits": {"cpu": "1", "memory": "1Gi"}},
                         "readinessProbe": {"httpGet": {"path": "/ping", "port": 8080}, "periodSeconds": 2},
                         "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                             "capabilities": {"drop": ["ALL"]}},
                         "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
                     "volumes": [{"name": "tmp", "emptyDir": {}}]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "baseline", "namespace": SERVING_NS},
               "spec": {"selector": {"app": "baseline"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                     "items": [deployment, service]}))
    kubectl("-n", SERVING_NS, "rollout", "status", "deployment/baseline", "--timeout=300s")


def wrk(url: str, payload: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        body = json.dumps({"dataframe_split": payload}).replace("\\", "\\\\").replace('"', '\\"')
        f.write(f'wrk.method = "POST"\nwrk.body = "{body}"\nwrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{DURATION}", "--latency", "-s", f.name, url],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": ms("50"),
            "p99_ms": ms("99"), "non_2xx": int(errors.group(1)) if errors else 0}


def url(service: str) -> str:
    return f"http://{kubectl_json('-n', SERVING_NS, 'service', service)['spec']['clusterIP']}/invocations"


def median(runs: list[dict]) -> dict:
    return {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}


def main() -> None:
    password = server()
    name, payload = register(password)
    results = {}
    for workers in (1, 2):
        serve(name, password, workers)
        baseline(name)
        ours, base = [], []
        for _ in range(ROUNDS):
            ours.append(wrk(url("ours"), payload))
            base.append(wrk(url("baseline"), payload))
        results[f"role_workers_{workers}"] = median(ours)
        results.setdefault("mlflow_models_serve_default", median(base))
        print(json.dumps(results, indent=2))
    save("serving", {"cpu_limit": "1", "wrk": f"-t2 -c16 -d{DURATION}", "rounds": ROUNDS, **results})
    kubectl("delete", "namespace", SERVING_NS, SERVER_NS, "--wait=false")


if __name__ == "__main__":
    main()
