"""The Cloud SQL side of the Auth Proxy tests, shared by the key-file and the IAM database authentication modules.

Everything the proxy talks to is real or a faithful fake on this host, reached by the pods through the CNI
bridge's address (never a public one):
- the real Cloud SQL Auth Proxy v2, built from source (cluster/images.sh build cloud-sql-proxy);
- the discovery-checked Google fake for the Admin API (connectSettings, generateEphemeralCert, users) and for OAuth:
  its token endpoint verifies the JWT's signature with the key's public key, so a token exists only if the key
  reached the proxy, and the Admin API answers only tokens it issued (strict_tokens);
- the instance's server-side proxy on :3307: TLS 1.3, a server certificate from the instance CA that connectSettings
  returned (CN PROJECT:INSTANCE), a client certificate from generateEphemeralCert required, IAM logins checked
  against the token the certificate was issued with, then a real PostgreSQL 15 started on this host's loopback.
A test module names the service account of its key with a `service_account` fixture.
"""

from __future__ import annotations

import base64
import contextlib
import json
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

from ..ansible_run import ROOT

sys.path.insert(0, str(ROOT / "tests"))

from gcp_fake.cloudsql import PostgresRoles
from gcp_fake.server import FakeGoogle

PROJECT, REGION, INSTANCE = "mlp-staging", "europe-west1", "mlflow-staging"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
CONTAINERD_SOCK = "/var/lib/mlplatform-cluster/run/containerd/containerd.sock"
# Cloud SQL trusts its IAM group from its own front end, which has checked the login token; nothing else is trusted.
IAM_HBA = f"host all +{PostgresRoles.IAM_GROUP} 127.0.0.1/32 trust\n"


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


@contextlib.contextmanager
def as_admin(namespace: str, tracking: str) -> t.Iterator[t.Any]:
    """The MLflow client module, pointed at the server and logged in as its admin (the credentials Secret's)."""
    import mlflow

    secret = kubectl_json("-n", namespace, "secret", "mlflow-credentials")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        env.setenv("MLFLOW_TRACKING_PASSWORD", base64.b64decode(secret["data"]["admin-password"]).decode())
        mlflow.set_tracking_uri(tracking)
        yield mlflow


def log_a_run_and_read_it_back(namespace: str, tracking: str, psql: t.Callable[..., str], prefix: str) -> None:
    """A run logged with the MLflow client as the server's admin is in the "Cloud SQL" database, metric and all."""
    with as_admin(namespace, tracking) as mlflow:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        mlflow.set_experiment(name)
        with mlflow.start_run() as run:
            mlflow.log_metric("rmse", 0.125)
    stored = psql(
        f"SELECT e.name, r.status, m.value FROM experiments e JOIN runs r ON r.experiment_id = e.experiment_id "
        f"JOIN metrics m ON m.run_uuid = r.run_uuid WHERE r.run_uuid = '{run.info.run_id}' AND m.key = 'rmse'",
        database="mlflow")
    assert stored == f"{name}|FINISHED|0.125", stored


def secret_markers(key_text: str, key: dict) -> list[str]:
    """Pieces of the key that must appear nowhere but in the Secret's data: PEM body lines, its base64 forms."""
    body = [line for line in key["private_key"].splitlines() if line and not line.startswith("-----")]
    return [body[1], body[-2], base64.b64encode(key_text.encode()).decode()[:60],
            base64.b64encode(key["private_key"].encode()).decode()[8:68]]


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
    """A real PostgreSQL 15 on 127.0.0.1 (the 'Cloud SQL instance'), configured as Cloud SQL is: passwords for
    built-in users, trust for the IAM group from the instance endpoint. Roles and databases are the tests'."""
    data = Path(tempfile.mkdtemp(prefix="it-cloudsql-pg-"))
    shutil.chown(data, "postgres", "postgres")
    port = free_port()

    def as_postgres(*args: str, **kwargs: t.Any) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True,
                              check=False, **kwargs)

    init = as_postgres(str(PG_BIN / "initdb"), "-D", str(data / "db"), "--auth-local=trust",
                       "--auth-host=scram-sha-256", "-U", "postgres")
    assert init.returncode == 0, init.stderr
    hba = data / "db" / "pg_hba.conf"
    hba.write_text(IAM_HBA + hba.read_text())  # the first matching line decides
    start = as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-w", "start",
                        "-o", f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={data}")
    assert start.returncode == 0, start.stderr + (data / "log").read_text()

    def psql(sql: str, database: str = "postgres") -> str:
        out = as_postgres(str(PG_BIN.parent / "bin/psql"), "-h", str(data), "-p", str(port), "-d", database,
                          "-v", "ON_ERROR_STOP=1", "-Atc", sql)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    try:
        yield {"port": port, "psql": psql}
    finally:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def google(postgres) -> t.Iterator[dict[str, t.Any]]:
    """The Google side on the bridge address: Admin API + OAuth fake, the instance (IAM authentication on), its
    server-side proxy; users added through the Admin API become roles of the PostgreSQL, as on Cloud SQL."""
    host = bridge_address()
    fake = FakeGoogle({PROJECT: "123456789012"}, strict_tokens=True, host=host).start()
    fake.add_sql_instance(PROJECT, REGION, INSTANCE, "POSTGRES_15", private_ip=host,
                          flags={"cloudsql.iam_authentication": "on"})
    endpoint = fake.serve_sql_instance(PROJECT, INSTANCE, ("127.0.0.1", postgres["port"]),
                                       roles=PostgresRoles(postgres["psql"]))
    try:
        yield {"fake": fake, "endpoint": endpoint, "host": host}
    finally:
        endpoint.stop()
        fake.stop()
    assert not fake.violations, "requests that break Google's published contract:\n" + "\n".join(fake.violations)


@pytest.fixture(scope="module")
def key_file(google, service_account) -> t.Iterator[dict[str, t.Any]]:
    """A throwaway key (never committed), its token_uri the fake's OAuth endpoint; only its public half is trusted."""
    key = google["fake"].service_account_key(service_account)
    directory = Path(tempfile.mkdtemp(prefix="it-cloudsql-key-"))
    path = directory / "proxy-key.json"
    path.write_text(json.dumps(key, indent=2))
    path.chmod(0o600)
    try:
        yield {"path": path, "key": key, "text": path.read_text()}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def converged(request, kubeconfig, namespaces_to_delete, proxy_image, google, key_file, database) -> dict[str, t.Any]:
    """The test module's first converge (its `converge`, into its NAMESPACE), timed."""
    namespaces_to_delete.append(request.module.NAMESPACE)
    started = time.monotonic()
    first = request.module.converge(proxy_image, google, key_file["path"])
    seconds = time.monotonic() - started
    assert first.rc == 0, first.output[-5000:]
    return {"first": first, "seconds": seconds}
