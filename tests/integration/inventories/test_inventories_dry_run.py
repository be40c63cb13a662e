"""Every inventory's Kubernetes half, checked by a real API server before any cluster of that kind sees it: the objects
`site.yml` would apply for minikube, staging and prod (render_manifests.yml, with one served model behind the
inventory's way in) are server-side dry-run against the bundled cluster, with the CRDs they need (Gateway API,
installed with the cluster; GKE's ManagedCertificate, HealthCheckPolicy and GCPBackendPolicy, vendored as published
under tests/fixtures/gke-crds/). prod is checked twice: with its Gateways, and with the server behind an Ingress
and a ManagedCertificate instead (the way in for GKE clusters without Gateway API). A field GKE's API would refuse,
or a pod Pod Security's `restricted` level would refuse, fails here.

GKE's BackendConfig is the one kind left out: Google publishes no CRD for it (ingress-gce installs it from Go code),
so nothing here can check it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from ..ansible_run import ROOT

UNCHECKED_KINDS = {"BackendConfig"}  # no published CRD (see above)
INVENTORY_VARS = {
    "minikube": {},
    # What their README asks to replace (the roles refuse the REPLACE-... placeholders), and a vault value.
    "staging": {"gcp_project": "mlp-staging", "mlplatform_host": "mlflow.staging.example.com",
                "vault_mlflow_admin_password": "not-a-secret"},
    "prod": {"gcp_project": "mlp-prod", "mlplatform_host": "mlflow.example.com",
             "vault_mlflow_admin_password": "not-a-secret"},
}
INVENTORY_VARS["prod-ingress"] = {**INVENTORY_VARS["prod"], "mlflow_server_exposure": "ingress",
                                  "mlflow_server_tls": "gke_managed"}


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=300, check=False)
    assert not check or proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A real MLflow tracking server (SQLite, no auth) holding the model version the render pins."""
    folder = tmp_path_factory.mktemp("registry")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    log = (folder / "server.log").open("w")
    server = subprocess.Popen([mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                               "--default-artifact-root", str(folder / "artifacts")],
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, (folder / "server.log").read_text()[-2000:]
                time.sleep(1)
        # (A source outside this server's artifact store: MLflow accepts it without a run.)
        for endpoint, body in (("registered-models/create", {"name": "iris"}),
                               ("model-versions/create", {"name": "iris", "source": "gs://models-bucket/iris"})):
            request = urllib.request.Request(f"{url}/api/2.0/mlflow/{endpoint}", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("inventory", sorted(INVENTORY_VARS))
def test_the_inventorys_objects_pass_a_server_side_dry_run(
        inventory, gke_crds, registry, tmp_path, namespaces_to_delete):
    folder = inventory.split("-")[0]
    namespaces = {"mlflow_server_namespace": f"dry-{inventory}", "model_serving_namespace": f"dry-{inventory}-serving"}
    namespaces_to_delete.extend(namespaces.values())
    # Rendered with placeholders for every secret (as for GitOps), reading the bundled cluster under the
    # inventory's name for it, and the registry.
    context = kubectl("config", "current-context").stdout.strip()
    extra = {**INVENTORY_VARS[inventory], **namespaces, "mlplatform_context": context,
             "render_dir": str(tmp_path / "rendered"), "render_manifests_placeholders": True,
             "model_serving_tracking_uri": registry,
             "model_serving_models": [{"name": "iris", "model_uri": "models:/iris/1", "ingress_path": "/iris"}]}
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    render = subprocess.run(["ansible-playbook", str(ROOT / "playbooks" / "render_manifests.yml"),
                             "-i", str(ROOT / "inventories" / folder), "-e", f"@{tmp_path / 'vars.json'}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert render.returncode == 0, render.stdout[-4000:] + render.stderr[-2000:]

    files = sorted(path for path in (tmp_path / "rendered").glob("*/*.yaml") if path.name != "kustomization.yaml")
    objects = {path: yaml.safe_load(path.read_text()) for path in files}
    kinds = {obj["kind"] for obj in objects.values()}
    assert {"Deployment", "Service", "NetworkPolicy", "ConfigMap", "Job"} <= kinds, kinds
    expected = {"minikube": {"Ingress", "Secret"},  # the certificate of the local CA
                "prod-ingress": {"Ingress", "ManagedCertificate", "BackendConfig", "Gateway", "HTTPRoute",
                                 "HealthCheckPolicy"}}
    assert expected.get(inventory, {"Gateway", "HTTPRoute", "HealthCheckPolicy", "GCPBackendPolicy"}) <= kinds, kinds
    if inventory in ("staging", "prod"):
        gateways = [obj for obj in objects.values() if obj["kind"] == "Gateway"]
        assert len(gateways) == 2 and "Ingress" not in kinds, kinds  # the server's and the served models'
        assert all(g["metadata"]["annotations"]["networking.gke.io/certmap"] == f"mlplatform-{inventory}"
                   for g in gateways), gateways
    # The namespaces exist for real (a dry-run of an object in a namespace that does not exist is refused).
    for path, obj in objects.items():
        if obj["kind"] == "Namespace":
            kubectl("apply", "--server-side", "--field-manager=mlplatform.mlflow", "-f", str(path))
    checked = [path for path, obj in objects.items() if obj["kind"] not in UNCHECKED_KINDS | {"Namespace"}]
    args = [arg for path in checked for arg in ("-f", str(path))]
    result = kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=mlplatform.mlflow", *args,
                     check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Nothing the API server would only warn about either (Pod Security `restricted`, deprecated fields), but that
    # a placeholder certificate (the render never invents one) is no PEM.
    placeholder_tls = any(obj["kind"] == "Secret" and obj.get("type") == "kubernetes.io/tls"
                          and "mlplatform.mlflow/placeholder" in obj["metadata"].get("annotations", {})
                          for obj in objects.values())
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning")
                and not (placeholder_tls and "failed to find any PEM data in certificate input" in line)]
    assert not warnings, result.stderr
    assert result.stdout.count("(server dry run)") == len(checked), result.stdout
    print(f"{inventory}: {len(checked)} objects of {len(kinds)} kinds passed the dry-run "
          f"({sum(obj['kind'] in UNCHECKED_KINDS for obj in objects.values())} BackendConfig unchecked)")
