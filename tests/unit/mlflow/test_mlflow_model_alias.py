"""mlflow_model_alias: the decision (a pure function) and main() end to end against a fake server."""

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
    mlflow_model_alias as mod,
)

CONNECTION = {"tracking_uri": BASE, "username": "deployer", "password": "s3cret-pass"}


# ------------------------------------------------------------------------------------- decisions


@pytest.mark.parametrize(
    ("current", "state", "version", "action", "previous", "after"),
    [
        ({}, "present", 1, "set", None, 1),
        ({"champion": 1}, "present", 1, None, 1, 1),
        ({"champion": 1}, "present", 2, "set", 1, 2),
        ({"other": 2}, "present", 2, "set", None, 2),
        ({}, "absent", None, None, None, None),
        ({"champion": 2}, "absent", None, "delete", 2, None),
        ({"champion": 2}, "absent", 2, "delete", 2, None),
        ({"champion": 2}, "absent", 1, None, 2, 2),
        ({}, "absent", 1, None, None, None),
    ],
)
def test_plan_alias(
    current: dict,
    state: str,
    version: int | None,
    action: str | None,
    previous: int | None,
    after: int | None,
) -> None:
    plan = mod.plan_alias(current, "champion", state, version)
    assert (plan.action, plan.previous_version, plan.version) == (
        action,
        previous,
        after,
    )
    assert plan.changed is (action is not None)


def test_plan_diff_is_alias_to_version() -> None:
    plan = mod.plan_alias({"champion": 1}, "champion", "present", 2)
    diff = plan.diff("iris")
    assert (diff["before"], diff["after"]) == ({"champion": 1}, {"champion": 2})
    deleted = mod.plan_alias({"champion": 1}, "champion", "absent", None).diff("iris")
    assert (deleted["before"], deleted["after"]) == ({"champion": 1}, {})


@pytest.mark.parametrize(
    ("alias", "state", "version", "problem"),
    [
        ("champion", "present", 1, None),
        ("champion", "absent", None, None),
        ("champion", "present", None, "version is required"),
        ("champion", "present", 0, "positive integer"),
        ("champion", "absent", -3, "positive integer"),
        ("champion", "present", True, "positive integer"),
        ("latest", "present", 1, "reserved"),
        ("v2", "absent", None, "reserved"),
        ("two words", "present", 1, "only contain"),
    ],
)
def test_validate_params(
    alias: str, state: str, version: object, problem: str | None
) -> None:
    found = mod.validate_params(alias, state, version)
    assert (found is None) if problem is None else (problem in found)


# ------------------------------------------------------------------------------------- main()


def mod_run(args: dict, capsys: pytest.CaptureFixture[str]) -> dict:
    return run_main(mod.main, args, capsys)


def serve(
    fake: FakeOpener, aliases: dict[str, int], versions: tuple[int, ...] = (1, 2)
) -> FakeOpener:
    def version_answer(call):
        number = int(call.query["version"])
        if number not in versions:
            raise mlflow_error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"Model Version (name=iris, version={number}) not found",
            )
        return {"model_version": model_version(number)}

    return (
        fake.on("GET", "registered-models/get", registered_model(aliases))
        .on("GET", "model-versions/get", version_answer)
        .on("POST", "registered-models/alias", {})
        .on("DELETE", "registered-models/alias", {})
    )


def test_check_mode_reports_the_change_and_writes_nothing(
    fake_mlflow: FakeOpener, capsys
) -> None:
    serve(fake_mlflow, {})
    args = {
        **CONNECTION,
        "name": "iris",
        "alias": "champion",
        "version": 1,
        "_ansible_check_mode": True,
    }
    result = mod_run(args, capsys)
    assert result["changed"] is True
    assert result["previous_version"] is None and result["version"] == 1
    assert fake_mlflow.requests("POST") == [] and fake_mlflow.requests("DELETE") == []


def test_sets_alias_with_diff(fake_mlflow: FakeOpener, capsys) -> None:
    serve(fake_mlflow, {})
    result = mod_run(
        {
            **CONNECTION,
            "name": "iris",
            "alias": "champion",
            "version": 1,
            "_ansible_diff": True,
        },
        capsys,
    )
    assert result["changed"] is True
    assert result["diff"]["before"] == {} and result["diff"]["after"] == {"champion": 1}
    post = [c for c in fake_mlflow.calls if c.method == "POST"]
    assert [c.body for c in post] == [
        {"name": "iris", "alias": "champion", "version": "1"}
    ]


def test_already_there_sends_no_write(fake_mlflow: FakeOpener, capsys) -> None:
    serve(fake_mlflow, {"champion": 1})
    result = mod_run(
        {**CONNECTION, "name": "iris", "alias": "champion", "version": "1"}, capsys
    )
    assert result["changed"] is False and result["previous_version"] == 1
    assert fake_mlflow.requests() == [("GET", "registered-models/get")]
    assert "diff" not in result


def test_move_returns_previous_version(fake_mlflow: FakeOpener, capsys) -> None:
    serve(fake_mlflow, {"champion": 1})
    result = mod_run(
        {**CONNECTION, "name": "iris", "alias": "champion", "version": 2}, capsys
    )
    result.pop("invocation", None)
    assert result == {
        "changed": True,
        "name": "iris",
        "alias": "champion",
        "version": 2,
        "previous_version": 1,
    }
    assert fake_mlflow.requests("POST") == [("POST", "registered-models/alias")]


def test_delete_then_nothing_left_to_delete(fake_mlflow: FakeOpener, capsys) -> None:
    serve(fake_mlflow, {"champion": 2})
    result = mod_run(
        {**CONNECTION, "name": "iris", "alias": "champion", "state": "absent"}, capsys
    )
    assert (
        result["changed"] is True
        and result["previous_version"] == 2
        and result["version"] is None
    )
    assert fake_mlflow.calls[-1].method == "DELETE"
    assert fake_mlflow.calls[-1].body == {"name": "iris", "alias": "champion"}

    fake_mlflow.calls.clear()
    serve(fake_mlflow, {})
    result = mod_run(
        {**CONNECTION, "name": "iris", "alias": "champion", "state": "absent"}, capsys
    )
    assert result["changed"] is False
    assert fake_mlflow.requests("DELETE") == []


def test_missing_version_fails_even_in_check_mode(
    fake_mlflow: FakeOpener, capsys
) -> None:
    serve(fake_mlflow, {"champion": 1})
    args = {
        **CONNECTION,
        "name": "iris",
        "alias": "champion",
        "version": 9,
        "_ansible_check_mode": True,
    }
    result = mod_run(args, capsys)
    assert result["failed"] is True and result["status"] == 404
    assert result["msg"].startswith("version 9 of registered model 'iris' not found")
    assert fake_mlflow.requests("POST") == []


def test_missing_model_is_named(fake_mlflow: FakeOpener, capsys) -> None:
    fake_mlflow.on(
        "GET",
        "registered-models/get",
        mlflow_error(
            404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=nope not found"
        ),
    )
    result = mod_run(
        {**CONNECTION, "name": "nope", "alias": "champion", "version": 1}, capsys
    )
    assert (
        result["failed"] is True and result["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    )
    assert result["msg"].startswith(f"registered model 'nope' not found at {BASE}")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"alias": "latest"}, "reserved"),
        ({"alias": "V7"}, "reserved"),
        ({"alias": "no spaces"}, "only contain alphanumerics"),
        ({"version": 0}, "positive integer"),
        ({"version": -2}, "positive integer"),
        ({"version": "two"}, "int"),
        ({"version": None}, "version"),
        ({"state": "gone"}, "state"),
    ],
)
def test_bad_input_fails_before_any_request(
    fake_mlflow: FakeOpener, capsys, overrides: dict, reason: str
) -> None:
    args = {
        **CONNECTION,
        "name": "iris",
        "alias": "champion",
        "version": 1,
        **overrides,
    }
    result = mod_run({k: v for k, v in args.items() if v is not None}, capsys)
    assert result["failed"] is True and reason in result["msg"], result["msg"]
    assert fake_mlflow.calls == []


def test_unauthenticated_failure_is_readable_and_hides_password(
    fake_mlflow: FakeOpener, capsys
) -> None:
    fake_mlflow.on(
        "GET", "registered-models/get", http_error(401, b"You are not authenticated.")
    )
    result = mod_run(
        {**CONNECTION, "name": "iris", "alias": "champion", "version": 1}, capsys
    )
    assert result["failed"] is True and result["status"] == 401
    assert f"authentication failed for user 'deployer' at {BASE}" in result["msg"]
    assert "s3cret-pass" not in str(result)


def test_connection_from_environment(
    fake_mlflow: FakeOpener, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", BASE)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "env-token")
    serve(fake_mlflow, {"champion": 1})
    result = mod_run({"name": "iris", "alias": "champion", "version": 1}, capsys)
    assert result["changed"] is False
    assert fake_mlflow.calls[0].headers["Authorization"] == "Bearer env-token"
    assert fake_mlflow.calls[0].url.startswith(BASE)


def test_username_without_password_is_refused(fake_mlflow: FakeOpener, capsys) -> None:
    args = {
        "tracking_uri": BASE,
        "username": "deployer",
        "name": "iris",
        "alias": "a",
        "version": 1,
    }
    result = mod_run(args, capsys)
    assert result["failed"] is True and "password" in result["msg"]
    assert fake_mlflow.calls == []
