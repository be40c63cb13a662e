"""mlflow_server on a cluster without Workload Identity, its Cloud SQL Auth Proxy authenticating with a key file.

Everything the proxy talks to is real or a faithful fake on this host, reached by the pods through the CNI
bridge's address (never a public one):
- the real Cloud SQL Auth Proxy v2, built from source (cluster/images.sh build cloud-sql-proxy);
- the discovery-checked Google fake for the Admin API (connectSettings, generateEphemeralCert) and for OAuth: its
  token endpoint verifies the JWT's signature with the key's public key, so a token exists only if the key reached
  the proxy, and the Admin API answers only tokens it issued (strict_tokens);
- the instance's server-side proxy on :3307: TLS 1.3, a server certificate from the instance CA that connectSettings
  returned (CN PROJECT:INSTANCE), a client certificate from generateEphemeralCert required, then a real PostgreSQL 15
  started on this host's loopback for the test.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import typing as t
import uuid
from pathlib import Path

import pytest

from ..ansible_run import ROOT, run_playbook

sys.path.insert(0, str(ROOT / "tests"))
import contextlib

from gcp_fake.cloudsql import InstanceCA, InstanceEndpoint
from gcp_fake.server import FakeGoogle

NAMESPACE = "it-cloudsql"
TRACKING = "http://127.0.0.1:30541"
PLAYBOOK = "tests/integration/cloudsql_key/server.yml"
PROJECT, REGION, INSTANCE = "mlp-staging", "europe-west1", "mlflow-staging"
PROXY_SA = "mlflow-proxy@mlp-staging.iam.gserviceaccount.com"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
CONTAINERD_SOCK = "/var/lib/mlplatform-cluster/run/containerd/containerd.sock"
DB_PASSWORD = "pw-" + uuid.uuid4().hex  # the database user's password, known to the test and the role


def bridge_address() -> str:
    """The host's address on the CNI bridge: pods reach the host there."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "cni0"], capture_output=True, text=True,
                         check=False).stdout
    match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    assert match, f"no IPv4 address on cni0 (is the local cluster up?): {out!r}"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl_json(*args: str) -> dict:
    return json.loads(subprocess.run(["kubectl", "get", "-o", "json", *args], capture_output=True, text=True,
                                     check=True).stdout)


@pytest.fixture(scope="module")
def proxy_image(kubeconfig) -> str:
    """The Auth Proxy image built from source and imported into the cluster's containerd."""
    build = subprocess.run([str(ROOT / "cluster/images.sh"), "build", "cloud-sql-proxy"], capture_output=True,
                           text=True, timeout=1800, check=False)
    assert build.returncode == 0, build.stderr[-3000:]
    ref, archive = subprocess.run([str(ROOT / "cluster/images.sh"), "list", "cloud-sql-proxy"], capture_output=True,
                                  text=True, check=True).stdout.split()
    imported = subprocess.run(["ctr", "-a", CONTAINERD_SOCK, "-n", "k8s.io", "images", "import", "--base-name",
                               ref.rsplit(":", 1)[0], archive], capture_output=True, text=True, check=False)
    assert imported.returncode == 0, imported.stderr
    return ref


@pytest.fixture(scope="module")
def postgres() -> t.Iterator[dict[str, t.Any]]:
    """A real PostgreSQL 15 on 127.0.0.1 (the 'Cloud SQL instance'), with the database and user of the server."""
    data = Path(tempfile.mkdtemp(prefix="it-cloudsql-pg-"))
    shutil.chown(data, "postgres", "postgres")
    port = free_port()

    def as_postgres(*args: str, **kwargs: t.Any) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True,
                              check=False, **kwargs)

    init = as_postgres(str(PG_BIN / "initdb"), "-D", str(data / "db"), "--auth-local=trust",
                       "--auth-host=scram-sha-256", "-U", "postgres")
    assert init.returncode == 0, init.stderr
    start = as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-w", "start",
                        "-o", f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={data}")
    assert start.returncode == 0, start.stderr + (data / "log").read_text()

    def psql(sql: str, database: str = "postgres") -> str:
        out = as_postgres(str(PG_BIN.parent / "bin/psql"), "-h", str(data), "-p", str(port), "-d", database,
                          "-v", "ON_ERROR_STOP=1", "-Atc", sql)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    psql(f"CREATE ROLE mlflow LOGIN PASSWORD '{DB_PASSWORD}'")
    psql("CREATE DATABASE mlflow OWNER mlflow")
    try:
        yield {"port": port, "psql": psql}
    finally:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def google(postgres) -> t.Iterator[dict[str, t.Any]]:
    """The Google side on the bridge address: Admin API + OAuth fake, the instance, its server-side proxy."""
    host = bridge_address()
    fake = FakeGoogle({PROJECT: "123456789012"}, strict_tokens=True, host=host).start()
    fake.add_sql_instance(PROJECT, REGION, INSTANCE, "POSTGRES_15", private_ip=host)
    # The CA exists once connectSettings is first called; make it now so the endpoint can serve with it.
    ca = fake.state.sql_cas.setdefault((PROJECT, INSTANCE), InstanceCA(PROJECT, INSTANCE))
    endpoint = InstanceEndpoint(ca, host, ("127.0.0.1", postgres["port"])).start()
    try:
        yield {"fake": fake, "endpoint": endpoint, "host": host}
    finally:
        endpoint.stop()
        fake.stop()
    assert not fake.violations, "requests that break Google's published contract:\n" + "\n".join(fake.violations)


@pytest.fixture(scope="module")
def key_file(google) -> t.Iterator[dict[str, t.Any]]:
    """A throwaway key (never committed), its token_uri the fake's OAuth endpoint; only its public half is trusted."""
    key = google["fake"].service_account_key(PROXY_SA)
    directory = Path(tempfile.mkdtemp(prefix="it-cloudsql-key-"))
    path = directory / "proxy-key.json"
    path.write_text(json.dumps(key, indent=2))
    path.chmod(0o600)
    try:
        yield {"path": path, "key": key, "text": path.read_text()}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def secret_markers(key_text: str, key: dict) -> list[str]:
    """Pieces of the key that must appear nowhere but in the Secret's data: PEM body lines, its base64 forms."""
    body = [line for line in key["private_key"].splitlines() if line and not line.startswith("-----")]
    return [body[1], body[-2], base64.b64encode(key_text.encode()).decode()[:60],
            base64.b64encode(key["private_key"].encode()).decode()[8:68]]


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


@pytest.fixture(scope="module")
def converged(kubeconfig, namespaces_to_delete, proxy_image, google, key_file, postgres) -> dict[str, t.Any]:
    namespaces_to_delete.append(NAMESPACE)
    started = time.monotonic()
    first = converge(proxy_image, google, key_file["path"])
    seconds = time.monotonic() - started
    assert first.rc == 0, first.output[-5000:]
    return {"first": first, "seconds": seconds}


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


def test_runs_are_stored_in_the_cloud_sql_database(converged, postgres, monkeypatch):
    import mlflow

    secret = kubectl_json("-n", NAMESPACE, "secret", "mlflow-credentials")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", base64.b64decode(secret["data"]["admin-password"]).decode())
    mlflow.set_tracking_uri(TRACKING)
    name = f"cloudsql-key-{uuid.uuid4().hex[:8]}"
    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        mlflow.log_param("through", "auth-proxy")
        mlflow.log_metric("rmse", 0.125)
    stored = postgres["psql"](
        f"SELECT e.name, r.status, m.value FROM experiments e JOIN runs r ON r.experiment_id = e.experiment_id "
        f"JOIN metrics m ON m.run_uuid = r.run_uuid WHERE r.run_uuid = '{run.info.run_id}' AND m.key = 'rmse'",
        database="mlflow")
    assert stored == f"{name}|FINISHED|0.125", stored


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
