"""service_account_key_problem: accepts a service-account key, says why anything else is not one, never leaks it."""

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
