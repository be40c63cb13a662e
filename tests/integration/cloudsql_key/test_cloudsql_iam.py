"""mlflow_server on Cloud SQL with IAM database authentication: the real Auth Proxy with --auto-iam-authn, no password.

The proxy (key file of mlflow-server@mlp-staging.iam.gserviceaccount.com) asks the fake's OAuth endpoint for a
second token, with the sqlservice.login scope, and sends it as generateEphemeralCert's access_token; the fake binds
the ephemeral certificate to it. The server's PostgreSQL startup carries the IAM user mlflow-server@mlp-staging.iam
and no password; the instance endpoint admits it only for that certificate (conftest.py has the instance). The IAM
user is added through the Admin API, which makes its role in the PostgreSQL as Cloud SQL does; the test, as the
database's administrator, gives it the database. Artifacts go to a bucket (the GCS emulator), where the scheduled
backup exports the database and restore_db.yml fetches it back from.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import time
import typing as t
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from ..ansible_run import ROOT, run_playbook
from .conftest import INSTANCE, PROJECT, REGION, as_admin, free_port, kubectl_json, log_a_run_and_read_it_back

NAMESPACE = "it-cloudsql-iam"
TRACKING = "http://127.0.0.1:30542"
PLAYBOOK = "tests/integration/cloudsql_key/server.yml"
SERVER_SA = "mlflow-server@mlp-staging.iam.gserviceaccount.com"
SERVER_USER = "mlflow-server@mlp-staging.iam"
OTHER_SA = "mlflow-serving@mlp-staging.iam.gserviceaccount.com"
OTHER_USER = "mlflow-serving@mlp-staging.iam"
DEPLOYER = "deployer@mlp-staging.iam.gserviceaccount.com"
LOGIN_SCOPE = "https://www.googleapis.com/auth/sqlservice.login"
IAM_REFUSAL = 'FATAL:  Cloud SQL IAM service account authentication failed for user "{}"'


@pytest.fixture(scope="module")
def service_account() -> str:
    return SERVER_SA


def add_iam_user(fake: t.Any, email: str, database_roles: tuple[str, ...] = ()) -> None:
    """users.insert of a CLOUD_IAM_SERVICE_ACCOUNT, as cloudsql_db does it (gcp_sql_user with database_roles), and
    wait for the operation."""
    headers = {"Authorization": "Bearer " + fake.issue_token(DEPLOYER, ["https://www.googleapis.com/auth/cloud-platform"])}
    base = f"{fake.url}/sqladmin/v1/projects/{PROJECT}"
    name = email.removesuffix(".gserviceaccount.com")
    op = requests.post(f"{base}/instances/{INSTANCE}/users", headers=headers, timeout=10,
                       json={"name": name, "type": "CLOUD_IAM_SERVICE_ACCOUNT",
                             **({"databaseRoles": list(database_roles)} if database_roles else {})})
    assert op.status_code == 200, op.text
    for _attempt in range(10):
        status = requests.get(f"{base}/operations/{op.json()['name']}", headers=headers, timeout=10).json()
        if status["status"] == "DONE":
            assert "error" not in status, status
            return
    raise AssertionError(f"users.insert of {name} did not finish: {status}")


@pytest.fixture(scope="module")
def database(google, postgres) -> None:
    """The IAM users of the instance (roles in the group cloudsqliamserviceaccount, no password; the server's also
    in cloudsqlsuperuser, as cloudsql_db asks) and the server's database as databases.insert leaves it: owned by
    cloudsqlsuperuser, so the IAM user may create tables there only through that membership."""
    add_iam_user(google["fake"], SERVER_SA, ("cloudsqlsuperuser",))
    add_iam_user(google["fake"], OTHER_SA)
    postgres["psql"]("CREATE DATABASE mlflow OWNER cloudsqlsuperuser")


def server_variables(proxy_image: str, google: dict, key_path: Path) -> dict[str, t.Any]:
    """server.yml's role variables with this module's: what a converge and a runbook of this server are given."""
    (play,) = yaml.safe_load((ROOT / PLAYBOOK).read_text())
    return {**play["roles"][0]["vars"], **{
        "mlflow_server_cloudsql_instance_connection_name": f"{PROJECT}:{REGION}:{INSTANCE}",
        "mlflow_server_cloudsql_proxy_image": proxy_image,
        "mlflow_server_cloudsql_credentials_file": str(key_path),
        "mlflow_server_cloudsql_proxy_extra_args": [f"--sqladmin-api-endpoint={google['fake'].url}/sqladmin/"],
        # IAM database authentication: the account's IAM user, no database password
        "mlflow_server_cloudsql_iam_auth": True,
        "mlflow_server_database_user": SERVER_USER,
        "mlflow_server_namespace": NAMESPACE,
        "mlflow_server_node_port": 30542,
        "mlflow_server_extra_allowed_hosts": ["127.0.0.1:30542"],
        # artifacts in a bucket (the GCS emulator), and a nightly export of the database into its backups/ folder
        "mlflow_server_artifacts_destination": f"gs://{NAMESPACE}/artifacts",
        "mlflow_server_gcs_emulator_enabled": True,
        "mlflow_server_backup_schedule": "47 2 * * *",
    }}


def converge(proxy_image: str, google: dict, key_path: Path) -> t.Any:
    return run_playbook(PLAYBOOK, server_variables(proxy_image, google, key_path), timeout=1200)


def test_the_proxy_logs_in_with_a_login_token_bound_to_its_certificate(converged, google):
    fake, endpoint = google["fake"], google["endpoint"]
    ca = fake.state.sql_cas[(PROJECT, INSTANCE)]
    # The key asked the token endpoint for a token with the login scope, besides the Admin API's.
    assert {(r["iss"], r["scope"]) for r in fake.token_requests if r.get("scope") == LOGIN_SCOPE} \
        == {(SERVER_SA, LOGIN_SCOPE)}, fake.token_requests
    # Every ephemeral certificate was asked for with such a token (access_token), and bound to it.
    certs = [c for c in fake.calls("sql.connect.generateEphemeral") if c.status == 200]
    assert certs and {c.principal for c in certs} == {SERVER_SA}
    for call in certs:
        token = fake.state.access_tokens[call.body["access_token"]]
        assert (token.principal, token.scopes) == (SERVER_SA, {LOGIN_SCOPE})
    # Every connection to the instance logged in as the IAM user, with a certificate bound to its account's token.
    assert endpoint.accepted, f"no connection reached the instance endpoint; refused: {endpoint.refused}"
    assert {(a.database_user, a.login) for a in endpoint.accepted} == {(SERVER_USER, SERVER_SA)}
    assert all(LOGIN_SCOPE in ca.logins[a.client_serial].scopes for a in endpoint.accepted)
    assert not endpoint.refused, endpoint.refused
    print(f"cloudsql_iam: first converge {converged['seconds']:.1f} s; {len(certs)} ephemeral certificates with a "
          f"login token, {len(endpoint.accepted)} IAM logins to the instance")


def test_runs_are_stored_by_the_iam_user(converged, postgres):
    log_a_run_and_read_it_back(NAMESPACE, TRACKING, postgres["psql"], "cloudsql-iam")
    # The migration made the tables as the IAM user, and the server's sessions are that user's.
    owners = postgres["psql"]("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'", "mlflow")
    assert owners == SERVER_USER
    sessions = postgres["psql"]("SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = 'mlflow'")
    assert sessions == SERVER_USER


def test_no_password_anywhere(converged):
    secrets = kubectl_json("-n", NAMESPACE, "secrets")["items"]
    assert not [s["metadata"]["name"] for s in secrets if "database-password" in (s.get("data") or {})]
    credentials = next(s for s in secrets if s["metadata"]["name"] == "mlflow-credentials")["data"]
    uri = base64.b64decode(credentials["backend-store-uri"]).decode()
    parts = urlsplit(uri)
    assert (parts.username, parts.password, parts.hostname, parts.path) \
        == ("mlflow-server%40mlp-staging.iam", None, "127.0.0.1", "/mlflow"), uri
    ini = base64.b64decode(credentials["basic_auth.ini"]).decode()
    assert f"database_uri = {uri.replace('%', '%%')}" in ini  # configparser's escape of %
    for kind in ("pods", "deployments", "replicasets", "jobs", "cronjobs", "configmaps"):
        text = json.dumps(kubectl_json("-n", NAMESPACE, kind))
        found = [word for word in ("PGPASSWORD", "database-password", "MYSQL_PWD") if word in text]
        assert not found, f"{kind}: {found}"
        assert not re.search(r"postgresql\+psycopg2://[^@/\"]*:[^@/\"]*@", text), f"{kind}: a URI with a password"
    pods = kubectl_json("-n", NAMESPACE, "pods", "-l", "app.kubernetes.io/component=server")["items"]
    proxies = [c for p in pods for c in p["spec"]["initContainers"] if c["name"] == "cloud-sql-proxy"]
    assert proxies and all("--auto-iam-authn" in c["args"] for c in proxies)


@pytest.fixture
def host_proxy(google, tmp_path) -> t.Iterator[t.Callable[..., subprocess.CompletedProcess]]:
    """The same proxy binary on this host, with --auto-iam-authn and another IAM user's key: psql through it."""
    version = re.search(r"^CLOUD_SQL_PROXY_VERSION=(\S+)", (ROOT / "cluster/images.sh").read_text(), re.M)
    go = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()
    cache = Path(os.environ.get("MLP_CACHE", "/var/cache/mlplatform"))
    binary = cache / "bin" / f"cloud-sql-proxy-{version.group(1)}-{go}" / "cloud-sql-proxy"
    assert binary.is_file(), f"{binary} is missing (cluster/images.sh build cloud-sql-proxy makes it)"
    key = tmp_path / "other-key.json"
    key.write_text(json.dumps(google["fake"].service_account_key(OTHER_SA)))
    key.chmod(0o600)
    port = free_port()
    proxy = subprocess.Popen(
        [str(binary), "--auto-iam-authn", "--private-ip", f"--credentials-file={key}", "--address=127.0.0.1",
         f"--port={port}", f"--sqladmin-api-endpoint={google['fake'].url}/sqladmin/", f"{PROJECT}:{REGION}:{INSTANCE}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def psql(user: str, sql: str = "SELECT current_user") -> subprocess.CompletedProcess:
        return subprocess.run(
            ["psql", "-X", "-w", "-Atc", sql,
             f"host=127.0.0.1 port={port} dbname=mlflow user={user} connect_timeout=60"],
            capture_output=True, text=True, timeout=120, check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("PG")})

    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert proxy.poll() is None and time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.2)
        yield psql
    finally:
        proxy.terminate()
        output = proxy.communicate(timeout=30)[0]
        print(f"cloudsql_iam: host proxy's log:\n{output[-2000:]}")


def test_another_accounts_token_cannot_log_in_as_the_server(converged, google, host_proxy):
    endpoint = google["endpoint"]
    refused_before = len(endpoint.refused)
    # Through the real proxy and libpq: the other account's token logs in as its own IAM user only.
    assert host_proxy(OTHER_USER).stdout.strip() == OTHER_USER
    # An IAM user added without database roles has no privilege: the server's tables need its cloudsqlsuperuser.
    denied = host_proxy(OTHER_USER, "CREATE TABLE not_mine (x int)")
    assert denied.returncode != 0 and "permission denied for schema public" in denied.stderr, denied.stderr
    wrong = host_proxy(SERVER_USER)
    assert wrong.returncode != 0 and IAM_REFUSAL.format(SERVER_USER) in wrong.stderr, wrong.stderr
    assert len(endpoint.refused) == refused_before + 1
    assert f"IAM login as {SERVER_USER} refused: the certificate's token is {OTHER_SA}'s" in endpoint.refused[-1]


def test_a_restore_from_the_scheduled_export_brings_back_exactly_the_runs_before_it(
        converged, proxy_image, google, key_file, postgres):
    """The backup CronJob dumps "Cloud SQL" through its own proxy, as the IAM user, into the bucket;
    restore_db.yml -e restore_db_file=newest restores that dump through the proxy: what came after it is gone."""
    def experiments() -> set[str]:
        return set(postgres["psql"]("SELECT name FROM experiments", "mlflow").split())

    kept, dropped = f"iam-before-export-{os.getpid()}", f"iam-after-export-{os.getpid()}"
    logins_before = len(google["endpoint"].accepted)
    with as_admin(NAMESPACE, TRACKING) as mlflow:
        mlflow.create_experiment(kept)
        subprocess.run(["kubectl", "-n", NAMESPACE, "create", "job", "--from=cronjob/mlflow-backup", "export-now"],
                       check=True, capture_output=True)
        done = subprocess.run(["kubectl", "-n", NAMESPACE, "wait", "--for=condition=complete", "job/export-now",
                               "--timeout=300s"], capture_output=True, text=True, check=False)
        logs = subprocess.run(["kubectl", "-n", NAMESPACE, "logs", "job/export-now", "--all-containers"],
                              capture_output=True, text=True, check=False).stdout
        assert done.returncode == 0, done.stderr + logs[-3000:]
        stored = re.search(r"^(mlflow-\d{8}T\d{6}Z-scheduled\.dump) (\d+) stored in "
                           rf"gs://{NAMESPACE}/backups; 0 older removed$", logs, re.M)
        assert stored, logs[-3000:]
        mlflow.create_experiment(dropped)
    assert {kept, dropped} <= experiments()

    variables = {**server_variables(proxy_image, google, key_file["path"]), "restore_db_file": "newest"}
    started = time.monotonic()
    restore = run_playbook("playbooks/restore_db.yml", variables, timeout=900)
    seconds = time.monotonic() - started
    assert restore.rc == 0, restore.output[-4000:]
    assert f"restore_db: OK, restored {stored.group(1)} into database mlflow" in restore.text, restore.text[-2000:]
    assert kept in experiments() and dropped not in experiments()
    # The export and the restore logged in as the server's IAM user, through the proxy, like the server.
    logins = google["endpoint"].accepted[logins_before:]
    assert logins and {(a.database_user, a.login) for a in logins} == {(SERVER_USER, SERVER_SA)}
    print(f"cloudsql_iam: scheduled export {stored.group(1)} ({stored.group(2)} bytes) restored in {seconds:.1f} s, "
          f"{len(logins)} IAM logins")


def test_second_converge_changes_nothing(converged, proxy_image, google, key_file):
    started = time.monotonic()
    second = converge(proxy_image, google, key_file["path"])
    assert second.rc == 0, second.output[-3000:]
    assert second.changed == 0, second.output[-3000:]
    print(f"cloudsql_iam: second converge {time.monotonic() - started:.1f} s, changed=0")
