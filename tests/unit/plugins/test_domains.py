"""Value domains of the roles' variables: every problem names the variable; good values pass."""

from __future__ import annotations

import pytest

from ansible_collections.mlplatform.mlflow.plugins.filter.domains import domain_problem, value_problems

GOOD = [("dns_label", "mlflow-serving"), ("name", "mlflow"), ("cpu", "250m"), ("cpu", 2), ("memory", "1536Mi"),
        ("count", 0), ("positive", "3"), ("port_or_default", 0), ("port_or_default", 5432), ("node_port", 30500),
        ("node_port", 0), ("percent", 75), ("cron", "17 3 * * *"), ("cron", "*/15 0-6 1,15 * mon-fri"),
        ("gc_age", "30d"), ("gc_age", "1d12h30m"), ("go_duration", "1h30m"), ("host", "mlflow.example.com"),
        ("host", "*.example.com"), ("optional_host", ""), ("dns_subdomain", "mlflow-server"),
        ("http_path", "/"), ("http_path", "/iris"), ("http_path", "/models/iris-v2"), ("optional_root_url", ""),
        ("optional_root_url", "http://mlflow.localhost:8880"), ("optional_root_url", "https://mlflow.example.com/")]

BAD = [("dns_label", "ML_flow"), ("name", "a" * 41), ("cpu", "-1"), ("cpu", "one"), ("cpu", "0"),
       ("memory", "1.5GB"), ("count", -1), ("count", "two"), ("positive", 0), ("positive", True),
       ("port_or_default", 70000), ("node_port", 8080), ("percent", 0), ("cron", "17 3 * *"),
       ("cron", "61 3 * * *"), ("gc_age", "30 days"), ("gc_age", "2h1d"), ("gc_age", ""), ("go_duration", "1 hour"),
       ("host", "https://mlflow.example.com"), ("host", "mlflow.example.com/x"), ("host", "mlflow.example.com:443"),
       ("http_path", "iris"), ("http_path", "/iris/"), ("http_path", "/a//b"), ("http_path", "/iris?x=1"),
       ("http_path", "/my model"), ("optional_root_url", "mlflow.example.com"),
       ("optional_root_url", "https://mlflow.example.com/ui"), ("optional_root_url", "ftp://mlflow.example.com")]


@pytest.mark.parametrize("domain, value", GOOD)
def test_good_values_pass(domain, value):
    assert domain_problem(domain, value) == ""


@pytest.mark.parametrize("domain, value", BAD)
def test_bad_values_are_refused(domain, value):
    assert domain_problem(domain, value)


def test_problems_name_the_variable_and_the_value():
    problems = value_problems([["mlflow_server_replicas", "positive", -1], ["mlflow_server_name", "name", "mlflow"],
                               ["mlflow_server_extra_allowed_hosts", "allowed_hosts", ["ok:8080", "http://x/y"]]])
    assert problems[0] == "mlflow_server_replicas must be a whole number, 1 or more (got -1)"
    assert len(problems) == 2 and "http://x/y" in problems[1]


def test_extra_env_cannot_take_over_what_the_role_sets():
    problems = value_problems([["mlflow_server_extra_env", "env_names:MLFLOW_BACKEND_STORE_URI,PGPASSWORD",
                                {"MLFLOW_BACKEND_STORE_URI": "sqlite://", "GOOD_NAME": "1", "bad-name": "x"}]])
    assert any("bad-name" in p for p in problems)
    assert any("must not set MLFLOW_BACKEND_STORE_URI" in p for p in problems)
