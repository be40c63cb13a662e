"""mlflow_model_tag: main() end to end against a fake server (the promotion records)."""

from __future__ import annotations

import pytest
from mlflow_unit_fakes import BASE, FakeOpener, model_version, registered_model, run_main

from ansible_collections.mlplatform.mlflow.plugins.modules import mlflow_model_tag as mod

CONNECTION = {"tracking_uri": BASE, "username": "deployer", "password": "s3cret-pass"}


def with_tags(payload: dict, tags: dict) -> dict:
    payload["tags"] = [{"key": key, "value": value} for key, value in tags.items()]
    return payload


def test_writes_only_the_tags_that_differ_on_the_registered_model(fake_mlflow: FakeOpener, capsys) -> None:
    model = registered_model()
    with_tags(model["registered_model"], {"owner": "ml", "mlplatform.last_change": "old"})
    fake_mlflow.on("GET", "registered-models/get", model).on("POST", "registered-models/set-tag", {})
    result = run_main(mod.main, {**CONNECTION, "name": "iris", "_ansible_diff": True,
                                 "tags": {"owner": "ml", "mlplatform.last_change": "new"}}, capsys)
    assert result["changed"] and result["changed_tags"] == ["mlplatform.last_change"]
    assert [c.body for c in fake_mlflow.calls if c.method == "POST"] == [
        {"name": "iris", "key": "mlplatform.last_change", "value": "new"}]
    assert result["diff"]["before"] == {"mlplatform.last_change": "old"}


def test_tags_a_version_and_changes_nothing_the_second_time(fake_mlflow: FakeOpener, capsys) -> None:
    version = with_tags(model_version(2), {"mlplatform.promote": "{}"})
    fake_mlflow.on("GET", "model-versions/get", {"model_version": version})
    result = run_main(mod.main, {**CONNECTION, "name": "iris", "version": 2, "tags": {"mlplatform.promote": "{}"}},
                      capsys)
    assert not result["changed"] and fake_mlflow.requests("POST") == []


def test_check_mode_writes_nothing(fake_mlflow: FakeOpener, capsys) -> None:
    fake_mlflow.on("GET", "model-versions/get", {"model_version": model_version(2)})
    result = run_main(mod.main, {**CONNECTION, "name": "iris", "version": 2, "tags": {"a": "b"},
                                 "_ansible_check_mode": True}, capsys)
    assert result["changed"] and fake_mlflow.requests("POST") == []


@pytest.mark.parametrize("value", ["x" * 5001])
def test_refuses_values_mlflow_would_refuse(fake_mlflow: FakeOpener, capsys, value) -> None:
    result = run_main(mod.main, {**CONNECTION, "name": "iris", "tags": {"a": value}}, capsys)
    assert result["failed"] and "longer than 5000" in result["msg"] and fake_mlflow.calls == []
