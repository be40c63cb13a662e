"""Smoke test of a served model, run inside its pod: send the model's input example to /invocations.

The example is the one logged with the model (serving_input_example.json); without one, a single row is built
from the model's signature. Exit 0 and print the reply when the server answers 200 with predictions.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path


def example_from_signature(model) -> str:
    signature = model.signature
    if signature is None or signature.inputs is None:
        raise SystemExit("SMOKE: the model has neither an input example nor a signature to build one from")
    columns, row = [], []
    for spec in signature.inputs.inputs:
        columns.append(spec.name)
        kind = str(getattr(spec, "type", "double")).lower()
        row.append("" if "string" in kind else (False if "bool" in kind else 0))
    if all(c is None for c in columns):
        return json.dumps({"inputs": [row]})
    return json.dumps({"dataframe_split": {"columns": columns, "data": [row]}})


def describe_error(body: bytes) -> str:
    """The scoring server's message and the exception that caused it (the last line of its stack trace)."""
    try:
        error = json.loads(body)
    except ValueError:
        return body[:500].decode(errors="replace")
    cause = [line for line in str(error.get("stack_trace", "")).splitlines() if line.strip()]
    return f"{error.get('message', '')} Cause: {cause[-1].strip() if cause else 'not reported'}"


def main() -> None:
    import mlflow
    from mlflow.models import Model

    uri = os.environ["MLPLATFORM_MODEL_URI"]
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        example = os.path.join(local, "serving_input_example.json")
        body = Path(example).read_text(encoding="utf-8") if os.path.exists(example) else example_from_signature(
            Model.load(local))
    request = urllib.request.Request("http://127.0.0.1:8080/invocations", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(f"SMOKE FAILED: {uri} answered {exc.code}: {describe_error(exc.read())}")
        sys.exit(1)
    if "predictions" not in reply:
        print(f"SMOKE FAILED: {uri} answered without predictions: {str(reply)[:500]}")
        sys.exit(1)
    print(f"SMOKE OK: {uri} predicted {str(reply['predictions'])[:200]}")


if __name__ == "__main__":
    main()
