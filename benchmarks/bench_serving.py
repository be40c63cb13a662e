"""Predictions/s, p50/p99 and memory of one serving pod: the model_serving role's pod (the image's scoring server,
with and without adaptive batching) versus `mlflow models serve` with its defaults (1 worker, same image) and
MLServer 1.7.1 with its MLflow runtime and adaptive batching (its own image, same MLflow and scikit-learn); same
model, same CPU limit (1 core), measured with wrk from the node: 16 connections (throughput, p99) and 1 connection
(p50 of a lone client), 1-row JSON requests (MLServer: the same row as a V2 inference request).

Runs are alternated (A, B, C, D, A, B, C, D, ...) and the median of each side is reported; memory is the pod's
working set (its cgroup) after the load.
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

from common import ROOT, kubectl, kubectl_json, pod_memory_mib, run_playbook, save

SERVER_NS, SERVING_NS, NODE_PORT = "bench-mlflow", "bench-serving", 30531
TRACKING = f"http://127.0.0.1:{NODE_PORT}"
ROUNDS, DURATION = 3, "20s"
IMAGE = "docker.io/mlplatform/mlflow:3.17.2"
MLSERVER_IMAGE = "docker.io/mlplatform/mlserver:1.7.1"  # built by main() with cluster/images.sh build mlserver
CONTAINERD_SOCK = "/var/lib/mlplatform-cluster/run/containerd/containerd.sock"


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


def serve(name: str, password: str) -> None:
    """The role's pods: one with its defaults (batching on), one with batching off; 1 worker each (1 CPU)."""
    sizing = {"model": name, "alias": "champion", "replicas": 1, "cpu_request": "250m", "cpu_limit": "1",
              "memory_request": "1Gi", "memory_limit": "1Gi"}
    models = [{"name": "ours", **sizing}, {"name": "ours-unbatched", "max_batch_size": 1, **sizing}]
    result = run_playbook("benchmarks/serving_models.yml", {"bench_password": password, "bench_models": models})
    assert result.rc == 0, result.output[-3000:]


def peer(name: str, image: str, command: list[str], env: dict[str, str]) -> None:
    """A peer server in the same namespace, with the same resources, user and read-only root as the role's pods."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": SERVING_NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{
                         "name": "model", "image": image, "imagePullPolicy": "IfNotPresent", "command": command,
                         "workingDir": "/tmp",  # MLServer writes its metrics and environments under it
                         "envFrom": [{"secretRef": {"name": "model-serving-tracking"}}],
                         "env": [{"name": "HOME", "value": "/tmp"},
                                 *({"name": key, "value": value} for key, value in env.items())],
                         "resources": {"requests": {"cpu": "250m", "memory": "1Gi"},
                                       "limits": {"cpu": "1", "memory": "1Gi"}},
                         "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2},
                         "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                             "capabilities": {"drop": ["ALL"]}},
                         "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
                     "volumes": [{"name": "tmp", "emptyDir": {}}]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": SERVING_NS},
               "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                     "items": [deployment, service]}))
    kubectl("-n", SERVING_NS, "rollout", "status", f"deployment/{name}", "--timeout=300s")


def baseline(name: str) -> None:
    """`mlflow models serve` exactly as its docs show it (its defaults: 1 worker), same image as the role's pods."""
    peer("baseline", IMAGE, ["mlflow", "models", "serve", "-m", f"models:/{name}/1", "--env-manager", "local",
                             "-h", "0.0.0.0", "-p", "8080"], {})


def mlserver(name: str) -> None:
    """MLServer 1.7.1 with its MLflow runtime (KServe's), adaptive batching on: up to 16 requests (the clients) per
    predict, waiting at most 5 ms. Its V2 inference endpoint is the one that batches (its /invocations does not)."""
    peer("mlserver", MLSERVER_IMAGE, ["mlserver", "start", "/tmp"], {
        "MLSERVER_MODEL_NAME": "iris", "MLSERVER_MODEL_IMPLEMENTATION": "mlserver_mlflow.MLflowRuntime",
        "MLSERVER_MODEL_URI": f"models:/{name}/1", "MLSERVER_MODEL_MAX_BATCH_SIZE": "16",
        "MLSERVER_MODEL_MAX_BATCH_TIME": "0.005", "MLSERVER_HTTP_PORT": "8080"})


def mlserver_image() -> None:
    """Build the MLServer image when missing (only this benchmark runs it) and import it into the cluster."""
    images = str(ROOT / "cluster" / "images.sh")
    subprocess.run([images, "build", "mlserver"], check=True, capture_output=True, timeout=1800)
    ref, archive = subprocess.run([images, "list", "mlserver"], capture_output=True, text=True,
                                  check=True).stdout.split()
    subprocess.run(["ctr", "-a", CONTAINERD_SOCK, "-n", "k8s.io", "images", "import", "--base-name",
                    ref.rsplit(":", 1)[0], archive], check=True, capture_output=True)


def split_body(payload: dict) -> dict:
    return {"dataframe_split": payload}


def v2_body(payload: dict) -> dict:
    """The same one row as an Open Inference Protocol (V2) request, one input per column."""
    return {"inputs": [{"name": column, "shape": [1], "datatype": "FP64", "data": [payload["data"][0][index]]}
                       for index, column in enumerate(payload["columns"])]}


def wrk(url: str, request: dict, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        body = json.dumps(request).replace("\\", "\\\\").replace('"', '\\"')
        f.write(f'wrk.method = "POST"\nwrk.body = "{body}"\nwrk.headers["Content-Type"] = "application/json"\n')
    threads = min(2, connections)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{DURATION}", "--latency", "-s", f.name, url],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": ms("50"),
            "p99_ms": ms("99"), "non_2xx": int(errors.group(1)) if errors else 0}


def url(service: str, path: str = "/invocations") -> str:
    return f"http://{kubectl_json('-n', SERVING_NS, 'service', service)['spec']['clusterIP']}{path}"


def median(runs: list[dict]) -> dict:
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}


# side: (Service, pod selector, path, request body maker)
SIDES = {"mlplatform_batching": ("ours", "app.kubernetes.io/instance=ours", "/invocations", split_body),
         "mlplatform_unbatched": ("ours-unbatched", "app.kubernetes.io/instance=ours-unbatched", "/invocations",
                                  split_body),
         "mlflow_models_serve_default": ("baseline", "app=baseline", "/invocations", split_body),
         "mlserver_adaptive_batching": ("mlserver", "app=mlserver", "/v2/models/iris/infer", v2_body)}


def main() -> None:
    mlserver_image()
    password = server()
    name, payload = register(password)
    serve(name, password)
    baseline(name)
    mlserver(name)
    requests = {side: (url(service, path), make(payload)) for side, (service, _, path, make) in SIDES.items()}
    loaded: dict[str, list] = {side: [] for side in SIDES}
    lone: dict[str, list] = {side: [] for side in SIDES}
    for _ in range(ROUNDS):
        for side, (target, body) in requests.items():
            loaded[side].append(wrk(target, body, 16))
            lone[side].append(wrk(target, body, 1))
    results = {}
    for side, (_, selector, _, _) in SIDES.items():
        results[side] = {**median(loaded[side]), "p50_ms_1_client": median(lone[side])["p50_ms"],
                         "memory_mib": round(pod_memory_mib(SERVING_NS, selector), 1)}
    for peer_side in ("mlflow_models_serve_default", "mlserver_adaptive_batching"):
        for side in results:
            results[side][f"rps_vs_{peer_side}"] = round(results[side]["rps"] / results[peer_side]["rps"], 2)
    print(json.dumps(results, indent=2))
    save("serving", {"cpu_limit": "1", "wrk": f"-t2 -c16 -d{DURATION} and -t1 -c1 -d{DURATION}", "rounds": ROUNDS,
                     "mlserver": "1.7.1, max_batch_size 16, max_batch_time 5 ms, V2 endpoint", **results})
    kubectl("delete", "namespace", SERVING_NS, SERVER_NS, "--wait=false")


if __name__ == "__main__":
    main()
