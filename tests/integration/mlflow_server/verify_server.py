"""Verify a converged tracking server with the real MLflow client (run by the Molecule scenarios' verify step).

Environment: VERIFY_TRACKING_URI (the server as this machine reaches it), VERIFY_ADMIN_PASSWORD, VERIFY_NAMESPACE.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest

URI = os.environ["VERIFY_TRACKING_URI"]
NAMESPACE = os.environ["VERIFY_NAMESPACE"]
PASSWORD = os.environ["VERIFY_ADMIN_PASSWORD"]
AUTH = os.environ.get("VERIFY_AUTH", "true") == "true"


def kubectl_json(*args: str) -> dict:
    return json.loads(subprocess.run(["kubectl", "-n", NAMESPACE, "get", "-o", "json", *args],
                                     capture_output=True, text=True, check=True).stdout)


@pytest.fixture(scope="module")
def client():
    os.environ["MLFLOW_TRACKING_URI"] = URI
    os.environ["MLFLOW_TRACKING_USERNAME"] = "admin"
    os.environ["MLFLOW_TRACKING_PASSWORD"] = PASSWORD
    import mlflow

    mlflow.set_tracking_uri(URI)
    return mlflow.MlflowClient()


@pytest.fixture(scope="module")
def logged(client):
    """One run with params, metrics, an artifact and a registered scikit-learn model with an alias."""
    import mlflow
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    name = f"verify-{uuid.uuid4().hex[:8]}"
    mlflow.set_experiment(name)
    X, y = load_iris(return_X_y=True, as_frame=True)
    with mlflow.start_run() as run:
        mlflow.log_params({"C": 1.0, "solver": "lbfgs"})
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_text("hello from verify", "notes/hello.txt")
        model = LogisticRegression(max_iter=500).fit(X, y)
        info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(2), registered_model_name=name)
    version = info.registered_model_version
    client.set_registered_model_alias(name, "champion", version)
    return {"name": name, "run_id": run.info.run_id, "version": version, "model": model, "X": X, "np": np}


def test_params_metrics_and_artifact_are_stored(client, logged):
    run = client.get_run(logged["run_id"])
    assert run.data.params == {"C": "1.0", "solver": "lbfgs"}
    assert [m.value for m in client.get_metric_history(logged["run_id"], "loss")] == [1.0, 0.5, 1.0 / 3]
    import mlflow

    assert mlflow.artifacts.load_text(f"runs:/{logged['run_id']}/notes/hello.txt") == "hello from verify"


def test_registered_model_loads_by_alias_and_predicts_like_the_original(logged):
    import mlflow

    served = mlflow.pyfunc.load_model(f"models:/{logged['name']}@champion")
    expected = logged["model"].predict(logged["X"])
    assert list(served.predict(logged["X"])) == list(expected)


def test_artifacts_land_in_the_bucket(logged):
    """The server proxies artifacts to gs://: the object must exist in the (emulated) bucket itself."""
    deployment = kubectl_json("deployment", "mlflow")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    destination = next(a.split("=", 1)[1] for a in args if a.startswith("--artifacts-destination="))
    bucket, _sep, prefix = destination[len("gs://"):].partition("/")
    emulator = kubectl_json("service", "mlflow-gcs")["spec"]["clusterIP"]
    url = f"http://{emulator}:9023/storage/v1/b/{bucket}/o?prefix={prefix}"
    with urllib.request.urlopen(url, timeout=10) as response:
        names = [item["name"] for item in json.loads(response.read()).get("items", [])]
    assert any(n.endswith("notes/hello.txt") for n in names), names[:20]
    assert any(n.endswith("MLmodel") for n in names)


def _status(path: str, headers: dict[str, str], body: bytes | None = None) -> int:
    """The HTTP status of a GET (or, with a body, a POST) to the server."""
    request = urllib.request.Request(URI + path, headers=headers, data=body)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_foreign_host_header_is_refused():
    import base64

    auth = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    assert _status("/api/2.0/mlflow/experiments/search?max_results=1", {"Host": "evil.example.com",
                                                                        "Authorization": auth}) == 403


def test_request_without_credentials_is_refused_exactly_when_auth_is_on():
    expected = 401 if AUTH else 200
    assert _status("/api/2.0/mlflow/experiments/search?max_results=1", {}) == expected


def test_a_user_gets_exactly_the_permissions_granted(client, logged):
    """With auth on, the auth schema holds users and both kinds of grants (on MySQL/MariaDB: the tables the upgrade
    Job creates around mlflow/mlflow#9642): a new user reads the experiment it was granted, is refused an alias write
    on the model it may only read, and may write it once granted EDIT. With auth off there is no user API."""
    import base64

    if not AUTH:
        assert _status("/api/2.0/mlflow/users/get?username=admin", {}) == 404
        return
    from mlflow.server import get_app_client

    auth_client = get_app_client("basic-auth", tracking_uri=URI)
    username, password = f"user-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    auth_client.create_user(username, password)
    experiment_id = client.get_run(logged["run_id"]).info.experiment_id
    auth_client.grant_user_permission(username, "experiment", experiment_id, "READ")
    auth_client.grant_user_permission(username, "registered_model", logged["name"], "READ")
    user = {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode(),
            "Content-Type": "application/json"}
    alias = json.dumps({"name": logged["name"], "alias": "staging", "version": str(logged["version"])}).encode()
    assert _status(f"/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}", user) == 200
    assert _status("/api/2.0/mlflow/registered-models/alias", user, alias) == 403
    auth_client.revoke_user_permission(username, "registered_model", logged["name"])
    auth_client.grant_user_permission(username, "registered_model", logged["name"], "EDIT")
    assert _status("/api/2.0/mlflow/registered-models/alias", user, alias) == 200


def test_secrets_stay_out_of_argv_configmaps_and_annotations():
    secret = kubectl_json("secret", "mlflow-credentials")["data"]
    import base64

    values = {base64.b64decode(v).decode() for k, v in secret.items()
              if k.endswith("password") or k == "flask-secret-key"}
    visible = json.dumps([kubectl_json("deployments"), kubectl_json("configmaps"), kubectl_json("jobs"),
                          kubectl_json("statefulsets"), kubectl_json("pods")])
    leaked = [v for v in values if v and v in visible]
    assert not leaked, "a secret value is visible outside Secrets"
