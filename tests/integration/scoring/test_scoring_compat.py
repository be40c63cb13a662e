"""The serving image's scoring server (images/mlflow/mlplatform_scoring.py) answers like `mlflow models serve`.

Both servers run here as processes of the test venv (the MLflow version and the scikit-learn of the serving image),
on the same saved model. Every request below goes to both, one at a time; then all of them at once to ours, where
they are batched: each answer must equal what MLflow's server answered to that request alone.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
SERVER_SOURCE = ROOT / "images" / "mlflow"
JSON = "application/json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(port: int, path: str, body: bytes | None = None, content_type: str | None = JSON,
         method: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    if content_type is not None and body is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def started(command: list[str], port: int, log: Path, env: dict) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{command[:3]} exited: {log.read_text()[-3000:]}")
        try:
            if call(port, "/ping")[0] == 200:
                return process
        except OSError:
            pass
        time.sleep(0.3)
    process.kill()
    pytest.fail(f"{command[:3]} did not answer /ping in 180 s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    base = tmp_path_factory.mktemp("models")
    X, y = load_iris(return_X_y=True, as_frame=True)
    mlflow.sklearn.save_model(LogisticRegression(max_iter=500).fit(X, y), base / "iris", input_example=X.head(2))
    sys.path.insert(0, str(HERE))
    from scaled_model import ScaledSum

    example = pd.DataFrame({"a": [1.5, 2.0], "b": [1, 2], "name": ["x", "y"]})
    signature = infer_signature(example, ScaledSum().predict(None, example), params={"factor": 1.0})
    mlflow.pyfunc.save_model(base / "scaled", python_model=ScaledSum(), code_paths=[str(HERE / "scaled_model.py")],
                             signature=signature, input_example=example)
    return {"iris": base / "iris", "scaled": base / "scaled"}


@pytest.fixture(scope="module", params=["iris", "scaled"])
def servers(request, models, tmp_path_factory):
    """(ours, MLflow's) ports for one model, both serving it from the same directory."""
    logs = tmp_path_factory.mktemp(f"logs-{request.param}")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", MLFLOW_DISABLE_TELEMETRY="true",
               PYTHONPATH=str(SERVER_SOURCE))
    ours, theirs, metrics = free_port(), free_port(), free_port()
    model = str(models[request.param])
    processes = [
        started([sys.executable, "-m", "mlplatform_scoring", "--model-uri", model, "--host", "127.0.0.1",
                 "--port", str(ours), "--metrics-port", str(metrics), "--model-name", request.param,
                 "--model-version", "1"], ours, logs / "ours.log", env),
        started([shutil.which("mlflow", path=env["PATH"]), "models", "serve", "-m", model, "--env-manager", "local",
                 "-h", "127.0.0.1", "-p", str(theirs)], theirs, logs / "theirs.log", env),
    ]
    yield {"model": request.param, "ours": ours, "theirs": theirs, "metrics": metrics}
    for process in processes:
        process.terminate()
        process.wait(timeout=60)


def split(columns, rows, **extra) -> bytes:
    return json.dumps({"dataframe_split": {"columns": columns, "data": rows}, **extra}).encode()


IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
SCALED = ["a", "b", "name"]
SCALED_ROWS = [[1.5, 1, "x"], [2.25, 7, "yes"], [-3.0, 0, ""]]


def cases(model: str) -> list[tuple[str, bytes, str | None]]:
    """(name, body, content type): every input format, and what a client gets wrong."""
    columns, rows = (IRIS, IRIS_ROWS) if model == "iris" else (SCALED, SCALED_ROWS)
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    csv = ",".join(columns) + "\n" + "\n".join(",".join(str(v) for v in row) for row in rows) + "\n"
    wrong_type = [list(row) for row in rows]
    wrong_type[1][0] = "not a number"
    many = [rows[i % len(rows)] for i in range(10_000)]
    named = [
        ("split, one row", split(columns, rows[:1]), JSON),
        ("split, three rows", split(columns, rows), JSON),
        ("split with charset", split(columns, rows), "application/json; charset=utf-8"),
        ("split with index", json.dumps({"dataframe_split": {"columns": columns, "data": rows,
                                                             "index": [7, 8, 9]}}).encode(), JSON),
        ("records", json.dumps({"dataframe_records": records}).encode(), JSON),
        ("instances", json.dumps({"instances": records}).encode(), JSON),
        ("inputs", json.dumps({"inputs": {c: [row[i] for row in rows] for i, c in enumerate(columns)}}).encode(), JSON),
        ("csv", csv.encode(), "text/csv"),
        ("10,000 rows", split(columns, many), JSON),
        ("a wrong column", split([*columns[:-1], "nope"], rows), JSON),
        ("a missing column", split(columns[:-1], [row[:-1] for row in rows]), JSON),
        ("a wrong type", split(columns, wrong_type), JSON),
        ("an empty body", b"", JSON),
        ("not JSON", b"this is not json", JSON),
        ("a JSON list", b"[1, 2, 3]", JSON),
        ("two formats", json.dumps({"dataframe_split": {"columns": columns, "data": rows},
                                    "dataframe_records": records}).encode(), JSON),
        ("no format", b'{"data": [[1, 2]]}', JSON),
        ("empty records", b'{"dataframe_records": []}', JSON),
        ("NaN", split(columns, rows).replace(b"1.5", b"NaN", 1).replace(b"5.1", b"NaN", 1), JSON),
        ("an unknown content type", split(columns, rows), "text/plain"),
        ("latin-1", split(columns, rows), "application/json; charset=latin-1"),
        ("no content type", split(columns, rows), None),
    ]
    if model == "scaled":
        named.append(("params", split(columns, rows, params={"factor": 3.0}), JSON))
        named.append(("a wrong param", split(columns, rows, params={"factor": "big"}), JSON))
    return named


def comparable(status: int, body: bytes):
    """What must agree: the status, and the predictions or the error code (messages may carry stack traces)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return status, body
    if isinstance(parsed, dict) and "error_code" in parsed:
        return status, parsed["error_code"]
    return status, parsed


def test_every_request_is_answered_as_mlflow_answers_it(servers):
    ours, theirs = {}, {}
    for name, body, content_type in cases(servers["model"]):
        ours[name] = comparable(*call(servers["ours"], "/invocations", body, content_type))
        theirs[name] = comparable(*call(servers["theirs"], "/invocations", body, content_type))
    assert ours == theirs
    assert ours["split, one row"][0] == 200 and ours["a wrong column"][0] >= 400, ours
    assert len(ours["10,000 rows"][1]["predictions"]) == 10_000


def test_batched_answers_equal_mlflow_answers_alone(servers):
    """Concurrent requests share predict calls; a failing one gets its own error and the others their predictions."""
    requests = [(body, content_type) for _name, body, content_type in cases(servers["model"])
                if len(body) < 100_000] * 6
    with ThreadPoolExecutor(max_workers=32) as pool:
        ours = list(pool.map(lambda r: comparable(*call(servers["ours"], "/invocations", *r)), requests))
    expected = {r: comparable(*call(servers["theirs"], "/invocations", *r)) for r in set(requests)}
    assert ours == [expected[r] for r in requests]
    with urllib.request.urlopen(f"http://127.0.0.1:{servers['metrics']}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    model = f'model="{servers["model"]}"'
    batches = next(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith(f'mlplatform_serving_batch_size_count{{{model},version="1"}}'))
    answered = sum(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith("mlplatform_serving_requests_total{") and model in line)
    assert answered >= len(requests), metrics
    assert batches < answered, f"no two requests shared a predict call ({batches} batches, {answered} requests)"


@pytest.mark.parametrize(("path", "method", "body"), [
    ("/ping", "GET", None), ("/health", "GET", None), ("/version", "GET", None), ("/invocations", "GET", None),
    ("/ping", "POST", b"{}"), ("/nowhere", "GET", None), ("/", "GET", None)])
def test_other_paths_answer_as_mlflow_answers(servers, path, method, body):
    ours = call(servers["ours"], path, body, method=method)
    theirs = call(servers["theirs"], path, body, method=method)
    assert ours == theirs
