"""mlflow_model_version_info: request validation, result shaping, and main() against a fake server."""

from __future__ import annotations

import pytest
from mlflow_unit_fakes import (
    BASE,
    FakeOpener,
    http_error,
    mlflow_error,
    model_version,
    registered_model,
    run_main,
)

from ansible_collections.mlplatform.mlflow.plugins.modules import (
    mlflow_model_version_info as mod,
)

CONNECTION = {"tracking_uri": BASE, "username": "reader", "password": "reader-pass"}


def info_run(args: dict, capsys: pytest.CaptureFixture[str]) -> dict:
    return run_main(mod.main, {**CONNECTION, **args}, capsys)


# ------------------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("alias", "version", "expected"),
    [
        ("champion", None, ("alias", "champion")),
        (None, 3, ("version", 3)),
        (None, "12", ("version", 12)),
        (None, "latest", ("latest", "latest")),
        (None, "LATEST", ("latest", "latest")),
    ],
)
def test_validate_request_accepts(alias, version, expected) -> None:
    assert mod.validate_request(alias, version) == expected


@pytest.mark.parametrize(
    ("alias", "version", "message"),
    [
        ("latest", None, "use version: latest instead"),
        ("v3", None, "use version: 3 instead"),
        ("a b", None, "only contain alphanumerics"),
        (None, 0, "positive integer or 'latest'"),
        (None, "newest", "positive integer or 'latest'"),
        (None, True, "positive integer or 'latest'"),
        (None, [1], "positive integer or 'latest'"),
    ],
)
def test_validate_request_rejects(alias, version, message) -> None:
    problem = mod.validate_request(alias, version)
    assert isinstance(problem, str) and message in problem


def test_summarize_flattens_tags_and_pins_uri() -> None:
    raw = model_version(2, aliases=["champion"]) | {
        "storage_location": "gs://b/models/2",
        "model_id": "",
    }
    result = mod.summarize(raw, "alias:champion")
    assert result["version"] == 2 and result["model_uri"] == "models:/iris/2"
    assert result["tags"] == {"validated": "true"} and result["aliases"] == ["champion"]
    assert result["storage_location"] == "gs://b/models/2" and "model_id" not in result
    assert result["creation_timestamp"] == 1764154800002
    assert result["changed"] is False


def test_readiness_problem() -> None:
    ready = mod.summarize(model_version(1), "version:1")
    assert mod.readiness_problem(ready) is None
    pending = mod.summarize(
        model_version(3, status="PENDING_REGISTRATION"), "version:latest"
    )
    problem = mod.readiness_problem(pending)
    assert problem is not None
    assert (
        "version 3 of registered model 'iris' (version:latest) is PENDING_REGISTRATION, not READY"
        in problem
    )


# ------------------------------------------------------------------------------------- main()


def test_alias_resolves_to_version_and_run(fake_mlflow: FakeOpener, capsys) -> None:
    fake_mlflow.on(
        "GET",
        "registered-models/alias",
        {"model_version": model_version(2, aliases=["champion"])},
    )
    result = info_run({"name": "iris", "alias": "champion"}, capsys)
    assert result["changed"] is False
    assert (result["version"], result["run_id"], result["status"]) == (
        2,
        "run2",
        "READY",
    )
    assert result["resolved_from"] == "alias:champion" and result["aliases"] == [
        "champion"
    ]
    assert fake_mlflow.calls[0].query == {"name": "iris", "alias": "champion"}


def test_missing_alias_lists_existing_ones(fake_mlflow: FakeOpener, capsys) -> None:
    fake_mlflow.on(
        "GET",
        "registered-models/alias",
        mlflow_error(
            400, "INVALID_PARAMETER_VALUE", "Registered model alias prod not found."
        ),
    ).on(
        "GET",
        "registered-models/get",
        registered_model({"champion": 2, "challenger": 3}),
    )
    result = info_run({"name": "iris", "alias": "prod"}, capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        "registered model 'iris' has no alias 'prod' (its aliases: challenger -> 3, champion -> 2)"
    )


def test_missing_model_is_named(fake_mlflow: FakeOpener, capsys) -> None:
    missing = mlflow_error(
        404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=nope not found"
    )
    fake_mlflow.on("GET", "registered-models/alias", missing).on(
        "GET", "registered-models/get", missing
    )
    result = info_run({"name": "nope", "alias": "champion"}, capsys)
    assert result["failed"] is True and result["status"] == 404
    assert result["msg"].startswith(f"registered model 'nope' not found at {BASE}")


def test_explicit_version(fake_mlflow: FakeOpener, capsys) -> None:
    fake_mlflow.on("GET", "model-versions/get", {"model_version": model_version(1)})
    result = info_run({"name": "iris", "version": "1"}, capsys)
    assert result["version"] == 1 and result["resolved_from"] == "version:1"


def test_latest_is_highest_number_across_pages(fake_mlflow: FakeOpener, capsys) -> None:
    fake_mlflow.on("GET", "registered-models/get", registered_model()).on(
        "GET",
        "model-versions/search",
        {
            "model_versions": [model_version(9), model_version(2)],
            "next_page_token": "n",
        },
        {"model_versions": [model_version(10)]},
    )
    result = info_run({"name": "iris", "version": "latest"}, capsys)
    assert result["version"] == 10 and result["resolved_from"] == "version:latest"


def test_latest_without_versions_fails(fake_mlflow: FakeOpener, capsys) -> None:
    fake_mlflow.on("GET", "registered-models/get", registered_model()).on(
        "GET", "model-versions/search", {}
    )
    result = info_run({"name": "iris", "version": "latest"}, capsys)
    assert (
        result["failed"] is True
        and result["msg"] == "registered model 'iris' has no versions yet"
    )


def test_not_ready_fails_unless_allowed(fake_mlflow: FakeOpener, capsys) -> None:
    pending = model_version(3, status="PENDING_REGISTRATION")
    fake_mlflow.on("GET", "model-versions/get", {"model_version": pending})
    result = info_run({"name": "iris", "version": 3}, capsys)
    assert (
        result["failed"] is True
        and "is PENDING_REGISTRATION, not READY" in result["msg"]
    )
    assert result["version"] == 3

    result = info_run({"name": "iris", "version": 3, "require_ready": False}, capsys)
    assert not result.get("failed") and result["status"] == "PENDING_REGISTRATION"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "iris"}, "one of the following is required: alias, version"),
        ({"name": "iris", "alias": "a", "version": 1}, "mutually exclusive"),
        ({"name": "iris", "alias": "Latest"}, "use version: latest"),
        ({"name": "iris", "version": -1}, "positive integer"),
    ],
)
def test_bad_requests_fail_before_any_request(
    fake_mlflow: FakeOpener, capsys, args, message
) -> None:
    result = info_run(args, capsys)
    assert result["failed"] is True and message in result["msg"]
    assert fake_mlflow.calls == []


def test_server_errors_become_one_failure(fake_mlflow: FakeOpener, capsys) -> None:
    fake_mlflow.on("GET", "model-versions/get", http_error(503, b"upstream down"))
    result = info_run({"name": "iris", "version": 1}, capsys)
    assert result["failed"] is True and result["status"] == 503
    assert "(HTTP 503): upstream down" in result["msg"]
    assert len(fake_mlflow.calls) == 4  # retried, then reported once
