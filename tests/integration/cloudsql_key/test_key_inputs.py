"""Where a Cloud SQL key may go, and where it shows: refused on the GKE inventories, rendered only into its Secret.

The staging and prod inventories are the real ones; the refusal comes from mlflow_server's preflight, before any
cluster or Google API is contacted. The render writes manifests and applies nothing.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from ..ansible_run import run_playbook

ARMOUR = "PRIVATE" + " KEY-----"
# The shape of a key; its "private key" is random text, never a real one.
KEY = {"type": "service_account", "project_id": "mlp-staging", "private_key_id": "0123abcd",
       "private_key": f"-----BEGIN {ARMOUR}\nZmFrZS1rZXktbWF0ZXJpYWwtZm9yLXRoZS10ZXN0LW9ubHk=\n-----END {ARMOUR}\n",
       "client_email": "mlflow-proxy@mlp-staging.iam.gserviceaccount.com",
       "token_uri": "https://oauth2.googleapis.com/token"}
MARKER = "ZmFrZS1rZXktbWF0ZXJpYWwtZm9yLXRoZS10ZXN0LW9ubHk"


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    path = tmp_path / "proxy-key.json"
    path.write_text(json.dumps(KEY))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("inventory", ["staging", "prod"])
@pytest.mark.parametrize("variable", ["mlflow_server_cloudsql_credentials_file", "mlflow_server_cloudsql_credentials"])
def test_a_key_is_refused_on_the_gke_inventories(kubeconfig, key_path, inventory, variable):
    value = str(key_path) if variable.endswith("_file") else json.dumps(KEY)
    result = run_playbook("tests/integration/reliability/bad_input.yml", {
        "bad_role": "mlflow_server", variable: value,
        # the inventories' placeholders (refused by their own checks first) and vault variable
        "gcp_project": "mlp-staging", "mlplatform_host": "mlflow.example.com",
        "vault_mlflow_admin_password": "not-used",
    }, inventory=f"inventories/{inventory}", timeout=300)
    assert result.rc != 0
    assert f"{variable} is refused on a Workload Identity (GKE) inventory" in result.text, result.output[-3000:]
    assert "iam.gke.io/gcp-service-account" in result.text
    assert MARKER not in result.output
    assert "Traceback" not in result.output


def test_the_render_puts_the_key_only_in_its_secret(kubeconfig, key_path, tmp_path):
    out = tmp_path / "manifests"
    variables = {"mlflow_server_cloudsql_credentials_file": str(key_path), "mlflow_server_render_dir": str(out)}
    result = run_playbook("tests/integration/cloudsql_key/render.yml", variables, timeout=300)
    assert result.rc == 0, result.output[-3000:]
    assert MARKER not in result.output
    files = {p.name: yaml.safe_load(p.read_text()) for p in out.glob("*.yaml")}
    secret = files["secret-mlflow-cloudsql-credentials.yaml"]
    assert json.loads(base64.b64decode(secret["data"]["credentials.json"])) == KEY
    assert (out / "secret-mlflow-cloudsql-credentials.yaml").stat().st_mode & 0o077 == 0
    leaks = [name for name, p in ((p.name, p) for p in out.glob("*.yaml"))
             if name != "secret-mlflow-cloudsql-credentials.yaml" and MARKER in p.read_text()]
    assert not leaks, leaks
    deployment = files["deployment-mlflow.yaml"]
    job = next(obj for name, obj in files.items() if name.startswith("job-mlflow-upgrade-"))
    for pod in (deployment["spec"]["template"], job["spec"]["template"]):
        proxy = next(c for c in pod["spec"]["initContainers"] if c["name"] == "cloud-sql-proxy")
        assert proxy["args"][-3:] == ["--credentials-file=/var/run/secrets/cloudsql/credentials.json",
                                      "--lazy-refresh", "mlp-staging:europe-west1:mlflow-staging"]
        assert {"name": "cloudsql-credentials", "mountPath": "/var/run/secrets/cloudsql", "readOnly": True} \
            in proxy["volumeMounts"]
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "cloudsql-credentials")
        assert volume["secret"]["secretName"] == "mlflow-cloudsql-credentials"
        assert not any(MARKER in json.dumps(c) for c in pod["spec"]["containers"] + pod["spec"]["initContainers"])
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert "mlplatform.mlflow/cloudsql-credentials-checksum" in annotations

    # With placeholders (GitOps without secrets in Git), the key is not written at all.
    result = run_playbook("tests/integration/cloudsql_key/render.yml",
                          {**variables, "mlflow_server_render_placeholders": True}, timeout=300)
    assert result.rc == 0, result.output[-3000:]
    assert not [p.name for p in out.glob("*.yaml") if MARKER in p.read_text()]
    secret = yaml.safe_load((out / "secret-mlflow-cloudsql-credentials.yaml").read_text())
    assert "mlplatform.mlflow/placeholder" in secret["metadata"]["annotations"]
