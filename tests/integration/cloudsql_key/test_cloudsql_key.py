"""mlflow_server on a cluster without Workload Identity, its Cloud SQL Auth Proxy authenticating with a key file.

The proxy, the Google fake and the instance (a real PostgreSQL behind the fake's instance endpoint) are the
fixtures of conftest.py; here the database user is a built-in one with a password.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
import typing as t
import uuid
from pathlib import Path

import pytest

from ..ansible_run import run_playbook
from .conftest import INSTANCE, PROJECT, REGION, kubectl_json, log_a_run_and_read_it_back, secret_markers

NAMESPACE = "it-cloudsql"
TRACKING = "http://127.0.0.1:30541"
PLAYBOOK = "tests/integration/cloudsql_key/server.yml"
PROXY_SA = "mlflow-proxy@mlp-staging.iam.gserviceaccount.com"
DB_PASSWORD = "pw-" + uuid.uuid4().hex  # the database user's password, known to the test and the role


@pytest.fixture(scope="module")
def service_account() -> str:
    return PROXY_SA


@pytest.fixture(scope="module")
def database(postgres) -> None:
    """The server's database and its built-in user with a password."""
    postgres["psql"](f"CREATE ROLE mlflow LOGIN PASSWORD '{DB_PASSWORD}'")
    postgres["psql"]("CREATE DATABASE mlflow OWNER mlflow")


def converge(proxy_image: str, google: dict, key_path: Path, check: bool = False) -> t.Any:
    variables = {
        "mlflow_server_cloudsql_instance_connection_name": f"{PROJECT}:{REGION}:{INSTANCE}",
        "mlflow_server_cloudsql_proxy_image": proxy_image,
        "mlflow_server_cloudsql_credentials_file": str(key_path),
        "mlflow_server_cloudsql_proxy_extra_args": [f"--sqladmin-api-endpoint={google['fake'].url}/sqladmin/"],
        "mlflow_server_database_password": DB_PASSWORD,
    }
    os.environ["ANSIBLE_VERBOSITY"] = "1"
    try:
        return run_playbook(PLAYBOOK, variables, check=check, timeout=1200)
    finally:
        os.environ.pop("ANSIBLE_VERBOSITY", None)


def test_the_key_reached_the_proxy_and_the_proxy_reached_the_instance(converged, google, key_file):
    fake, endpoint = google["fake"], google["endpoint"]
    # The OAuth endpoint verified JWTs signed with the key and issued tokens to its service account ...
    assert PROXY_SA in fake.tokens.values(), fake.token_requests
    # ... which the Admin API saw on both connector calls (strict_tokens: no other token is answered).
    for method in ("sql.connect.get", "sql.connect.generateEphemeral"):
        calls = [c for c in fake.calls(method) if c.status == 200]
        assert calls, f"the proxy never called {method}: {[(c.method_id, c.status) for c in fake.log]}"
        assert {c.principal for c in calls} == {PROXY_SA}
    # The instance endpoint accepted TLS connections with ephemeral certificates issued to that account.
    assert endpoint.accepted, f"no connection reached the instance endpoint; refused: {endpoint.refused}"
    assert {a.client_cn for a in endpoint.accepted} == {PROXY_SA}
    assert not endpoint.refused, endpoint.refused
    print(f"cloudsql_key: first converge {converged['seconds']:.1f} s; {len(fake.token_requests)} token requests, "
          f"{len(fake.calls('sql.connect.get'))} connectSettings, {len(fake.calls('sql.connect.generateEphemeral'))} "
          f"ephemeral certificates, {len(endpoint.accepted)} TLS connections to the instance")


def test_runs_are_stored_in_the_cloud_sql_database(converged, postgres):
    log_a_run_and_read_it_back(NAMESPACE, TRACKING, postgres["psql"], "cloudsql-key")


def test_the_proxy_gets_a_path_and_the_pods_roll_with_the_key(converged, key_file):
    deployment = kubectl_json("-n", NAMESPACE, "deployment", "mlflow")
    template = deployment["spec"]["template"]
    proxy = next(c for c in template["spec"]["initContainers"] if c["name"] == "cloud-sql-proxy")
    assert "--credentials-file=/var/run/secrets/cloudsql/credentials.json" in proxy["args"]
    assert {"name": "cloudsql-credentials", "mountPath": "/var/run/secrets/cloudsql", "readOnly": True} \
        in proxy["volumeMounts"]
    import hashlib

    assert template["metadata"]["annotations"]["mlplatform.mlflow/cloudsql-credentials-checksum"] \
        == hashlib.sha256(key_file["text"].rstrip("\n").encode()).hexdigest()
    jobs = kubectl_json("-n", NAMESPACE, "jobs")["items"]
    assert jobs and all(
        "--credentials-file=/var/run/secrets/cloudsql/credentials.json"
        in next(c for c in j["spec"]["template"]["spec"]["initContainers"] if c["name"] == "cloud-sql-proxy")["args"]
        for j in jobs)
    secret = kubectl_json("-n", NAMESPACE, "secret", "mlflow-cloudsql-credentials")
    assert json.loads(base64.b64decode(secret["data"]["credentials.json"])) == key_file["key"]


def test_the_key_is_nowhere_else(converged, key_file):
    markers = secret_markers(key_file["text"], key_file["key"])
    places = {"ansible output (-v)": converged["first"].output}
    for kind in ("pods", "configmaps", "events", "deployments", "jobs", "replicasets", "serviceaccounts"):
        places[kind] = json.dumps(kubectl_json("-n", NAMESPACE, kind))
    secrets = kubectl_json("-n", NAMESPACE, "secrets")["items"]
    places["secret metadata"] = json.dumps([s["metadata"] for s in secrets])
    places["other secrets' data"] = json.dumps(
        [s.get("data") for s in secrets if s["metadata"]["name"] != "mlflow-cloudsql-credentials"])
    leaks = [f"{where}: {marker[:12]}..." for where, text in places.items() for marker in markers if marker in text]
    assert not leaks, leaks


def test_second_converge_changes_nothing(converged, proxy_image, google, key_file):
    started = time.monotonic()
    second = converge(proxy_image, google, key_file["path"])
    assert second.rc == 0, second.output[-3000:]
    assert second.changed == 0, second.output[-3000:]
    print(f"cloudsql_key: second converge {time.monotonic() - started:.1f} s, changed=0")
    leaks = [m for m in secret_markers(key_file["text"], key_file["key"]) if m in second.output]
    assert not leaks


def test_a_new_key_rolls_the_pods_and_only_the_new_key_works(converged, proxy_image, google, key_file, tmp_path):
    before = kubectl_json("-n", NAMESPACE, "deployment", "mlflow")["spec"]["template"]["metadata"]["annotations"]
    accepted_before = len(google["endpoint"].accepted)
    # Rotation: a new key for the same account; the fake now trusts only the new key's public half.
    new_key = google["fake"].service_account_key(PROXY_SA)
    path = tmp_path / "rotated-key.json"
    path.write_text(json.dumps(new_key))
    path.chmod(0o600)
    rotated = converge(proxy_image, google, path)
    assert rotated.rc == 0, rotated.output[-5000:]
    assert rotated.changed > 0
    after = kubectl_json("-n", NAMESPACE, "deployment", "mlflow")["spec"]["template"]["metadata"]["annotations"]
    key = "mlplatform.mlflow/cloudsql-credentials-checksum"
    assert after[key] != before[key]
    assert after["mlplatform.mlflow/config-checksum"] == before["mlplatform.mlflow/config-checksum"]
    # The new pod is Ready (the role waited for it), so its proxy got a token with the new key: only it is trusted.
    deadline = time.monotonic() + 60
    while len(google["endpoint"].accepted) == accepted_before and time.monotonic() < deadline:
        urlopen_health()
        time.sleep(1)
    assert len(google["endpoint"].accepted) > accepted_before
    leaks = [m for m in secret_markers(path.read_text(), new_key) if m in rotated.output]
    assert not leaks


def urlopen_health() -> None:
    import urllib.request

    with contextlib.suppress(OSError):
        urllib.request.urlopen(f"{TRACKING}/health", timeout=5).read()
