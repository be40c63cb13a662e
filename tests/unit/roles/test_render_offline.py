"""playbooks/render_manifests.yml with no cluster to ask (a GitOps pipeline): it renders every object, with
placeholder Secrets, and names the upgrade Job and the configuration checksum as a converge would."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def render(tmp_path: Path) -> Path:
    out = tmp_path / "rendered"
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
           "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        ["ansible-playbook", str(ROOT / "playbooks" / "render_manifests.yml"), "-i", str(ROOT / "inventories" / "prod"),
         "-e", "gcp_project=mlp-prod", "-e", "mlplatform_host=mlflow.example.com", "-e", f"render_dir={out}",
         "-e", "render_manifests_placeholders=true",
         "-e", '{"model_serving_models": []}'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return out / "mlflow_server"


def test_prod_renders_without_a_cluster(tmp_path):
    folder = render(tmp_path)
    objects = {path.name: yaml.safe_load(path.read_text()) for path in folder.glob("*.yaml")}
    kustomization = objects.pop("kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(objects)
    kinds = {obj["kind"] for obj in objects.values()}
    assert {"Namespace", "Secret", "Job", "Deployment", "Service", "NetworkPolicy", "CronJob"} <= kinds

    secret = objects["secret-mlflow-credentials.yaml"]
    assert "mlplatform.mlflow/placeholder" in secret["metadata"]["annotations"]
    for key in ("admin-password", "flask-secret-key"):
        assert base64.b64decode(secret["data"][key]).decode() == f"REPLACE_ME-{key}"
    assert "database-password" not in secret["data"]  # prod logs in with IAM database authentication: no password
    assert oct((folder / "secret-mlflow-credentials.yaml").stat().st_mode & 0o777) == "0o600"

    (job,) = [obj for obj in objects.values() if obj["kind"] == "Job"]
    assert job["metadata"]["name"].startswith("mlflow-upgrade-") and len(job["metadata"]["name"]) == 25
    deployment = objects["deployment-mlflow.yaml"]
    checksum = deployment["spec"]["template"]["metadata"]["annotations"]["mlplatform.mlflow/config-checksum"]
    assert len(checksum) == 64 and int(checksum, 16) >= 0
    env = objects["configmap-mlflow-env.yaml"]["data"]
    assert "mlflow.mlflow.svc.cluster.local" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
