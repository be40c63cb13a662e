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

IAM database authentication (the proxy's --auto-iam-authn): step 2 carries `access_token`, an OAuth token with the
sqlservice.login scope; the certificate is then bound to that token's account until the token expires. The client
sends a plain PostgreSQL startup as the IAM user (the account's e-mail without .gserviceaccount.com) and no
password: the instance admits it when the user is an IAM user of the instance and the certificate's token is that
account's and still valid, and refuses it otherwise (FATAL 28000). `PostgresRoles` is what Cloud SQL does in the
database when users are added through the Admin API: IAM users are roles in the group cloudsqliamserviceaccount,
which the database trusts from the endpoint (pg_hba `host all +cloudsqliamserviceaccount 127.0.0.1/32 trust`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import socket
import ssl
import struct
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


# The OAuth scopes a token must carry to log in to a database as an IAM user.
LOGIN_SCOPES = frozenset({"https://www.googleapis.com/auth/sqlservice.login",
                          "https://www.googleapis.com/auth/cloud-platform"})


@dataclass(frozen=True)
class Login:
    """The access token generateEphemeralCert was given, which the certificate then stands for."""

    principal: str
    scopes: frozenset[str]
    expires: dt.datetime

    @property
    def database_user(self) -> str:
        """The PostgreSQL user of a service account: its e-mail without .gserviceaccount.com."""
        return self.principal.removesuffix(".gserviceaccount.com")


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
    logins: dict[int, Login] = field(default_factory=dict)  # certificate serial -> the token it was issued with

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

    def issue(self, public_key_pem: str, principal: str, login: Login | None = None) -> dict[str, str] | None:
        """An ephemeral client certificate for the connector's public key, or None when the key is unreadable.

        The connector sends its PKIX public key under the PEM label "RSA PUBLIC KEY", so the label is not trusted.
        With a `login` the certificate is bound to it and expires with its token at the latest.
        """
        try:
            body = "".join(line for line in public_key_pem.strip().splitlines() if not line.startswith("-----"))
            public_key = serialization.load_der_public_key(base64.b64decode(body))
        except (ValueError, TypeError):
            return None
        if not isinstance(public_key, rsa.RSAPublicKey):
            return None
        start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        end = start + dt.timedelta(hours=1)
        if login is not None:
            end = min(end, login.expires)
        cert = (
            x509.CertificateBuilder().subject_name(_name(principal or "ephemeral")).issuer_name(self.cert.subject)
            .public_key(public_key).serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.issued.append(cert)
        if login is not None:
            self.logins[cert.serial_number] = login
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
    database_user: str = ""  # PostgreSQL endpoints with IAM checks: the user of the startup message
    login: str = ""  # ... and the account whose token the certificate stands for ('' when none)


# PostgreSQL's first messages (protocol 3.0): a length, then a code (the protocol version for a StartupMessage).
PROTOCOL_3 = 196608
SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
MAX_STARTUP = 10000  # PostgreSQL's own limit on a startup packet


def iam_login_failure(user: str) -> bytes:
    """The ErrorResponse Cloud SQL for PostgreSQL sends when an IAM login is not admitted."""
    fields = {"S": "FATAL", "V": "FATAL", "C": "28000",
              "M": f'Cloud SQL IAM service account authentication failed for user "{user}"'}
    body = b"".join(code.encode() + value.encode() + b"\0" for code, value in fields.items()) + b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


def _recv_exact(sock: t.Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client closed the connection during the startup")
        data += chunk
    return data


def read_startup(conn: t.Any) -> tuple[bytes, dict[str, str] | None]:
    """Read a PostgreSQL client's first messages: answer SSL and GSS encryption requests with 'N' (the connection
    is already TLS), and return the bytes to forward with the StartupMessage's parameters (None for a
    CancelRequest or an unknown code, which are forwarded as they are)."""
    while True:
        head = _recv_exact(conn, 8)
        length, code = struct.unpack("!II", head)
        if not 8 <= length <= MAX_STARTUP:
            raise ValueError(f"invalid startup packet length {length}")
        body = _recv_exact(conn, length - 8)
        if code in (SSL_REQUEST, GSSENC_REQUEST):
            conn.sendall(b"N")
            continue
        if code != PROTOCOL_3:
            return head + body, None
        items = body.split(b"\0")
        params = {items[i].decode(errors="replace"): items[i + 1].decode(errors="replace")
                  for i in range(0, len(items) - 1, 2) if items[i]}
        return head + body, params


class InstanceEndpoint:
    """The instance's server-side proxy on HOST:3307: TLS 1.3, client certificate from the CA required, then the
    bytes go to and from a real database at `upstream`. `accepted` and `refused` record every connection.

    With `iam_users` (PostgreSQL instances: the instance's IAM database users, asked on every connection) the
    endpoint reads the client's startup and admits a login as an IAM user only with a certificate bound to that
    user's account by an unexpired token with the login scope, as Cloud SQL does; other users go to the database,
    which asks for their password."""

    def __init__(self, ca: InstanceCA, host: str, upstream: tuple[str, int], port: int = 3307,
                 iam_users: t.Callable[[], t.Collection[str]] | None = None) -> None:
        self.ca, self.host, self.port, self.upstream, self.iam_users = ca, host, port, upstream, iam_users
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

    def _refuse(self, conn: socket.socket, why: str) -> None:
        with self._lock:
            self.refused.append(why)
        conn.close()

    def _iam_problem(self, user: str, serial: int) -> str:
        """Why a login as the IAM user `user` with the certificate `serial` is not admitted ('' when it is)."""
        login = self.ca.logins.get(serial)
        if login is None:
            return "the client certificate carries no access token (not issued with access_token)"
        if login.database_user != user:
            return f"the certificate's token is {login.principal}'s"
        if login.expires <= dt.datetime.now(dt.UTC):
            return f"the certificate's token expired at {_rfc3339(login.expires)}"
        if not login.scopes & LOGIN_SCOPES:
            return f"the certificate's token has none of the scopes {sorted(LOGIN_SCOPES)}"
        return ""

    def _serve(self, raw: socket.socket, peer: str) -> None:
        raw.settimeout(30)
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self._refuse(raw, f"{peer}: {exc}")
            return
        der = conn.getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        if cert.serial_number not in {c.serial_number for c in self.ca.issued}:
            self._refuse(conn, f"{peer}: client certificate {cert.serial_number} was never issued")
            return
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        accepted = Accepted(peer, str(cn), cert.serial_number)
        first = b""
        if self.iam_users is not None:
            try:
                first, params = read_startup(conn)
            except ValueError as exc:
                self._refuse(conn, f"{peer}: {exc}")
                return
            except OSError:  # the client left before its startup: nothing to admit or refuse
                conn.close()
                return
            user = (params or {}).get("user", "")
            if params is not None and user in self.iam_users():
                problem = self._iam_problem(user, cert.serial_number)
                if problem:
                    with contextlib.suppress(OSError):
                        conn.sendall(iam_login_failure(user))
                    self._refuse(conn, f"{peer}: IAM login as {user} refused: {problem}")
                    return
            login = self.ca.logins.get(cert.serial_number)
            accepted.database_user, accepted.login = user, login.principal if login else ""
        with self._lock:
            self.accepted.append(accepted)
        conn.settimeout(None)
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
            upstream.sendall(first)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        _relay(conn, upstream)


class PostgresRoles:
    """What Cloud SQL for PostgreSQL does in the database when the Admin API adds or removes a user: `execute` runs
    SQL there as a superuser (the test's psql). IAM service accounts become login roles in the group
    cloudsqliamserviceaccount, which the database trusts from the endpoint; built-in users get their password.
    Like Cloud SQL, no privilege on any database comes with it, only the memberships the request's databaseRoles
    name (cloudsqlsuperuser owns what databases.insert makes)."""

    IAM_GROUP = "cloudsqliamserviceaccount"
    SUPERUSER = "cloudsqlsuperuser"

    def __init__(self, execute: t.Callable[[str], t.Any]) -> None:
        self.execute = execute

    def prepare(self) -> PostgresRoles:
        """The instance's own roles, as a new Cloud SQL instance has them."""
        for role in (self.IAM_GROUP, self.SUPERUSER):
            self.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
                         f"CREATE ROLE {role} NOLOGIN; END IF; END $$")
        return self

    def added(self, user: dict, password: str = "") -> None:
        name = _identifier(user["name"])
        if user.get("type") == "CLOUD_IAM_SERVICE_ACCOUNT":
            groups = ", ".join([self.IAM_GROUP, *map(_identifier, user.get("databaseRoles") or [])])
            self.execute(f"CREATE ROLE {name} LOGIN IN ROLE {groups}")
        elif user.get("type", "BUILT_IN") == "BUILT_IN":
            self.execute(f"CREATE ROLE {name} LOGIN PASSWORD {_literal(password)}")

    def removed(self, user: dict) -> None:
        self.execute(f"DROP ROLE IF EXISTS {_identifier(user['name'])}")


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _pipe(src: t.Any, dst: t.Any) -> None:
    """Copy one direction until it ends, then shut both sockets down, which wakes the other direction's read."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _relay(client: t.Any, upstream: t.Any) -> None:
    """Both directions; the sockets are closed once both stopped (closed earlier, a descriptor the other direction
    still reads could be handed to the next connection, whose handshake it would then read)."""
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()
