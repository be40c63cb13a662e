"""How long promote_model.yml and rollback_model.yml take under steady load (~100 req/s), and what they drop.

Two sides, alternated in each round, on the same served model (2 replicas, the scoring server):
- gateway: the model behind the bundled cluster's Gateway (Traefik, 127.0.0.1:8890); a rollback is a traffic shift
  to the previous version's pods, a canary promotion (10 % then 100 %, each held HOLD s) splits by route weight;
- rollout: the model behind its Service alone; a rollback is a rolling update back.
Each side promotes v1 -> v2 without canary and rolls back to v1; the gateway side also promotes by canary and rolls
back again. "Back on v1" is when the load saw its last v2 answer. Medians are reported.
"""

from __future__ import annotations

import statistics
import time
import uuid

from common import kubectl_json, run_playbook, save
from load import PredictionLoad

ROUNDS, HOLD = 3, 15
NODE_PORT = 30531
TRACKING = f"http://127.0.0.1:{NODE_PORT}"
GATEWAY_URL, HOST = "http://127.0.0.1:8890/invocations", "bench-serving.localhost"
SIDES = {
    "gateway": {"model_serving_exposure": "gateway", "model_serving_host": HOST,
                "model_serving_gateway_name": "mlplatform", "model_serving_gateway_namespace": "kube-system"},
    "rollout": {"model_serving_exposure": "none"},
}


def setup() -> tuple[dict, object]:
    import base64
    import os

    result = run_playbook("benchmarks/serving_server.yml", {"bench_node_port": NODE_PORT})
    assert result.rc == 0, result.output[-3000:]
    password = base64.b64decode(kubectl_json("-n", "bench-mlflow", "secret", "mlflow-credentials")["data"][
        "admin-password"]).decode()
    os.environ.update(MLFLOW_TRACKING_URI=TRACKING, MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=password)
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    name = f"bench-promote-{uuid.uuid4().hex[:6]}"
    X, y = load_iris(return_X_y=True, as_frame=True)
    mlflow.set_experiment(name)
    for offset in (0, 10):  # v1 answers 0-2, v2 answers 10-12
        with mlflow.start_run():
            mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(X, y + offset), name="model",
                                     input_example=X.head(1), registered_model_name=name)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", 1)
    common = {"it_admin_password": password, "model_serving_namespace": "bench-serving",
              "model_serving_tracking_uri": TRACKING, "model_serving_image": "docker.io/mlplatform/mlflow:3.17.2",
              "model_serving_tracking_username": "admin", "model_serving_tracking_password": password,
              "model_serving_tracking_uri_in_cluster": "http://mlflow.bench-mlflow.svc.cluster.local",
              "model_serving_default_cpu_request": "100m", "model_serving_default_memory_request": "256Mi",
              "model_serving_models": [{"name": "iris", "model": name, "alias": "champion", "ingress_path": "/",
                                        "replicas": 2}],
              "registered_model": name}
    return common, X.head(1)


def load_for(side: str, frame) -> PredictionLoad:
    if side == "gateway":
        return PredictionLoad(GATEWAY_URL, frame, host=HOST)
    ip = kubectl_json("-n", "bench-serving", "service", "iris")["spec"]["clusterIP"]
    return PredictionLoad(f"http://{ip}/invocations", frame)


def runbook(playbook: str, variables: dict, frame, side: str) -> dict:
    """One runbook under load: its time, the requests it saw fail, and when the load last saw v2 (after start)."""
    with load_for(side, frame) as load:
        time.sleep(2)
        started = time.time()
        result = run_playbook(playbook, variables)
        took = time.time() - started
        time.sleep(2)
    assert result.rc == 0, result.output[-3000:]
    last_v2 = max((at for at, answer in load.timeline if answer >= 10), default=started)
    return {"seconds": round(took, 1), "back_on_v1": round(last_v2 - started, 1), "sent": load.sent,
            "failed": load.failed}


def main() -> None:
    common, frame = setup()
    runs: dict[str, list[dict]] = {}
    for _round in range(ROUNDS):
        for side, exposure in SIDES.items():
            variables = {**common, **exposure}
            converged = run_playbook("benchmarks/serving_models.yml", {
                "bench_password": common["it_admin_password"], "bench_models": common["model_serving_models"],
                **exposure})
            assert converged.rc == 0, converged.output[-3000:]
            promote = {**variables, "model_version": 2}
            runs.setdefault(f"{side}: promote, no canary", []).append(
                runbook("playbooks/promote_model.yml", promote, frame, side))
            runs.setdefault(f"{side}: rollback", []).append(
                runbook("playbooks/rollback_model.yml", {**variables, "served": "iris"}, frame, side))
            if side == "gateway":
                canary = {**promote, "model_serving_canary_steps": [10, 100], "model_serving_canary_hold_seconds": HOLD}
                outcome = runbook("playbooks/promote_model.yml", canary, frame, side)
                outcome["beyond_holds"] = round(outcome["seconds"] - 2 * HOLD, 1)
                runs.setdefault(f"{side}: promote, canary 10/100 % held {HOLD} s each", []).append(outcome)
                runs.setdefault(f"{side}: rollback", []).append(
                    runbook("playbooks/rollback_model.yml", {**variables, "served": "iris"}, frame, side))
    table = {}
    for label, outcomes in runs.items():
        table[label] = {key: statistics.median(o[key] for o in outcomes) for key in outcomes[0] if key != "failed"}
        table[label]["failed"] = sum(o["failed"] for o in outcomes)
        table[label]["n"] = len(outcomes)
    print(f"{'':58} {'seconds':>8} {'v1 alone':>9} {'sent':>7} {'failed':>7} {'n':>3}")
    for label, row in table.items():
        back = f"{row['back_on_v1']:.1f}" if "rollback" in label else "-"
        print(f"{label:58} {row['seconds']:8.1f} {back:>9} {row['sent']:7.0f} {row['failed']:7d} {row['n']:3d}")
    save("promotion", {"rounds": ROUNDS, "hold_seconds": HOLD, "runs": runs, "medians": table})


if __name__ == "__main__":
    main()
