"""The fake's Cloud SQL connection plane: connectSettings, generateEphemeralCert and the instance endpoint.

What a connector (cloud.google.com/go/cloudsqlconn) checks is checked here with Python's TLS client: the server
certificate chains to the CA connectSettings returns and has CN PROJECT:INSTANCE; the endpoint accepts only client
certificates that generateEphemeralCert issued, and then forwards bytes to the database.
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gcp_fake.cloudsql import InstanceCA, InstanceEndpoint
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
