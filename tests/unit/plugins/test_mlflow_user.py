"""mlflow_user's plan: which grants to revoke and which to give, so the user ends with what is declared."""

from __future__ import annotations

from ansible_collections.mlplatform.mlflow.plugins.module_utils.mlflow import current_grants, grant_changes

MODEL, EXPERIMENT = ("registered_model", "iris"), ("experiment", "3")


def test_nothing_changes_when_the_grants_are_as_declared():
    assert grant_changes({MODEL: "READ"}, {MODEL: "READ"}, purge=True) == ([], [])


def test_a_changed_permission_is_revoked_then_granted():
    assert grant_changes({MODEL: "READ"}, {MODEL: "EDIT"}, purge=False) == ([MODEL], [(MODEL, "EDIT")])


def test_unlisted_grants_stay_unless_purged():
    assert grant_changes({MODEL: "READ", EXPERIMENT: "READ"}, {MODEL: "READ"}, purge=False) == ([], [])
    assert grant_changes({MODEL: "READ", EXPERIMENT: "READ"}, {MODEL: "READ"}, purge=True) == ([EXPERIMENT], [])


def test_only_the_users_own_experiment_and_model_grants_count():
    rows = [{"resource_type": "registered_model", "resource_pattern": "iris", "permission": "READ"},
            {"resource_type": "workspace", "resource_pattern": "*", "permission": "READ"}]
    assert current_grants(rows) == {MODEL: "READ"}
