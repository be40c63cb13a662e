"""Smoke test of a served model, run inside its pod: send the model's input example to /invocations.

The example is the one logged with the model (serving_input_example.json); without one, a single row is built
from the model's signature. Each model URI given as an argument (the version it replaces) has its example sent
too: a new version must accept what the old one was fed. Exit 0 and print the replies when the server answers each
with 200 and predictions.
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


def input_example(uri: str, tmp: str) -> str:
    """The model's logged serving example, else one row built from its signature (two small files at most)."""
    from mlflow.models import Model
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(uri)
    try:
        return Path(repository.download_artifacts("serving_input_example.json", tmp)).read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - no example logged: build one
        return example_from_signature(Model.load(repository.download_artifacts("MLmodel", tmp)))


def main() -> None:
    uri = os.environ["MLPLATFORM_MODEL_URI"]
    for source in [uri, *sys.argv[1:]]:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                body = input_example(source, tmp)
            except Exception as exc:  # the replaced version may be gone from the registry
                if source == uri:
                    raise
                print(f"SMOKE NOTE: no input example of {source} to send ({exc}); not checked")
                continue
        whose = "its input example" if source == uri else f"the input example of {source}, which it replaces"
        request = urllib.request.Request("http://127.0.0.1:8080/invocations", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            print(f"SMOKE FAILED: {uri} answered {whose} with {exc.code}: {describe_error(exc.read())}")
            sys.exit(1)
        if "predictions" not in reply:
            print(f"SMOKE FAILED: {uri} answered {whose} without predictions: {str(reply)[:500]}")
            sys.exit(1)
        print(f"SMOKE OK: {uri} predicted {str(reply['predictions'])[:200]} for {whose}")


if __name__ == "__main__":
    main()
