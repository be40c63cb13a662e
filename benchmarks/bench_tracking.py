"""Tracking throughput (log_batch requests/s) and server memory: MLflow's defaults versus the role's sizing.

Both servers run from the same role and image on the same cluster with the same CPU limit (1 core); only the
settings under test differ: MLflow's defaults are 4 uvicorn workers with job execution on, the role sizes
workers from the CPU limit (1) and turns job execution off.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time

from common import kubectl, kubectl_json, pod_memory_mib, run_playbook, save

DURATION, THREADS = 20, 8
VARIANTS = {
    "mlflow_defaults": {"ns": "bench-track-defaults", "port": 30541,
                        "vars": {"mlflow_server_workers": 4, "mlflow_server_job_execution_enabled": True,
                                 "mlflow_server_memory_limit": "6Gi", "mlflow_server_memory_request": "1Gi",
                                 "mlflow_server_auth_cache_ttl": 0}},
    "role_sizing": {"ns": "bench-track-role", "port": 30542, "vars": {}},
}


def converge(variant: dict) -> str:
    extra = {"bench_namespace": variant["ns"], "bench_node_port": variant["port"], **variant["vars"]}
    result = run_playbook("benchmarks/tracking_server.yml", extra)
    assert result.rc == 0, result.output[-3000:]
    secret = kubectl_json("-n", variant["ns"], "secret", "mlflow-credentials")
    return base64.b64decode(secret["data"]["admin-password"]).decode()


def load(uri: str, password: str) -> dict:
    os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=password)
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(f"bench-{time.time_ns()}")
    counts, failures = [0] * THREADS, [0] * THREADS
    deadline = time.monotonic() + DURATION

    def worker(i: int) -> None:
        run_id = client.create_run(experiment).info.run_id
        step = 0
        while time.monotonic() < deadline:
            metrics = [Metric(f"m{k}", float(step), int(time.time() * 1000), step) for k in range(10)]
            try:
                client.log_batch(run_id, metrics=metrics)
                counts[i] += 1
            except Exception:  # noqa: BLE001 - counted, not hidden
                failures[i] += 1
            step += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"log_batch_per_s": round(sum(counts) / DURATION, 1), "failed": sum(failures)}


def main() -> None:
    results = {}
    for name, variant in VARIANTS.items():
        password = converge(variant)
        time.sleep(10)  # let start-up work settle before reading memory
        idle = pod_memory_mib(variant["ns"], "app.kubernetes.io/component=server")
        measured = load(f"http://127.0.0.1:{variant['port']}", password)
        after_load = pod_memory_mib(variant["ns"], "app.kubernetes.io/component=server")
        results[name] = {**measured, "memory_idle_mib": round(idle), "memory_after_load_mib": round(after_load)}
        print(name, json.dumps(results[name]))
        kubectl("delete", "namespace", variant["ns"], "--wait=false")
    save("tracking", {"duration_s": DURATION, "threads": THREADS, "cpu_limit": "1", **results})
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
