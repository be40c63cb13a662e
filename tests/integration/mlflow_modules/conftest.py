"""Fixtures: a real MLflow tracking server, MLflow's own client, and a registered iris model (v1, v2).

The server runs from the project's virtualenv on 127.0.0.1 on a free port, with a generated admin
password (MLflow 3.17 ships none) and job execution off. If it does not come up, the tests fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow_live_server import (
    CLIENT_ENV,
    MODEL_NAME,
    MlflowServer,
    free_port,
    wait_healthy,
)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if mlflow_bin is None:
        pytest.fail("the mlflow CLI is not in the virtualenv; run scripts/bootstrap.sh")
    root = tmp_path_factory.mktemp("mlflow-server")
    password = secrets.token_urlsafe(24)
    auth_ini = root / "basic_auth.ini"
    auth_ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        "admin_username = admin\n"
        f"admin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")
    }
    env.update(
        MLFLOW_AUTH_CONFIG_PATH=str(auth_ini),
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(32),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
    )
    log_path = root / "server.log"
    command = [
        mlflow_bin,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--app-name",
        "basic-auth",
        # Only the IP is allowed, so http://localhost:<port> shows the "Invalid Host header" 403.
        "--allowed-hosts",
        f"127.0.0.1,127.0.0.1:{port}",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_healthy(url, process, log_path)
        yield MlflowServer(url, port, "admin", password, log_path)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def connection(mlflow_server: MlflowServer) -> dict[str, t.Any]:
    """Connection options for module_defaults: the admin user on the test server."""
    return {
        "tracking_uri": mlflow_server.url,
        "username": mlflow_server.username,
        "password": mlflow_server.password,
    }


@pytest.fixture(scope="session")
def mlflow_client(mlflow_server: MlflowServer) -> Iterator[t.Any]:
    """MLflow's own client, logged in as admin (through the environment, as users do)."""
    saved = {key: os.environ.get(key) for key in CLIENT_ENV}
    os.environ.update(
        MLFLOW_TRACKING_URI=mlflow_server.url,
        MLFLOW_TRACKING_USERNAME=mlflow_server.username,
        MLFLOW_TRACKING_PASSWORD=mlflow_server.password,
    )
    from mlflow import MlflowClient

    try:
        yield MlflowClient(tracking_uri=mlflow_server.url)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def registered_model(
    mlflow_client: t.Any, mlflow_server: MlflowServer
) -> dict[int, str]:
    """Train a LogisticRegression on iris and register it twice: {version: run_id}."""
    import mlflow
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_experiment("mlflow-modules-integration")
    features, labels = load_iris(return_X_y=True, as_frame=True)
    runs: dict[int, str] = {}
    for c in (1.0, 0.5):
        model = LogisticRegression(C=c, max_iter=300).fit(features, labels)
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                input_example=features.head(2),
                registered_model_name=MODEL_NAME,
            )
        version = int(info.registered_model_version)
        runs[version] = run.info.run_id
    assert sorted(runs) == [1, 2], runs
    for version in runs:
        status = mlflow_client.get_model_version(MODEL_NAME, str(version)).status
        assert status == "READY", f"version {version} is {status}"
    return runs
