"""gcp_secret_info against the discovery-checked fake: existence and enabled versions, read-only, no value read."""

from __future__ import annotations

from ansible_collections.mlplatform.mlflow.plugins.modules import gcp_secret, gcp_secret_info


def test_reports_missing_empty_and_present_secrets_without_writing(run_module, fake_google):
    run_module(gcp_secret, {"name": "mlflow-db-password", "value": "s3cret"})
    fake_google.inject("secretmanager.projects.secrets.addVersion", 400, times=1)  # leave this one without a version
    failed = run_module(gcp_secret, {"name": "mlflow-admin-password"})
    assert failed.get("failed"), failed
    writes = len(fake_google.writes)

    out = run_module(gcp_secret_info, {"names": ["mlflow-db-password", "mlflow-admin-password", "absent-one"]},
                     check=True)

    assert out["changed"] is False and "failed" not in out, out
    assert out["missing"] == ["absent-one"]
    assert out["without_version"] == ["mlflow-admin-password"]
    assert [(s["name"], s["exists"], s["enabled_versions"]) for s in out["secrets"]] == [
        ("mlflow-db-password", True, 1), ("mlflow-admin-password", True, 0), ("absent-one", False, 0)]
    assert out["secrets"][0]["resource"] == "projects/123456789012/secrets/mlflow-db-password"
    assert len(fake_google.writes) == writes
    assert not fake_google.calls("secretmanager.projects.secrets.versions.access"), "no value may be read"
    assert "s3cret" not in str(out)


def test_refuses_a_bad_secret_id_naming_the_option(run_module):
    out = run_module(gcp_secret_info, {"names": ["ok-name", "bad name!"]})
    assert out["failed"] and "names[1]" in out["msg"], out


def test_summarize_is_pure():
    assert gcp_secret_info.summarize([]) == {"changed": False, "secrets": [], "missing": [], "without_version": []}
