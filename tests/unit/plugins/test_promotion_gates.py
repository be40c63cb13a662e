"""The registry gates of a promotion, and the canary steps' domain."""

from __future__ import annotations

import pytest

from ansible_collections.mlplatform.mlflow.plugins.filter.domains import domain_problem
from ansible_collections.mlplatform.mlflow.plugins.filter.promotion import gate_problems
from ansible_collections.mlplatform.mlflow.plugins.modules.mlflow_model_tag import tags_to_write


@pytest.mark.parametrize("gates, candidate, stable, problems", [
    ([], {}, None, []),
    ([{"metric": "accuracy", "min": 0.9}], {"accuracy": 0.95}, None, []),
    ([{"metric": "accuracy", "min": 0.9}], {"accuracy": 0.81}, None, ["accuracy 0.81 is below the gate's min 0.9"]),
    ([{"metric": "rmse", "max": 2}], {"rmse": 2.5}, None, ["rmse 2.5 is above the gate's max 2"]),
    ([{"metric": "accuracy", "min": 0.9}], {}, None, ["the candidate's run has no metric accuracy"]),
    ([{"metric": "accuracy", "max_regression": 0.01}], {"accuracy": 0.90}, None, []),  # first promotion
    ([{"metric": "accuracy", "max_regression": 0.01}], {"accuracy": 0.90}, {"accuracy": 0.95},
     ["accuracy 0.9 is 0.05 worse than the stable version's 0.95 (max_regression 0.01)"]),
    ([{"metric": "rmse", "max_regression": 0.1, "higher_is_better": False}], {"rmse": 1.05}, {"rmse": 1.0}, []),
    ([{"metric": "rmse", "max_regression": 0.1, "higher_is_better": False}], {"rmse": 1.5}, {"rmse": 1.0},
     ["rmse 1.5 is 0.5 worse than the stable version's 1 (max_regression 0.1)"]),
    ([{"metric": "rmse", "max_regression": 0.1}], {"rmse": 1.5}, {},
     ["the stable version's run has no metric rmse to compare with"]),
])
def test_gate_problems(gates, candidate, stable, problems):
    assert gate_problems(gates, candidate, stable) == problems


@pytest.mark.parametrize("gates", [
    "accuracy > 0.9", [{"metric": "accuracy"}], [{"metric": "accuracy", "min": 0.9, "max": 1}],
    [{"metric": "accuracy", "above": 0.9}], [{"metric": "", "min": 1}], [{"metric": "a", "min": "high"}],
    [{"metric": "a", "min": 1, "higher_is_better": "yes"}], ["accuracy"],
])
def test_malformed_gates_are_none(gates):
    assert gate_problems(gates, {}, None) is None


@pytest.mark.parametrize("steps, ok", [([], True), ([100], True), ([10, 50, 100], True), ([1, 100], True),
                                       ([50, 10], False), ([10, 50], False), ([0, 100], False),
                                       ([10, 10, 100], False), ([10, 150], False), ("10,100", False)])
def test_canary_steps_domain(steps, ok):
    assert (domain_problem("canary_steps", steps) == "") is ok


def test_only_tags_whose_value_differs_are_written():
    assert tags_to_write({"a": "1", "b": "2"}, {"a": 1, "b": "3", "c": "x"}) == {"b": "3", "c": "x"}
