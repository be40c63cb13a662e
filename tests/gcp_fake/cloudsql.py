"""Cloud SQL's connection plane for the fake: the instance CA, ephemeral client certificates, the server-side proxy.

What a Cloud SQL connector (the Auth Proxy v2, cloud.google.com/go/cloudsqlconn) does, and what this serves:
  1. GET  .../instances/I/connectSettings       -> region, databaseVersion, backendType, ipAddresses and the
                                                     instance's server CA (`serverCaCert`, PEM)
  2. POST .../instances/I:generateEphemeralCert -> a client certificate for the connector's public key, signed by
                                                     the instance CA, valid one hour
  3. TLS 1.3 to IP:3307 with that client certificate; the server certificate chains to the server CA and, with
     serverCaMode GOOGLE_MANAGED_INTERNAL_CA and no DNS name, its Subject CN must be "PROJECT:INSTANCE"
     (cloudsqlconn internal/cloudsql/tls_verify.go, verifyCn). Then the database protocol, as is.
`InstanceEndpoint` is step 3: it requires a client certificate from step 2 and forwards to a real database.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import socket
import ssl
import tempfile
import threading
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Google, Inc"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _rfc3339(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class InstanceCA:
    """The server CA of one instance, its server certificate, and the client certificates it issued."""

    project: str
    instance: str
    key: rsa.RSAPrivateKey = field(init=False)
    cert: x509.Certificate = field(init=False)
    server_key: rsa.RSAPrivateKey = field(init=False)
    server_cert: x509.Certificate = field(init=False)
    issued: list[x509.Certificate] = field(default_factory=list)

    def __post_init__(self) -> None:
        start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_name = _name("Google Cloud SQL Server CA")
        self.cert = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        # Legacy Cloud SQL server certificates: CN "PROJECT:INSTANCE", no SAN (the connector checks the CN).
        self.server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.server_cert = (
            x509.CertificateBuilder().subject_name(_name(f"{self.project}:{self.instance}")).issuer_name(ca_name)
            .public_key(self.server_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def server_ca_cert(self) -> dict[str, str]:
        """The SslCert resource of the server CA, as connectSettings returns it."""
        return {
            "kind": "sql#sslCert",
            "certSerialNumber": str(self.cert.serial_number),
            "cert": _pem(self.cert),
            "commonName": "C=US,O=Google\\, Inc,CN=Google Cloud SQL Server CA",
            "sha1Fingerprint": self.cert.fingerprint(hashes.SHA1()).hex(),
            "instance": self.instance,
            "createTime": _rfc3339(self.cert.not_valid_before_utc),
            "expirationTime": _rfc3339(self.cert.not_valid_after_utc),
        }

    def issue(self, public_key_pem: str, principal: str) -> dict[str, str] | None:
        """An ephemeral client certificate for the connector's public key, or None when the key is unreadable.

        The connector sends its PKIX public key under the PEM label "RSA PUBLIC KEY", so the label is not trusted.
        """
        try:
            body = "".join(line for line in public_key_pem.strip().splitlines() if not line.startswith("-----"))
            public_key = serialization.load_der_public_key(base64.b64decode(body))
        except (ValueError, TypeError):
            return None
        if not isinstance(public_key, rsa.RSAPublicKey):
            return None
        start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        cert = (
            x509.CertificateBuilder().subject_name(_name(principal or "ephemeral")).issuer_name(self.cert.subject)
            .public_key(public_key).serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.issued.append(cert)
        return {
            "kind": "sql#sslCert",
            "cert": _pem(cert),
            "certSerialNumber": str(cert.serial_number),
            "commonName": principal or "ephemeral",
            "sha1Fingerprint": cert.fingerprint(hashes.SHA1()).hex(),
            "instance": self.instance,
            "createTime": _rfc3339(cert.not_valid_before_utc),
            "expirationTime": _rfc3339(cert.not_valid_after_utc),
        }


@dataclass
class Accepted:
    peer: str
    client_cn: str
    client_serial: int


class InstanceEndpoint:
    """The instance's server-side proxy on HOST:3307: TLS 1.3, client certificate from the CA required, then the
    bytes go to and from a real database at `upstream`. `accepted` and `refused` record every connection."""

    def __init__(self, ca: InstanceCA, host: str, upstream: tuple[str, int], port: int = 3307) -> None:
        self.ca, self.host, self.port, self.upstream = ca, host, port, upstream
        self.accepted: list[Accepted] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._dir = tempfile.TemporaryDirectory(prefix="fake-cloudsql-")
        directory = Path(self._dir.name)
        (directory / "server.pem").write_text(_pem(ca.server_cert) + _pem(ca.cert))
        (directory / "server.key").write_bytes(ca.server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (directory / "ca.pem").write_text(_pem(ca.cert))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_3
        self.context.load_cert_chain(directory / "server.pem", directory / "server.key")
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_verify_locations(directory / "ca.pem")

    def start(self) -> InstanceEndpoint:
        self._sock = socket.create_server((self.host, self.port), reuse_port=False)
        self._sock.settimeout(0.2)
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._sock:
            self._sock.close()
        self._dir.cleanup()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                raw, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw, f"{peer[0]}:{peer[1]}"), daemon=True).start()

    def _serve(self, raw: socket.socket, peer: str) -> None:
        raw.settimeout(30)
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            with self._lock:
                self.refused.append(f"{peer}: {exc}")
            raw.close()
            return
        der = conn.getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        if cert.serial_number not in {c.serial_number for c in self.ca.issued}:
            with self._lock:
                self.refused.append(f"{peer}: client certificate {cert.serial_number} was never issued")
            conn.close()
            return
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        with self._lock:
            self.accepted.append(Accepted(peer, str(cn), cert.serial_number))
        conn.settimeout(None)
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
        _pipe(conn, upstream)


def _pipe(src: t.Any, dst: t.Any) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
