"""mlflow_model_uri_info: URI parsing and pinning decisions (no I/O); the preflight filter over the same grammar."""

from __future__ import annotations

import pytest

from ansible_collections.mlplatform.mlflow.plugins.filter.models import model_uri_problem
from ansible_collections.mlplatform.mlflow.plugins.module_utils import mlflow as mod
from ansible_collections.mlplatform.mlflow.plugins.module_utils.mlflow import ModelReference, parse_model_uri

RUN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/iris@champion", ModelReference("alias", name="iris", alias="champion")),
        ("models:/iris/3", ModelReference("version", name="iris", version=3)),
        ("models:/iris/latest", ModelReference("latest", name="iris")),
        (f"runs:/{RUN}/model", ModelReference("run", run_id=RUN, artifact_path="model")),
        (f"runs:/{RUN}/models/iris/", ModelReference("run", run_id=RUN, artifact_path="models/iris")),
    ],
)
def test_parse_model_uri_accepts(uri: str, expected: ModelReference) -> None:
    assert parse_model_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "detail"),
    [
        ("models:/iris", "models:/NAME@ALIAS"),
        ("models:/iris/0", "VERSION must be a positive integer"),
        ("models:/iris/two", "VERSION must be a positive integer"),
        ("models:/iris@latest", "reserved"),
        ("models:/@champion", "must be one of"),
        ("models:/a/b/3", "must be one of"),
        ("runs:/ABCDEF/model", "32 lower-case hex digits"),
        (f"runs:/{RUN}", "PATH must name"),
        (f"runs:/{RUN}/../secrets", "PATH must name"),
        ("s3://bucket/model", "must be one of"),
        ("models:/iris @champion", "must be one of"),
    ],
)
def test_parse_model_uri_rejects(uri: str, detail: str) -> None:
    problem = parse_model_uri(uri)
    assert isinstance(problem, str) and detail in problem and repr(uri) in problem


def test_the_preflight_filter_says_what_the_parser_says() -> None:
    assert model_uri_problem("models:/iris@champion") == "" and model_uri_problem(f"runs:/{RUN}/model") == ""
    assert "VERSION must be a positive integer" in model_uri_problem("models:/iris/0")
    assert "must be one of" in model_uri_problem(None) and "must be one of" in model_uri_problem(3)


def test_registry_pin_and_readiness() -> None:
    reference = ModelReference("alias", name="iris", alias="champion")
    pinned = mod.pin_registry_version(reference, {"version": "4", "run_id": RUN, "status": "READY", "model_id": "m-1"})
    assert pinned["model_uri"] == "models:/iris/4" and pinned["model_id"] == "m-1"
    assert mod.readiness_problem(pinned) is None
    pending = mod.pin_registry_version(reference, {"version": "5", "status": "PENDING_REGISTRATION"})
    assert "not READY" in mod.readiness_problem(pending)


def test_has_mlmodel_needs_the_file_under_the_path() -> None:
    assert mod.has_mlmodel([{"path": "model/MLmodel", "is_dir": False}], "model")
    assert not mod.has_mlmodel([{"path": "model/MLmodel", "is_dir": True}], "model")
    assert not mod.has_mlmodel([{"path": "model/conda.yaml"}], "model")
