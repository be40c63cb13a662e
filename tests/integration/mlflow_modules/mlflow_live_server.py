"""Helpers for the real MLflow tracking server the mlflow_* module tests run against (see conftest.py)."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT = 120
MODEL_NAME = "iris-classifier"
CLIENT_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)


@dataclass(frozen=True)
class MlflowServer:
    url: str
    port: int
    username: str
    password: str
    log_path: Path

    def api(self, method: str, endpoint: str, body: dict | None = None) -> dict:
        """A direct REST call as admin (test setup and checks, independent of the modules); an endpoint starting with
        /api/ is the whole path."""
        data = json.dumps(body).encode() if body is not None else None
        path = endpoint if endpoint.startswith("/api/") else f"/api/2.0/mlflow/{endpoint}"
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        pair = f"{self.username}:{self.password}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip() else {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"mlflow server exited with {process.returncode} before answering /health:\n"
                + log_path.read_text(errors="replace")[-4000:]
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(
        f"mlflow server did not answer {url}/health within {START_TIMEOUT} s:\n"
        + log_path.read_text(errors="replace")[-4000:]
    )
