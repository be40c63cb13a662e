"""The filters that size and wire the platform."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mlplatform.mlflow.plugins.filter import platform


@pytest.mark.parametrize("quantity, cores", [("500m", 0.5), ("2", 2.0), (1.5, 1.5), ("1500m", 1.5)])
def test_cpu_cores(quantity, cores):
    assert platform.cpu_cores(quantity) == cores


@pytest.mark.parametrize("quantity, mib", [("1536Mi", 1536), ("2Gi", 2048), ("1G", 953), ("512Ki", 0)])
def test_mebibytes(quantity, mib):
    assert platform.mebibytes(quantity) == mib


@pytest.mark.parametrize("bad", ["two", "1.5.2", "-1", "500mm"])
def test_cpu_cores_rejects_nonsense(bad):
    with pytest.raises(AnsibleFilterError, match="not a Kubernetes CPU quantity"):
        platform.cpu_cores(bad)


def test_database_uri_encodes_every_special_character_of_the_password():
    password = "p@ss:w/rd%#? x'\""
    uri = platform.database_uri("postgresql", "ml user", password, "db.example", 5432, "mlflow")
    assert uri.startswith("postgresql+psycopg2://")
    parts = urlsplit(uri)
    assert unquote(parts.password) == password
    assert unquote(parts.username) == "ml user"
    assert parts.hostname == "db.example" and parts.port == 5432 and parts.path == "/mlflow"


def test_database_uri_bounds_how_long_a_connection_may_hang():
    """A database that vanished must not hold a server thread for minutes: libpq has no connect timeout and no
    keepalive tuning unless the URI asks for them (psycopg2 passes the query to libpq)."""
    query = dict(parse_qsl(urlsplit(platform.database_uri("postgresql", "u", "p", "h", 5432, "d")).query))
    assert query == {"connect_timeout": "10", "keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10",
                     "keepalives_count": "3", "tcp_user_timeout": "30000"}


def test_database_uri_mysql_driver_and_passwordless_iam_user():
    assert platform.database_uri("mysql", "sa@p.iam", "", "127.0.0.1", 3306, "mlflow") == \
        "mysql+pymysql://sa%40p.iam@127.0.0.1:3306/mlflow?connect_timeout=10"


def test_database_uri_rejects_an_unknown_engine():
    with pytest.raises(AnsibleFilterError, match="engine must be one of"):
        platform.database_uri("oracle", "u", "p", "h", 1, "d")


def test_allowed_hosts_cover_every_service_name_with_and_without_port():
    hosts = platform.allowed_hosts("mlflow", "ml", ["mlflow.example.com"])
    for name in ("mlflow", "mlflow.ml", "mlflow.ml.svc", "mlflow.ml.svc.cluster.local"):
        assert name in hosts and f"{name}:*" in hosts
    assert "mlflow.example.com" in hosts
    assert not any(h.startswith("198.") or h == "*" for h in hosts)


def test_browser_origins_are_each_host_over_http_and_https_then_the_extra_ones():
    assert platform.browser_origins(["mlflow.localhost:8880", "", "mlflow.example.com"],
                                    ["https://portal.example.com", "http://mlflow.localhost:8880"]) == [
        "http://mlflow.localhost:8880", "https://mlflow.localhost:8880", "http://mlflow.example.com",
        "https://mlflow.example.com", "https://portal.example.com"]
    assert platform.browser_origins([]) == []


def test_restorable_keeps_spec_and_drops_server_fields():
    live = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "m", "namespace": "ns", "uid": "x", "resourceVersion": "9", "labels": {"a": "b"},
                         "annotations": {"deployment.kubernetes.io/revision": "4", "keep": "1"}},
            "spec": {"replicas": 2}, "status": {"replicas": 2}}
    restored = platform.restorable(live)
    expected_metadata = {"name": "m", "namespace": "ns", "labels": {"a": "b"}, "annotations": {"keep": "1"}}
    assert restored == {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": expected_metadata,
                        "spec": {"replicas": 2}}


def test_serving_plan_marks_only_moved_versions_as_changed():
    served = [{"metadata": {"name": "iris", "annotations": {"mlplatform.mlflow/model-version": "2",
                                                            "mlplatform.mlflow/model-uri": "models:/Iris/2"}}}]
    models = [{"name": "iris", "model": "Iris", "alias": "champion"}, {"name": "new", "model": "New", "version": 1}]
    resolved = [{"version": 2, "run_id": "r2"}, {"version": 1, "run_id": "r1"}]
    defaults = {"replicas": 2, "cpu_limit": "2", "timeout": 60}
    plan = platform.serving_plan(models, resolved, defaults, served)
    assert [m["version_changed"] for m in plan] == [False, True]
    assert plan[0]["model_uri"] == "models:/Iris/2" and plan[0]["workers"] == 2 and plan[1]["previous_version"] == ""


def test_serving_plan_remembers_the_version_before_the_last_change():
    annotations = {"mlplatform.mlflow/model-version": "2", "mlplatform.mlflow/previous-version": "1",
                   "mlplatform.mlflow/model-uri": "models:/Iris/2"}
    served = [{"metadata": {"name": "iris", "annotations": annotations}}]
    models = [{"name": "iris", "model": "Iris", "alias": "champion"}]
    defaults = {"cpu_limit": "1"}
    assert platform.serving_plan(models, [{"version": 2}], defaults, served)[0]["previous_version"] == "1"
    moved = platform.serving_plan(models, [{"version": 3}], defaults, served)[0]
    assert moved["version_changed"] and moved["previous_version"] == "2"


def test_serving_plan_pins_a_run_model_by_its_uri():
    run = "0123456789abcdef0123456789abcdef"
    models = [{"name": "fraud", "model_uri": f"runs:/{run}/model"}]
    resolved = [{"version": 0, "run_id": run, "model_uri": f"runs:/{run}/model"}]
    plan = platform.serving_plan(models, resolved, {"cpu_limit": "1"}, [])[0]
    assert plan["model_uri"] == f"runs:/{run}/model" and plan["version"] == f"run-{run}" and plan["version_changed"]
    served = [{"metadata": {"name": "fraud", "annotations": {"mlplatform.mlflow/model-uri": f"runs:/{run}/model",
                                                             "mlplatform.mlflow/model-version": f"run-{run}"}}}]
    assert not platform.serving_plan(models, resolved, {"cpu_limit": "1"}, served)[0]["version_changed"]
    moved = [{"version": 0, "run_id": run, "model_uri": f"runs:/{run}/model2"}]
    assert platform.serving_plan(models, moved, {"cpu_limit": "1"}, served)[0]["version_changed"]
