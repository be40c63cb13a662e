"""mlflow_server's credentials from the External Secrets Operator, on the local cluster (namespace it-extsecrets).

The operator's CRDs (vendored from external-secrets v2.9.0, tests/fixtures/external-secrets/) are installed for this
module and removed at its end; the operator itself does not run: the test plays its sync step (fake_eso.py), reading
Secret Manager values from the GCP fake. The tests run in order and share one server:
converge with kubernetes Secrets, refusals that change nothing, the switch (check mode first), idempotence, a
bounded wait when the operator is absent, and the switch back.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ..ansible_run import run_playbook
from ..cluster.kube import Kubectl
from .fake_eso import FakeExternalSecretsOperator

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
from gcp_fake.server import FakeGoogle  # noqa: E402

NS = "it-extsecrets"
URL = "http://127.0.0.1:30571"
PLAYBOOK = "tests/integration/external_secrets/server.yml"
SEED = "tests/integration/external_secrets/seed.yml"
PROJECT = "mlp-staging"
CRD_DIR = ROOT / "tests" / "fixtures" / "external-secrets"
CRDS = ["externalsecrets.external-secrets.io", "secretstores.external-secrets.io",
        "clustersecretstores.external-secrets.io"]
FIXTURE_LABEL = "mlplatform.mlflow/test-fixture=it-extsecrets"
ES_VARS = {"mlflow_server_secret_source": "external_secrets", "mlflow_server_external_secrets_store_name": "gcp-sm",
           "mlflow_server_external_secrets_gcp_project": PROJECT, "mlflow_server_external_secrets_sync_timeout": 60}
STORE = f"""
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {{name: gcp-sm, namespace: {NS}}}
spec:
  provider:
    gcpsm:
      projectID: {PROJECT}
      auth:
        workloadIdentity:
          serviceAccountRef: {{name: mlflow-server}}
"""


@pytest.fixture(scope="module")
def kube(kubeconfig) -> Kubectl:
    return Kubectl(kubeconfig)


@pytest.fixture(scope="module")
def google(tmp_path_factory):
    fake = FakeGoogle({PROJECT: "123456789012"}, lro_polls=1, strict_tokens=True)
    fake.start()
    key = tmp_path_factory.mktemp("gcp") / "deployer-key.json"
    key.write_text(json.dumps(fake.service_account_key(f"deployer@{PROJECT}.iam.gserviceaccount.com")))
    key.chmod(0o600)
    fake.key_file = str(key)
    try:
        yield fake
    finally:
        fake.stop()
    assert not fake.violations, "requests that break Google's published contract:\n" + "\n".join(fake.violations)


@pytest.fixture(scope="module")
def play(google, kubeconfig, namespaces_to_delete):
    namespaces_to_delete.append(NS)
    connection = {"es_test_key_file": google.key_file, "es_test_endpoint_overrides": google.endpoint_overrides,
                  "es_test_project": PROJECT}

    def run(extra: dict | None = None, *, check: bool = False, playbook: str = PLAYBOOK):
        started = time.monotonic()
        result = run_playbook(playbook, {**connection, **(extra or {})}, check=check)
        result.seconds = round(time.monotonic() - started, 1)
        print(f"{playbook} {extra or {}} check={check}: rc={result.rc} in {result.seconds} s")
        return result

    return run


@pytest.fixture(scope="module")
def eso(kubeconfig, google) -> FakeExternalSecretsOperator:
    def read_secret(project: str, secret_id: str) -> bytes:
        key = f"projects/{google.state.number(project)}/secrets/{secret_id}"
        enabled = [v for v in google.state.versions[key] if v["meta"]["state"] == "ENABLED"]
        return enabled[-1]["data"]

    return FakeExternalSecretsOperator(kubeconfig, read_secret)(NS)


@pytest.fixture(scope="module")
def crds(kube):
    """Install the vendored CRDs for this module only; refuse to touch CRDs someone else installed."""
    present = kube.run("get", "crd", *CRDS, "--ignore-not-found", "-o", "name").stdout.split()
    assert not present, f"the cluster already has {present}: not ours to install over or remove"
    yield lambda: install(kube)
    kube.run("delete", "crd", "-l", FIXTURE_LABEL, "--ignore-not-found", "--wait=true", "--timeout=120s",
             check=False)


def install(kube: Kubectl) -> None:
    for path in sorted(CRD_DIR.glob("external-secrets.io_*.yaml")):
        kube.run("apply", "--server-side", "--field-manager=tests", "-f", str(path))
    kube.run("label", "crd", *CRDS, FIXTURE_LABEL, "--overwrite")
    kube.run("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{c}" for c in CRDS])


def snapshot(kube: Kubectl) -> dict[str, str]:
    """name -> resourceVersion of every object a run could change in the namespace."""
    kinds = "secrets,configmaps,deployments,statefulsets,services,jobs,persistentvolumeclaims,serviceaccounts"
    items = kube.get("-n", NS, kinds)["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in items}


def credentials(kube: Kubectl) -> dict:
    return kube.get("-n", NS, "secret", "mlflow-credentials")


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def authenticated_call(password: str) -> int:
    """An authenticated MLflow API call through the NodePort: status code (the server and its DB both work)."""
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    request = urllib.request.Request(f"{URL}/api/2.0/mlflow/experiments/search?max_results=1",
                                     headers={"Authorization": f"Basic {token}"})
    # A connection refused right after a converge is kube-proxy not yet serving the new NodePort (seen once in CI
    # under load): retried for up to 30 s. Any HTTP answer is returned at once.
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


STATE: dict = {}


def test_converge_with_kubernetes_secrets(play, kube):
    result = play()
    assert result.rc == 0, result.output[-3000:]
    secret = credentials(kube)
    assert secret["metadata"]["labels"]["mlplatform.mlflow/object-set"] == "mlflow-foundation"
    STATE["values"] = decoded(secret)
    assert authenticated_call(STATE["values"]["admin-password"]) == 200


def test_refuses_while_the_crds_are_absent(play, kube, crds):
    before = snapshot(kube)
    result = play(ES_VARS)
    assert result.rc != 0
    assert "mlflow_server_secret_source=external_secrets, but the cluster has no" in result.text
    assert "externalsecrets.external-secrets.io" in result.text
    assert snapshot(kube) == before, "a refused run must change nothing"
    crds()  # the next tests need them


def test_refuses_a_store_that_does_not_exist(play, kube):
    before = snapshot(kube)
    result = play(ES_VARS)
    assert result.rc != 0
    assert "mlflow_server_external_secrets_store_name names the SecretStore gcp-sm, which does not exist" in result.text
    assert snapshot(kube) == before
    assert kube.get("-n", NS, "externalsecrets")["items"] == []


def test_refuses_secret_manager_secrets_that_do_not_exist(play, kube, google):
    kube.apply(STORE)
    before, writes = snapshot(kube), len(google.writes)
    result = play(ES_VARS)
    assert result.rc != 0
    assert ("mlflow_server_external_secrets_db_password_secret names mlflow-db-password (key database-password), "
            "which does not exist") in result.text
    assert "mlflow_server_external_secrets_admin_password_secret names mlflow-admin-password" in result.text
    assert snapshot(kube) == before and len(google.writes) == writes
    assert kube.get("-n", NS, "externalsecrets")["items"] == []


def test_switch_in_check_mode_reports_changes_and_writes_nothing(play, kube):
    seeded = play(playbook=SEED)
    assert seeded.rc == 0, seeded.output[-3000:]
    assert STATE["values"]["database-password"] not in seeded.output, "no value may be printed"
    before = snapshot(kube)
    result = play(ES_VARS, check=True)
    assert result.rc == 0, result.output[-3000:]
    assert result.changed > 0
    assert snapshot(kube) == before
    assert kube.get("-n", NS, "externalsecrets")["items"] == []


def test_switch_to_external_secrets(play, kube, eso):
    with eso:
        result = play(ES_VARS)
    assert result.rc == 0, result.output[-3000:]
    assert not eso.errors, eso.errors
    STATE["switch_seconds"] = result.seconds

    es = kube.get("-n", NS, "externalsecret", "mlflow-credentials")
    spec = es["spec"]
    assert spec["secretStoreRef"] == {"name": "gcp-sm", "kind": "SecretStore"}
    assert spec["target"]["name"] == "mlflow-credentials" and spec["target"]["creationPolicy"] == "Owner"
    assert {d["secretKey"]: d["remoteRef"]["key"] for d in spec["data"]} == {
        "database-password": "mlflow-db-password", "admin-password": "mlflow-admin-password",
        "flask-secret-key": "mlflow-flask-secret-key"}
    assert es["metadata"]["labels"]["mlplatform.mlflow/object-set"] == "mlflow-foundation"

    secret = credentials(kube)
    owners = secret["metadata"].get("ownerReferences", [])
    assert [(o["kind"], o["name"], o.get("controller")) for o in owners] == [("ExternalSecret", "mlflow-credentials",
                                                                              True)]
    assert owners[0]["uid"] == es["metadata"]["uid"]
    assert "mlplatform.mlflow/object-set" not in secret["metadata"]["labels"], "the role no longer manages it"
    values = decoded(secret)
    for key in ("database-password", "admin-password", "flask-secret-key"):
        assert values[key] == STATE["values"][key], f"{key} changed on the switch"
    assert values["backend-store-uri"].startswith("postgresql+psycopg2://mlflow@mlflow-db:5432/mlflow?")
    assert STATE["values"]["database-password"] not in values["basic_auth.ini"]

    deployment = kube.get("-n", NS, "deployment", "mlflow")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-credentials", "key": "database-password"}
    assert authenticated_call(STATE["values"]["admin-password"]) == 200
    assert authenticated_call("wrong-password") == 401
    STATE["secret_version"] = secret["metadata"]["resourceVersion"]


def test_second_run_changes_nothing_and_leaves_the_secret_alone(play, kube, eso):
    with eso:
        result = play(ES_VARS)
    assert result.rc == 0, result.output[-3000:]
    assert result.changed == 0, result.output[-4000:]
    assert credentials(kube)["metadata"]["resourceVersion"] == STATE["secret_version"]
    checked = play(ES_VARS, check=True)
    assert checked.rc == 0 and checked.changed == 0, checked.output[-4000:]


def test_absent_operator_ends_the_run_with_a_clear_message_in_bounded_time(play, kube):
    before = kube.get("-n", NS, "deployment", "mlflow")["metadata"]["resourceVersion"]
    result = play({**ES_VARS, "mlflow_server_external_secrets_refresh_interval": "30m",
                   "mlflow_server_external_secrets_sync_timeout": 6})
    assert result.rc != 0
    assert "was not synced within mlflow_server_external_secrets_sync_timeout (6 s)" in result.text
    assert "has not processed this change" in result.text
    assert result.seconds < 60
    assert kube.get("-n", NS, "deployment", "mlflow")["metadata"]["resourceVersion"] == before, "server untouched"
    assert authenticated_call(STATE["values"]["admin-password"]) == 200


def test_switch_back_to_kubernetes_keeps_the_secret_and_its_values(play, kube):
    result = play()
    assert result.rc == 0, result.output[-3000:]
    assert kube.get("-n", NS, "externalsecrets")["items"] == []
    secret = credentials(kube)
    assert not [o for o in secret["metadata"].get("ownerReferences", []) if o["kind"] == "ExternalSecret"]
    assert secret["metadata"]["labels"]["mlplatform.mlflow/object-set"] == "mlflow-foundation"
    values = decoded(secret)
    for key in ("database-password", "admin-password", "flask-secret-key"):
        assert values[key] == STATE["values"][key]
    assert STATE["values"]["database-password"] in values["backend-store-uri"].replace("%40", "@")
    assert authenticated_call(STATE["values"]["admin-password"]) == 200


def test_nothing_else_uses_the_crds(kube):
    """Before the module's teardown removes the CRDs: no object of these kinds is left anywhere in the cluster."""
    kube.run("delete", "secretstore", "-n", NS, "gcp-sm", "--ignore-not-found")
    for kind in ("externalsecrets", "secretstores", "clustersecretstores"):
        items = kube.get(kind, "--all-namespaces")["items"]
        assert items == [], f"{kind} still in use: {[i['metadata'].get('namespace') for i in items]}"
