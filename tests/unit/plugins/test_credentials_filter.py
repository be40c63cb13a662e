"""The credential filters: service_account_key_problem (a service-account key, or why not) and users_problems (MLflow
users as code); neither ever puts a secret in its answer."""

from __future__ import annotations

import json

import pytest

from ansible_collections.mlplatform.mlflow.plugins.filter import credentials

# Not a real key (a scanner-friendly fake): the filter checks the PEM armour, not the key material.
ARMOUR = "PRIVATE" + " KEY-----"
PEM = f"-----BEGIN {ARMOUR}\nMIIEvQIBADANsecretsecret\n-----END {ARMOUR}\n"
KEY = {"type": "service_account", "project_id": "p", "private_key_id": "k1", "private_key": PEM,
       "client_email": "proxy@p.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token"}


@pytest.mark.parametrize("given", [json.dumps(KEY), json.dumps(KEY, indent=2) + "\n", KEY])
def test_a_service_account_key_has_no_problem(given):
    assert credentials.service_account_key_problem(given) == ""


@pytest.mark.parametrize(
    "given, problem",
    [
        ("", "it is empty"),
        (None, "it is empty"),
        ("not json " + PEM, "it is not JSON"),
        ("[1, 2]", "it is not a JSON object"),
        (json.dumps({**KEY, "type": "authorized_user"}), '"type" is not "service_account"'),
        (json.dumps({**KEY, "type": "external_account"}), '"type" is not "service_account"'),
        (json.dumps({k: v for k, v in KEY.items() if k != "private_key"}), 'it has no "private_key"'),
        (json.dumps({**KEY, "client_email": "", "token_uri": 5}), 'it has no "client_email", "token_uri"'),
        (json.dumps({**KEY, "private_key": "MIIEvQIBADANsecretsecret"}), '"private_key" is not a PEM private key'),
    ],
)
def test_anything_else_is_refused_with_a_reason_that_reveals_nothing(given, problem):
    answer = credentials.service_account_key_problem(given)
    assert problem in answer
    for secret in ("MIIEvQ", "secretsecret", "proxy@p", "oauth2"):
        assert secret not in answer


# ------------------------------------------------------------------------------------- users as code

GOOD_USERS = [
    {"name": "ci", "password": "long-enough-secret", "permissions": [
        {"resource_type": "registered_model", "resource_id": "iris", "permission": "EDIT"}]},
    {"name": "reader", "password_secret": {"name": "mlflow-users", "key": "reader"}},
    {"name": "gone", "state": "absent"},
]


def test_well_formed_users_have_no_problem():
    assert credentials.users_problems(GOOD_USERS, "mlflow_server_users", "admin") == []


@pytest.mark.parametrize("users, expected", [
    ([{"name": "ci"}], "mlflow_server_users[0] (ci) needs exactly one of password"),
    ([{"name": "ci", "password": "x" * 10, "password_secret": {"name": "s", "key": "k"}}], "exactly one of"),
    ([{"name": "ci", "password": "short"}], "at least 8 characters"),
    ([{"name": "ci", "password_secret": {"name": "s"}}], "password_secret must be {name: SECRET, key: KEY}"),
    ([{"name": "admin", "password": "x" * 10}], "is the admin (admin)"),
    ([{"name": "ci", "state": "gone"}], "state must be present or absent"),
    ([{"name": "ci", "password": "x" * 10, "permissions": [{"resource_type": "run", "resource_id": "1"}]}],
     "mlflow_server_users[0].permissions[0] (ci) must be"),
    ([{"name": "ci", "password": "x" * 10, "permissions": [
        {"resource_type": "experiment", "resource_id": "1", "permission": "WRITE"}]}], "permissions[0]"),
    ([{"name": "ci", "password": "x" * 10, "role": "admin"}], "unknown fields ['role']"),
    ([{"name": "ci", "state": "absent"}, {"name": "ci", "state": "absent"}], "more than once: ['ci']"),
    ([{"password": "x" * 10}], "mlflow_server_users[0] must be a mapping with a name"),
    ("ci", "must be a list of users"),
])
def test_users_problems_name_the_variable_and_never_the_password(users, expected):
    problems = credentials.users_problems(users, "mlflow_server_users", "admin")
    assert any(expected in problem for problem in problems), problems
    assert not any(secret in problem for problem in problems for secret in ("x" * 10, "short"))
