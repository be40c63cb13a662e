"""model_serving on the local cluster: serve by alias, promote under load, refuse a broken version, prune.

The tests run in order and share one tracking server, one registered model and one continuous load.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from ..ansible_run import run_playbook
from ..load import PredictionLoad

HERE = Path(__file__).resolve().parent
TRACKING = "http://127.0.0.1:30521"
PLAYBOOK = "tests/integration/model_serving/serving.yml"


def kubectl_json(*args: str) -> dict:
    return json.loads(subprocess.run(["kubectl", "get", "-o", "json", *args], capture_output=True, text=True,
                                     check=True).stdout)


@pytest.fixture(scope="module")
def admin_password(kubeconfig, namespaces_to_delete):
    namespaces_to_delete.extend(["it-serving", "it-mlflow"])
    result = run_playbook("tests/integration/model_serving/server.yml")
    assert result.rc == 0, result.output[-3000:]
    secret = kubectl_json("-n", "it-mlflow", "secret", "mlflow-credentials")
    return base64.b64decode(secret["data"]["admin-password"]).decode()


@pytest.fixture(scope="module")
def registry(admin_password, monkeypatch_module):
    monkeypatch_module.setenv("MLFLOW_TRACKING_URI", TRACKING)
    monkeypatch_module.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch_module.setenv("MLFLOW_TRACKING_PASSWORD", admin_password)
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(TRACKING)
    name = f"iris-{uuid.uuid4().hex[:6]}"
    mlflow.set_experiment(name)
    X, y = load_iris(return_X_y=True, as_frame=True)
    models, runs = {}, {}
    with mlflow.start_run() as run:
        models[1] = LogisticRegression(max_iter=500).fit(X, y)
        mlflow.sklearn.log_model(models[1], name="model", input_example=X.head(2), registered_model_name=name)
        mlflow.log_metric("accuracy", 0.95)
        runs[1] = run.info.run_id
    with mlflow.start_run():
        # v2 predicts classes 10, 11, 12: any answer tells which version served it.
        models[2] = LogisticRegression(max_iter=500).fit(X, y + 10)
        mlflow.sklearn.log_model(models[2], name="model", input_example=X.head(2), registered_model_name=name)
        mlflow.log_metric("accuracy", 0.96)
    sys.path.insert(0, str(HERE))
    from broken_model import BrokenModel, FlakyModel

    with mlflow.start_run():  # v3 fails every prediction
        mlflow.pyfunc.log_model(name="model", python_model=BrokenModel(), code_paths=[str(HERE / "broken_model.py")],
                                input_example=X.head(2), registered_model_name=name)
    with mlflow.start_run():  # v4 answers 20, and fails half of its predictions after the smoke tests
        mlflow.pyfunc.log_model(name="model", python_model=FlakyModel(), code_paths=[str(HERE / "broken_model.py")],
                                input_example=X.head(2), registered_model_name=name)
        mlflow.log_metric("accuracy", 0.97)
    with mlflow.start_run():  # v5 takes two other columns: it refuses what the stable versions are fed
        other = X.iloc[:, :2].set_axis(["a", "b"], axis=1)
        mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(other, y), name="model",
                                 input_example=other.head(2), registered_model_name=name)
        mlflow.log_metric("accuracy", 0.97)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, "champion", 1)
    return {"name": name, "models": models, "runs": runs, "X": X, "client": client, "password": admin_password}


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


# The served models are reached through the cluster's Gateway (Traefik, 127.0.0.1:8890), where a canary's share of
# the requests is exact.
GATEWAY = {"model_serving_exposure": "gateway", "model_serving_host": "it-serving.localhost",
           "model_serving_gateway_name": "mlplatform", "model_serving_gateway_namespace": "kube-system"}
GATEWAY_URL = "http://127.0.0.1:8890/invocations"


def iris(registry) -> dict:
    return {"name": "iris", "model": registry["name"], "alias": "champion", "ingress_path": "/"}


def serve(registry, models, **extra) -> object:
    return run_playbook(PLAYBOOK, {"it_admin_password": registry["password"], **GATEWAY, "model_serving_models": models,
                                   **extra})


# The serving Ingress on the cluster's Traefik (port 8880 of the node).
INGRESS = {"model_serving_exposure": "ingress", "model_serving_host": "it-serving.localhost",
           "model_serving_ingress_class_name": "traefik"}


def service_url(name: str) -> str:
    ip = kubectl_json("-n", "it-serving", "service", name)["spec"]["clusterIP"]
    return f"http://{ip}/invocations"


def predict(url: str, frame) -> list:
    body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["predictions"]


def runbook_vars(registry, **extra) -> dict:
    """What promote_model.yml and rollback_model.yml need to serve iris (alias champion) in the test's namespaces."""
    return {"it_admin_password": registry["password"], "model_serving_namespace": "it-serving",
            "model_serving_tracking_uri": TRACKING, "model_serving_image": "docker.io/mlplatform/mlflow:3.17.2",
            "model_serving_tracking_username": "admin", "model_serving_tracking_password": registry["password"],
            "model_serving_tracking_uri_in_cluster": "http://mlflow.it-mlflow.svc.cluster.local",
            "model_serving_rollout_timeout": 180, "model_serving_default_cpu_request": "100m",
            "model_serving_default_memory_request": "256Mi",
            "model_serving_models": [iris(registry)], **GATEWAY, **extra}


def test_serves_the_aliased_version_with_local_predictions(registry):
    result = serve(registry, [iris(registry)])
    assert result.rc == 0, result.output[-3000:]
    X = registry["X"]
    assert predict(service_url("iris"), X) == list(registry["models"][1].predict(X))
    annotations = kubectl_json("-n", "it-serving", "deployment", "iris")["metadata"]["annotations"]
    assert annotations["mlplatform.mlflow/model-version"] == "1"


def test_rerun_with_unmoved_alias_changes_nothing(registry):
    result = serve(registry, [iris(registry)])
    assert result.rc == 0 and result.changed == 0, result.output[-3000:]


def test_promotion_under_load_drops_no_request(registry):
    url = service_url("iris")
    with PredictionLoad(url, registry["X"].head(1)) as load:
        time.sleep(3)
        started = time.monotonic()
        result = run_playbook("playbooks/promote_model.yml", runbook_vars(
            registry, registered_model=registry["name"], model_version=2))
        took = time.monotonic() - started
        time.sleep(3)
    print(f"promotion without canary: {took:.0f} s, {load.sent} requests, {load.failed} failed")
    assert result.rc == 0, result.output[-3000:]
    assert load.sent > 200 and load.failed == 0, load.errors[:5]
    assert load.answers[-1] >= 10, "v2 is not answering at the end"
    assert registry["client"].get_model_version_by_alias(registry["name"], "champion").version == "2"
    # Each pod of the new version counts the requests it answered, labelled with its model and version.
    answered = 0.0
    for pod in kubectl_json("-n", "it-serving", "pods", "-l", "app.kubernetes.io/instance=iris")["items"]:
        if pod["metadata"].get("deletionTimestamp") or pod["status"].get("phase") != "Running":
            continue
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:9090/metrics", timeout=10) as response:
            metrics = response.read().decode()
        answered += sum(float(line.split()[-1]) for line in metrics.splitlines()
                        if line.startswith("mlplatform_serving_requests_total{")
                        and 'model="iris"' in line and 'status="200"' in line and 'version="2"' in line)
    assert answered >= 10, "the new version's pods count no answered request"


def test_pods_hold_no_admin_credential_and_cannot_write(registry):
    """The pods download models as their own user: nothing in their spec, Secret or environment is the admin's,
    and that user is refused a registry write."""
    admin_password = registry["password"]
    pods = kubectl_json("-n", "it-serving", "pods", "-l", "app.kubernetes.io/instance=iris")["items"]
    assert pods and admin_password not in json.dumps(pods)
    # The environment of a pod that runs (the last promotion's old pods may still be shutting down).
    running = [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    assert running, [p["metadata"]["name"] for p in pods]
    secret = kubectl_json("-n", "it-serving", "secret", "model-serving-tracking")["data"]
    credentials = {key: base64.b64decode(value).decode() for key, value in secret.items()}
    assert credentials["MLFLOW_TRACKING_USERNAME"] == "model-serving", credentials.keys()
    assert admin_password not in credentials.values()
    environment = subprocess.run(["kubectl", "-n", "it-serving", "exec", running[0]["metadata"]["name"], "-c", "model",
                                  "--", "env"], capture_output=True, text=True, check=True).stdout
    assert "MLFLOW_TRACKING_USERNAME=model-serving" in environment and admin_password not in environment

    pair = f"model-serving:{credentials['MLFLOW_TRACKING_PASSWORD']}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(pair).decode(), "Content-Type": "application/json"}
    read = urllib.request.Request(f"{TRACKING}/api/2.0/mlflow/registered-models/get?name={registry['name']}",
                                  headers=headers)
    with urllib.request.urlopen(read, timeout=10) as response:
        assert response.status == 200
    write = urllib.request.Request(f"{TRACKING}/api/2.0/mlflow/registered-models/alias", method="POST",
                                   headers=headers, data=json.dumps({"name": registry["name"], "alias": "hijack",
                                                                     "version": "1"}).encode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(write, timeout=10)
    assert refused.value.code == 403


def test_broken_version_is_refused_and_the_previous_keeps_serving(registry):
    url = service_url("iris")
    with PredictionLoad(url, registry["X"].head(1)) as load:
        result = run_playbook("playbooks/promote_model.yml", runbook_vars(
            registry, registered_model=registry["name"], model_version=3))
    print(f"broken promotion: {load.sent} requests, {load.failed} failed")
    assert result.rc != 0
    assert load.failed == 0, (load.errors[:5], result.output[-3000:])
    assert "was NOT promoted" in result.output and "deliberately broken" in result.output, result.output[-3000:]
    assert registry["client"].get_model_version_by_alias(registry["name"], "champion").version == "2"
    assert all(a >= 10 for a in load.answers), "something other than v2 answered"
    assert kubectl_json("-n", "it-serving", "deployments")["items"][0]["metadata"]["annotations"][
        "mlplatform.mlflow/model-version"] == "2"


def test_rollback_under_load_returns_to_the_previous_version_dropping_nothing(registry):
    """rollback_model.yml moves the alias back to the version served before the last promotion (v1) and rolls it
    out, as the rollback runbook does on any inventory, while requests keep coming."""
    started = time.time()
    with PredictionLoad(GATEWAY_URL, registry["X"].head(1), host=GATEWAY["model_serving_host"]) as load:
        result = run_playbook("playbooks/rollback_model.yml", runbook_vars(registry, served="iris"))
        took = time.time() - started
        time.sleep(3)
    # Behind the Gateway the previous version takes every request once its pods are Ready: from then on v1 answers.
    shifted = max((at for at, answer in load.timeline if answer >= 10), default=started) - started
    print(f"rollback: all requests on v1 after {shifted:.1f} s, playbook {took:.0f} s, {load.sent} requests, "
          f"{load.failed} failed")
    assert result.rc == 0, result.output[-3000:]
    assert load.sent > 100 and load.failed == 0, (load.errors[:5], result.output[-3000:])
    assert load.answers[-1] < 10, "v1 is not answering at the end"
    assert registry["client"].get_model_version_by_alias(registry["name"], "champion").version == "1"
    annotations = kubectl_json("-n", "it-serving", "deployment", "iris")["metadata"]["annotations"]
    assert annotations["mlplatform.mlflow/model-version"] == "1"
    assert not kubectl_json("-n", "it-serving", "deployments", "-l", "mlplatform.mlflow/track=canary")["items"]
    route = kubectl_json("-n", "it-serving", "httproute", "model-serving")
    assert [b["name"] for b in route["spec"]["rules"][0]["backendRefs"]] == ["iris"]
    change = last_change(registry)
    assert (change["action"], change["from"], change["to"], change["result"]) == ("rollback", 2, 1, "rolled back")


# The context each inventory names (gcloud's name for GKE), made to reach the local cluster for the check runs.
INVENTORY_CONTEXTS = {"minikube": "minikube", "staging": "gke_mlp-check_europe-west1_main",
                      "prod": "gke_mlp-check_europe-west4_main"}


@pytest.mark.parametrize("inventory", sorted(INVENTORY_CONTEXTS))
def test_rollback_runs_in_check_mode_with_every_inventory(registry, kubeconfig_with_contexts, gke_crds, inventory):
    """rollback_model.yml with minikube's, staging's and prod's own variables (context, exposure, replicas), only
    the cluster and the registry pointed at this test's: it reads through the inventory's context, plans the way
    back to v2, and dry-runs every object it would apply on the API server (the GKE Gateway and HTTPRoute against
    the Gateway API's CRDs) without changing anything."""
    before = kubectl_json("-n", "it-serving", "deployment", "iris")["metadata"]["generation"]
    result = run_playbook("playbooks/rollback_model.yml", {
        "served": "iris", "gcp_project": "mlp-check", "mlplatform_gke_cluster": "main",
        "mlplatform_host": "mlflow.example.com", "vault_mlflow_admin_password": registry["password"],
        "mlplatform_kubeconfig": kubeconfig_with_contexts(INVENTORY_CONTEXTS[inventory]),
        **{key: value for key, value in runbook_vars(registry).items() if not key.startswith("model_serving_gateway")
           and key not in ("model_serving_exposure", "model_serving_host")}},
        inventory=f"inventories/{inventory}", check=True, timeout=300)
    assert result.rc == 0, result.output[-3000:]
    assert "registered model " + registry["name"] + ": alias champion" in result.output, result.output[-3000:]
    if inventory != "minikube":  # their own Gateway on GKE's global external load balancer
        assert "gatewayClassName: gke-l7-global-external-managed" in result.output, result.output[-3000:]
        assert "HTTPRoute" in result.output
    assert registry["client"].get_model_version_by_alias(registry["name"], "champion").version == "1"
    assert kubectl_json("-n", "it-serving", "deployment", "iris")["metadata"]["generation"] == before
    assert not kubectl_json("-n", "it-serving", "gateways")["items"]


def last_change(registry) -> dict:
    tags = registry["client"].get_registered_model(registry["name"]).tags
    return json.loads(tags["mlplatform.last_change"])


def step_windows(output: str) -> dict[int, tuple[float, float, float]]:
    """Each analysed canary step's window and the candidate's share by the metrics, from the step reports."""
    flat = re.sub(r"\s+", " ", output)  # the callback folds long messages
    found = re.findall(r"canary iris at (\d+) %: .*?candidate share ([0-9.]+); window ([0-9.]+) - ([0-9.]+)", flat)
    return {int(step): (float(start), float(end), float(share)) for step, share, start, end in found}


CANARY = {"model_serving_canary_steps": [10, 100], "model_serving_canary_hold_seconds": 20,
          "model_serving_canary_max_error_rate": 0.05, "model_serving_canary_max_p99_ms": 2000}


def promote_through_the_gateway(registry, version: int, **extra) -> tuple:
    """promote_model.yml under ~100 req/s through the Gateway: (its result, the load, when it started, its seconds)."""
    with PredictionLoad(GATEWAY_URL, registry["X"].head(1), host=GATEWAY["model_serving_host"]) as load:
        started = time.time()
        result = run_playbook("playbooks/promote_model.yml", runbook_vars(
            registry, registered_model=registry["name"], model_version=version, **extra))
        took = time.time() - started
        time.sleep(3)
    return result, load, started, took


def test_canary_takes_its_share_then_everything_dropping_nothing(registry):
    """v2 beside v1 behind the Gateway: 10 % of ~100 req/s for 20 s, then 100 %, then the alias moves."""
    result, load, _started, took = promote_through_the_gateway(registry, 2, **CANARY)
    print(f"canary promotion (2 steps held 20 s): {took:.0f} s, {load.sent} requests, {load.failed} failed")
    assert result.rc == 0, result.output[-3000:]
    assert load.failed == 0, (load.errors[:5], result.output[-3000:])
    windows = step_windows(result.output)
    assert set(windows) == {10, 100}, result.output[-3000:]
    start, end, metric_share = windows[10]
    in_window = [answer for at, answer in load.timeline if start <= at <= end]
    share = sum(answer >= 10 for answer in in_window) / len(in_window)
    print(f"canary at 10 %: v2 answered {share:.1%} of {len(in_window)} requests (metrics: {metric_share:.1%})")
    assert len(in_window) > 1000 and abs(share - 0.10) <= 0.03 and abs(metric_share - 0.10) <= 0.03
    start, end = windows[100][:2]
    assert all(answer >= 10 for at, answer in load.timeline if start <= at <= end)
    assert load.answers[-1] >= 10
    assert registry["client"].get_model_version_by_alias(registry["name"], "champion").version == "2"
    change = last_change(registry)
    assert (change["action"], change["from"], change["to"], change["result"]) == ("promote", 1, 2, "promoted"), change
    assert change["by"] and change["at"]
    assert not kubectl_json("-n", "it-serving", "deployments", "-l", "mlplatform.mlflow/track=canary")["items"]


def test_canary_with_server_errors_is_rolled_back_by_the_analysis(registry):
    """v4 fails half its predictions with 500: the analysis at 10 % puts every request back on v2."""
    result, load, started, took = promote_through_the_gateway(registry, 4, **CANARY)
    print(f"flaky canary: {load.sent} requests, {load.failed} failed")
    assert result.rc != 0
    assert "was NOT promoted" in result.output and "error rate" in result.output, result.output[-3000:]
    failures = re.search(r"after ([0-9.]+) s \(candidate: (\d+) requests, (\d+) server errors",
                         re.sub(r"\s+", " ", result.output))
    assert failures, result.output[-3000:]
    window = float(failures.group(1))
    # The clients saw the candidate's errors only: at most its share of what was sent during the window.
    assert 0 < load.failed <= 0.10 * 100 * (window + 5), (load.failed, window)
    route = kubectl_json("-n", "it-serving", "httproute", "model-serving")
    last = [(round(at - started, 1), answer) for at, answer in load.timeline if answer == 20][-5:]  # v4's
    assert all(answer in (10, 11, 12) for answer in load.answers[-100:]), (
        f"v2 is not answering alone at the end: the last other answers (s after start, answer) {last}; playbook "
        f"{took:.1f} s; route {route['spec']['rules']}")
    assert registry["client"].get_model_version_by_alias(registry["name"], "champion").version == "2"
    assert not kubectl_json("-n", "it-serving", "deployments", "-l", "mlplatform.mlflow/track=canary")["items"]
    route = kubectl_json("-n", "it-serving", "httproute", "model-serving")
    assert [b["name"] for b in route["spec"]["rules"][0]["backendRefs"]] == ["iris"]
    assert last_change(registry)["result"].startswith("refused")


def test_candidates_that_fail_a_gate_get_no_request(registry):
    """v5 refuses the stable version's input example; v2 is refused by a metric gate. Neither ever answers."""
    with PredictionLoad(GATEWAY_URL, registry["X"].head(1), host=GATEWAY["model_serving_host"]) as load:
        signature = run_playbook("playbooks/promote_model.yml", runbook_vars(
            registry, registered_model=registry["name"], model_version=5, **CANARY))
        gated = run_playbook("playbooks/promote_model.yml", runbook_vars(
            registry, registered_model=registry["name"], model_version=4, **CANARY,
            model_serving_promotion_gates=[{"metric": "accuracy", "max_regression": 0.0},
                                           {"metric": "accuracy", "min": 0.99}]))
    assert signature.rc != 0 and "input example of models:/" in signature.output, signature.output[-3000:]
    assert gated.rc != 0 and "accuracy 0.97 is below the gate's min 0.99" in gated.output, gated.output[-3000:]
    assert load.failed == 0 and all(answer in (10, 11, 12) for answer in load.answers), load.errors[:5]
    assert registry["client"].get_model_version_by_alias(registry["name"], "champion").version == "2"


def test_without_a_gateway_a_canary_takes_its_share_of_the_pods(registry):
    """No Gateway (exposure none): at 50 % the candidate (v1) runs as many pods as the stable version (v2), both behind
    the model's one Service, so both answer; its 100 % step is the rollout; nothing fails."""
    url = service_url("iris")
    with PredictionLoad(url, registry["X"].head(1)) as load:
        result = run_playbook("playbooks/promote_model.yml", runbook_vars(
            registry, registered_model=registry["name"], model_version=1, model_serving_exposure="none",
            model_serving_canary_steps=[50, 100], model_serving_canary_hold_seconds=15))
        time.sleep(3)
    print(f"canary by pods: {load.sent} requests, {load.failed} failed")
    assert result.rc == 0, result.output[-3000:]
    assert load.failed == 0, (load.errors[:5], result.output[-3000:])
    start, end, metric_share = step_windows(result.output)[50]
    in_window = [answer for at, answer in load.timeline if start <= at <= end]
    share = sum(answer < 10 for answer in in_window) / len(in_window)
    print(f"canary at 50 % of the pods: v1 answered {share:.1%} of {len(in_window)} (metrics: {metric_share:.1%})")
    assert 0.25 <= share <= 0.75 and 0.25 <= metric_share <= 0.75
    assert load.answers[-1] < 10
    assert registry["client"].get_model_version_by_alias(registry["name"], "champion").version == "1"
    assert not kubectl_json("-n", "it-serving", "deployments", "-l", "mlplatform.mlflow/track=canary")["items"]


def test_serves_a_run_uri_and_a_version_uri_pinned(registry):
    """What a data scientist hands over before registering (runs:/) and an explicit version, beside the alias."""
    run_uri = f"runs:/{registry['runs'][1]}/model"
    models = [{"name": "iris", "model": registry["name"], "alias": "champion"},
              {"name": "iris-run", "model_uri": run_uri, "replicas": 1},
              {"name": "iris-v2", "model_uri": f"models:/{registry['name']}/2", "replicas": 1,
               "ingress_path": "/iris-v2"}]
    result = serve(registry, models, **INGRESS)
    assert result.rc == 0, result.output[-3000:]
    X = registry["X"]
    assert predict(service_url("iris-run"), X) == list(registry["models"][1].predict(X))
    assert predict(service_url("iris-v2"), X) == list(registry["models"][2].predict(X))
    # Through the Ingress under its path (forwarded unchanged: the server answers under it).
    body = json.dumps({"dataframe_split": json.loads(X.to_json(orient="split", index=False))}).encode()
    through_ingress = urllib.request.Request("http://127.0.0.1:8880/iris-v2/invocations", data=body, headers={
        "Content-Type": "application/json", "Host": "it-serving.localhost"})
    deadline = time.monotonic() + 60
    while True:  # until Traefik has read the new Ingress
        try:
            with urllib.request.urlopen(through_ingress, timeout=10) as response:
                assert json.loads(response.read())["predictions"] == list(registry["models"][2].predict(X))
            break
        except urllib.error.HTTPError as error:
            if error.code != 404 or time.monotonic() > deadline:
                raise
            time.sleep(1)
    run_annotations = kubectl_json("-n", "it-serving", "deployment", "iris-run")["metadata"]["annotations"]
    assert run_annotations["mlplatform.mlflow/model-uri"] == run_uri
    assert run_annotations["mlplatform.mlflow/model-version"] == f"run-{registry['runs'][1]}"
    assert kubectl_json("-n", "it-serving", "deployment", "iris-v2")["metadata"]["annotations"][
        "mlplatform.mlflow/model-uri"] == f"models:/{registry['name']}/2"

    again = serve(registry, models, **INGRESS)
    assert again.rc == 0 and again.changed == 0, again.output[-3000:]

    before = kubectl_json("-n", "it-serving", "deployments")["items"]
    for bad in ({"name": "bad", "model_uri": "runs:/not-a-run/model"},
                {"name": "bad", "model_uri": f"models:/{registry['name']}", "replicas": 1},
                {"name": "bad", "model_uri": run_uri, "model": registry["name"], "alias": "champion"}):
        refused = serve(registry, [*models, bad], **INGRESS)
        assert refused.rc != 0 and "model_serving_models entry bad" in refused.output, refused.output[-2000:]
    missing = serve(registry, [*models, {"name": "bad", "model_uri": "runs:/" + "0" * 32 + "/model"}], **INGRESS)
    assert missing.rc != 0 and "run " + "0" * 32 in missing.output, missing.output[-2000:]
    after = kubectl_json("-n", "it-serving", "deployments")["items"]

    def specs(items):  # generation moves with every spec change; status updates do not count
        return [(d["metadata"]["name"], d["metadata"]["generation"], d["metadata"]["annotations"]) for d in items]

    assert specs(after) == specs(before)


def test_removed_model_loses_every_object(registry):
    result = serve(registry, [])
    assert result.rc == 0, result.output[-3000:]
    for kind in ("deployments", "services", "hpa", "pdb"):
        items = kubectl_json("-n", "it-serving", kind, "-l", "app.kubernetes.io/instance=iris")["items"]
        assert items == [], f"{kind} left behind"
