"""The fake's Cloud SQL connection plane: connectSettings, generateEphemeralCert and the instance endpoint.

What a connector (cloud.google.com/go/cloudsqlconn) checks is checked here with Python's TLS client: the server
certificate chains to the CA connectSettings returns and has CN PROJECT:INSTANCE; the endpoint accepts only client
certificates that generateEphemeralCert issued, and then forwards bytes to the database. IAM database
authentication as the Auth Proxy's --auto-iam-authn uses it: generateEphemeralCert with an access_token binds the
certificate to the token, and a PostgreSQL login as an IAM user is admitted only with that user's own unexpired
token with the login scope (FATAL 28000 otherwise); users.insert/delete create and drop the database's roles.
"""

from __future__ import annotations

import base64
import datetime as dt
import socket
import ssl
import struct
import threading
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gcp_fake.cloudsql import CANCEL_REQUEST, PROTOCOL_3, SSL_REQUEST, InstanceCA, InstanceEndpoint, PostgresRoles
from gcp_fake.server import FakeGoogle

PROJECT, REGION, INSTANCE = "mlp-staging", "europe-west1", "db"
BASE = f"/sqladmin/v1/projects/{PROJECT}/instances/{INSTANCE}"
# cloudsqlconn (the Auth Proxy v2) calls the v1beta4 paths of the same methods.
BASE_V1BETA4 = f"/sqladmin/sql/v1beta4/projects/{PROJECT}/instances/{INSTANCE}"


@pytest.fixture
def fake():
    f = FakeGoogle({PROJECT: "1"}).start()
    f.add_sql_instance(PROJECT, REGION, INSTANCE, "POSTGRES_15", private_ip="127.0.0.1")
    yield f
    f.stop()
    assert not f.violations


def call(fake, method, path, **kw):
    return requests.request(method, fake.url + path, headers={"Authorization": "Bearer t"}, timeout=5, **kw)


def connector_public_key(key: rsa.RSAPrivateKey) -> str:
    """As cloudsqlconn sends it: PKIX bytes under the label RSA PUBLIC KEY."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "-----BEGIN RSA PUBLIC KEY-----\n" + base64.encodebytes(der).decode() + "-----END RSA PUBLIC KEY-----\n"


@pytest.mark.parametrize("base", [BASE, BASE_V1BETA4])
def test_connect_settings_describe_the_instance_as_a_connector_needs(fake, base):
    answer = call(fake, "GET", base + "/connectSettings")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["region"] == REGION and body["backendType"] == "SECOND_GEN"
    assert body["databaseVersion"] == "POSTGRES_15"
    assert body["ipAddresses"] == [{"type": "PRIVATE", "ipAddress": "127.0.0.1"}]
    assert body["serverCaMode"] == "GOOGLE_MANAGED_INTERNAL_CA"
    ca = x509.load_pem_x509_certificate(body["serverCaCert"]["cert"].encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_unknown_instance_and_missing_key_are_refused(fake):
    assert call(fake, "GET", f"/sqladmin/v1/projects/{PROJECT}/instances/nope/connectSettings").status_code == 404
    assert call(fake, "POST", BASE + ":generateEphemeralCert", json={}).status_code == 400
    bad = call(fake, "POST", BASE + ":generateEphemeralCert", json={"public_key": "not a key"})
    assert bad.status_code == 400
    fake.violations.clear()
    assert call(fake, "POST", BASE + ":generateEphemeralCert", json={"publicKey": "x"}).status_code == 400
    assert any("publicKey" in v for v in fake.violations)  # the discovery field is public_key
    fake.violations.clear()


def test_only_certificates_it_issued_open_the_instance_endpoint(fake, tmp_path):
    settings = call(fake, "GET", BASE_V1BETA4 + "/connectSettings").json()
    client_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issued = call(fake, "POST", BASE_V1BETA4 + ":generateEphemeralCert",
                  json={"public_key": connector_public_key(client_key)})
    assert issued.status_code == 200, issued.text
    (tmp_path / "ca.pem").write_text(settings["serverCaCert"]["cert"])
    (tmp_path / "client.pem").write_text(issued.json()["ephemeralCert"]["cert"])
    (tmp_path / "client.key").write_bytes(client_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    database = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        conn, _address = database.accept()
        conn.sendall(conn.recv(64).upper())
        conn.close()

    threading.Thread(target=echo, daemon=True).start()
    endpoint = InstanceEndpoint(fake.state.sql_cas[(PROJECT, INSTANCE)], "127.0.0.1", database.getsockname(),
                                port=0).start()
    port = endpoint._sock.getsockname()[1]
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # the connector checks the CN itself (verifyCn)
        context.load_verify_locations(tmp_path / "ca.pem")
        context.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
        with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as tls:
            assert tls.version() == "TLSv1.3"
            subject = dict(item[0] for item in tls.getpeercert()["subject"])
            assert subject["commonName"] == f"{PROJECT}:{INSTANCE}"
            tls.sendall(b"select 1")
            assert tls.recv(64) == b"SELECT 1"

        # A client certificate from another CA, and none at all, are refused.
        other = InstanceCA(PROJECT, INSTANCE)
        foreign = other.issue(connector_public_key(client_key), "intruder")
        assert foreign is not None
        (tmp_path / "foreign.pem").write_text(foreign["cert"])
        for chain in ("foreign.pem", None):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.load_verify_locations(tmp_path / "ca.pem")
            if chain:
                context.load_cert_chain(tmp_path / chain, tmp_path / "client.key")
            with (pytest.raises((ssl.SSLError, ConnectionError)),
                  context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as tls):
                tls.sendall(b"x")
                if not tls.recv(8):
                    raise ConnectionError("closed")
        deadline = time.monotonic() + 5
        while len(endpoint.refused) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(endpoint.accepted) == 1 and len(endpoint.refused) == 2, (endpoint.accepted, endpoint.refused)
    finally:
        endpoint.stop()
        database.close()


# ---- IAM database authentication
SERVER_SA = "mlflow-server@mlp-staging.iam.gserviceaccount.com"
OTHER_SA = "mlflow-serving@mlp-staging.iam.gserviceaccount.com"
LOGIN_SCOPE = "https://www.googleapis.com/auth/sqlservice.login"
ADMIN_SCOPE = "https://www.googleapis.com/auth/sqlservice.admin"
AUTH_OK = b"R" + struct.pack("!II", 8, 0)


@pytest.fixture
def iam_fake():
    f = FakeGoogle({PROJECT: "1"}).start()
    f.add_sql_instance(PROJECT, REGION, INSTANCE, "POSTGRES_15", private_ip="127.0.0.1",
                       flags={"cloudsql.iam_authentication": "on"})
    yield f
    f.stop()
    assert not f.violations


@pytest.fixture
def database():
    """PostgreSQL's stand-in behind the endpoint: records each connection's first bytes, answers AuthenticationOk."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _address = server.accept()
            except OSError:
                return
            with conn:
                received.append(conn.recv(4096))
                conn.sendall(AUTH_OK)

    threading.Thread(target=serve, daemon=True).start()
    yield {"address": server.getsockname(), "received": received}
    server.close()


def startup(user: str) -> bytes:
    body = struct.pack("!I", PROTOCOL_3) + b"user\0" + user.encode() + b"\0database\0mlflow\0\0"
    return struct.pack("!I", len(body) + 4) + body


def wait_op(fake: FakeGoogle, op: dict) -> None:
    for _attempt in range(10):
        op = call(fake, "GET", f"/sqladmin/v1/projects/{PROJECT}/operations/{op['name']}").json()
        if op["status"] == "DONE":
            assert "error" not in op, op
            return
    raise AssertionError(op)


def add_iam_user(fake: FakeGoogle, email: str, database_roles: tuple[str, ...] = ()) -> str:
    name = email.removesuffix(".gserviceaccount.com")
    body = {"name": name, "type": "CLOUD_IAM_SERVICE_ACCOUNT"} | (
        {"databaseRoles": list(database_roles)} if database_roles else {})
    answer = call(fake, "POST", BASE + "/users", json=body)
    assert answer.status_code == 200, answer.text
    wait_op(fake, answer.json())
    return name


def client_context(fake: FakeGoogle, tmp_path, access_token: str | None) -> ssl.SSLContext:
    """A TLS context as the connector makes one: its key, the certificate generateEphemeralCert returned for it."""
    settings = call(fake, "GET", BASE_V1BETA4 + "/connectSettings").json()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    request = {"public_key": connector_public_key(key)} | ({"access_token": access_token} if access_token else {})
    issued = call(fake, "POST", BASE_V1BETA4 + ":generateEphemeralCert", json=request)
    assert issued.status_code == 200, issued.text
    name = f"client-{len(list(tmp_path.iterdir()))}"
    (tmp_path / "ca.pem").write_text(settings["serverCaCert"]["cert"])
    (tmp_path / f"{name}.pem").write_text(issued.json()["ephemeralCert"]["cert"])
    (tmp_path / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(tmp_path / "ca.pem")
    context.load_cert_chain(tmp_path / f"{name}.pem", tmp_path / f"{name}.key")
    return context


def exchange(endpoint: InstanceEndpoint, context: ssl.SSLContext, *messages: bytes) -> bytes:
    """Send a client's first messages through the endpoint; return all it answered until it closed."""
    port = endpoint._sock.getsockname()[1]
    answer = b""
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as tls:
        for message in messages:
            tls.sendall(message)
        while chunk := tls.recv(4096):
            answer += chunk
    return answer


def test_an_access_token_binds_the_certificate_to_its_account_until_it_expires(iam_fake):
    token = iam_fake.issue_token(SERVER_SA, [LOGIN_SCOPE], lifetime=600)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issued = call(iam_fake, "POST", BASE_V1BETA4 + ":generateEphemeralCert",
                  json={"public_key": connector_public_key(key), "access_token": token})
    assert issued.status_code == 200, issued.text
    cert = x509.load_pem_x509_certificate(issued.json()["ephemeralCert"]["cert"].encode())
    login = iam_fake.state.sql_cas[(PROJECT, INSTANCE)].logins[cert.serial_number]
    assert login.principal == SERVER_SA and login.database_user == "mlflow-server@mlp-staging.iam"
    assert login.scopes == {LOGIN_SCOPE}
    # The certificate ends with the token, not an hour after it was issued.
    assert abs((cert.not_valid_after_utc - login.expires).total_seconds()) < 1
    assert cert.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(seconds=601)


def test_the_token_endpoint_records_the_scopes_a_key_asked_for(iam_fake):
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    info = iam_fake.service_account_key(SERVER_SA)
    credentials = service_account.Credentials.from_service_account_info(info, scopes=[LOGIN_SCOPE])
    credentials.refresh(Request())
    issued = iam_fake.state.access_tokens[credentials.token]
    assert issued.principal == SERVER_SA and issued.scopes == {LOGIN_SCOPE}
    assert 3500 < issued.expires - time.time() <= 3599


@pytest.mark.parametrize("token", ["ya29.never-issued", "expired"])
def test_an_unknown_or_expired_access_token_gets_no_certificate(iam_fake, token):
    if token == "expired":
        token = iam_fake.issue_token(SERVER_SA, [LOGIN_SCOPE], lifetime=-1)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    answer = call(iam_fake, "POST", BASE_V1BETA4 + ":generateEphemeralCert",
                  json={"public_key": connector_public_key(key), "access_token": token})
    assert answer.status_code == 400
    assert answer.json()["error"]["errors"][0]["reason"] == "invalid"
    assert "access_token" in answer.json()["error"]["message"]
    assert not iam_fake.state.sql_cas[(PROJECT, INSTANCE)].logins


def test_iam_users_are_database_roles_in_the_iam_group(iam_fake, database):
    executed: list[str] = []
    endpoint = iam_fake.serve_sql_instance(PROJECT, INSTANCE, database["address"], port=0,
                                           roles=PostgresRoles(executed.append))
    try:
        name = add_iam_user(iam_fake, SERVER_SA)
        other = add_iam_user(iam_fake, OTHER_SA, ("cloudsqlsuperuser",))
        assert "CREATE ROLE cloudsqliamserviceaccount NOLOGIN" in executed[0]
        assert "CREATE ROLE cloudsqlsuperuser NOLOGIN" in executed[1]
        assert executed[2:] == [f'CREATE ROLE "{name}" LOGIN IN ROLE cloudsqliamserviceaccount',
                                f'CREATE ROLE "{other}" LOGIN IN ROLE cloudsqliamserviceaccount, "cloudsqlsuperuser"']
        assert iam_fake.state.sql_iam_users(PROJECT, INSTANCE) == {name, other}
        answer = call(iam_fake, "DELETE", BASE + f"/users?name={name}")
        assert answer.status_code == 200, answer.text
        wait_op(iam_fake, answer.json())
        assert executed[-1] == f'DROP ROLE IF EXISTS "{name}"'
        assert iam_fake.state.sql_iam_users(PROJECT, INSTANCE) == {other}
    finally:
        endpoint.stop()


def test_an_iam_login_needs_the_users_own_unexpired_login_token(iam_fake, database, tmp_path):
    endpoint = iam_fake.serve_sql_instance(PROJECT, INSTANCE, database["address"], port=0)
    try:
        server, other = add_iam_user(iam_fake, SERVER_SA), add_iam_user(iam_fake, OTHER_SA)
        bound = client_context(iam_fake, tmp_path, iam_fake.issue_token(SERVER_SA, [LOGIN_SCOPE]))
        ssl_request = struct.pack("!II", 8, SSL_REQUEST)

        # The proxy's client: an SSLRequest (answered 'N': the tunnel is TLS already), then its startup, no password.
        assert exchange(endpoint, bound, ssl_request, startup(server)) == b"N" + AUTH_OK
        assert database["received"] == [startup(server)]
        assert [(a.database_user, a.login) for a in endpoint.accepted] == [(server, SERVER_SA)]

        def refused(context: ssl.SSLContext, user: str) -> None:
            answer = exchange(endpoint, context, startup(user))
            assert answer[:1] == b"E", answer
            fields = {f[:1].decode(): f[1:].decode() for f in answer[5:].split(b"\0") if f}
            assert fields == {"S": "FATAL", "V": "FATAL", "C": "28000",
                              "M": f'Cloud SQL IAM service account authentication failed for user "{user}"'}

        # Another IAM user with this certificate; a certificate without a token, or with a token for the admin API
        # only: refused, nothing reaches the database.
        refused(bound, other)
        refused(client_context(iam_fake, tmp_path, None), server)
        refused(client_context(iam_fake, tmp_path, iam_fake.issue_token(SERVER_SA, [ADMIN_SCOPE])), server)
        reasons = [why.split("refused: ", 1)[1] for why in endpoint.refused]
        assert reasons[0] == f"the certificate's token is {SERVER_SA}'s"
        assert "carries no access token" in reasons[1] and "scopes" in reasons[2]
        # A token that expired since: the certificate expired with it, the TLS handshake fails.
        expiring = client_context(iam_fake, tmp_path, iam_fake.issue_token(SERVER_SA, [LOGIN_SCOPE], lifetime=1))
        time.sleep(1.1)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            if not exchange(endpoint, expiring, startup(server)):
                raise ConnectionError("closed")
        deadline = time.monotonic() + 5
        while len(endpoint.refused) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "certificate has expired" in endpoint.refused[3], endpoint.refused
        assert len(database["received"]) == 1

        # Users that are not IAM users, and cancel requests, go to the database as they are (it asks for passwords).
        unbound = client_context(iam_fake, tmp_path, None)
        assert exchange(endpoint, unbound, startup("mlflow")) == AUTH_OK
        cancel = struct.pack("!IIII", 16, CANCEL_REQUEST, 4242, 7)
        assert exchange(endpoint, unbound, cancel) == AUTH_OK
        assert database["received"][1:] == [startup("mlflow"), cancel]
    finally:
        endpoint.stop()
