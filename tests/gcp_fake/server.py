"""A stateful fake of Google's control-plane APIs on 127.0.0.1, checked against the discovery documents.

Layout of URLs: http://127.0.0.1:PORT/<api>/<path as on https://<api>.googleapis.com/>, so a client's
endpoint override is {"all": "http://127.0.0.1:PORT/{api}"}. The OAuth token endpoint is /oauth2/token
(point a service-account key's token_uri at it).

Every request is validated against the discovery contract (gcp_fake.contract); a violation answers 400/404/405
as Google would and is recorded in `violations`, which the pytest fixture turns into a test failure. Every
request is logged; `writes` lists the ones that change state (not GETs, not getIamPolicy).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import typing as t
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gcp_fake import services
from gcp_fake.cloudsql import InstanceCA, InstanceEndpoint, PostgresRoles
from gcp_fake.contract import Contract, Violation
from gcp_fake.services import CONCURRENT_POLICY_CHANGE


@dataclass
class Fault:
    """Answer `status` to the next `times` requests of `method_id` (optionally only when `when(req)` holds)."""

    method_id: str
    status: int
    times: int = 1
    message: str = ""
    reason: str = ""
    permission: str = ""
    when: t.Callable[[services.Req], bool] | None = None
    action: t.Callable[[], None] | None = None  # instead of answering, do this and then serve normally
    hits: int = 0


@dataclass
class Logged:
    method: str
    path: str
    method_id: str
    query: dict[str, list[str]]
    body: t.Any
    status: int
    token: str
    principal: str
    write: bool
    at: float = field(default_factory=time.monotonic)


GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
TOKEN_LIFETIME = 3599  # seconds, as Google's token endpoint answers (expires_in)

# Token minting (iamcredentials generateAccessToken) changes nothing either.
READ_METHODS = services.READ_METHODS | {"iamcredentials.projects.serviceAccounts.generateAccessToken"}


class FakeGoogle:
    def __init__(
        self,
        projects: t.Mapping[str, str] | None = None,
        *,
        lro_polls: int = 2,
        strict_tokens: bool = False,
        workload_pools: t.Iterable[str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        projects = dict(projects or {"mlp-staging": "123456789012"})
        self.contract = Contract()
        self.state = services.State(
            projects=projects,
            lro_polls=lro_polls,
            workload_pools=set(
                workload_pools if workload_pools is not None else (f"{p}.svc.id.goog" for p in projects)
            ),
        )
        self.strict_tokens = strict_tokens
        self.host = host  # the local cluster's pods reach the host's bridge address, never a public one
        self.log: list[Logged] = []
        self.token_requests: list[dict[str, t.Any]] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.trusted_keys: dict[str, t.Any] = {}  # client_email -> public key
        self.tokens: dict[str, str] = {}  # issued token -> principal (scopes and expiry: state.access_tokens)
        self._lock = threading.RLock()
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    def start(self) -> FakeGoogle:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = fake.handle(self.command, self.path, dict(self.headers), raw)
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if data:
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: t.Any) -> None:  # keep pytest output clean
                return

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}"

    @property
    def endpoint_overrides(self) -> dict[str, str]:
        return {"all": self.url + "/{api}"}

    @property
    def token_uri(self) -> str:
        return f"{self.url}/oauth2/token"

    # ---- test controls
    def inject(self, method_id: str, status: int, times: int = 1, **kwargs: t.Any) -> Fault:
        fault = Fault(method_id, status, times, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def inject_concurrent_iam_write(self, method_id: str, policy_key: str, times: int = 1) -> Fault:
        """Before the next setIamPolicy, another writer changes the policy: the client's etag goes stale."""
        return self.inject(method_id, 0, times, action=lambda: self.state.concurrent_iam_write(policy_key))

    def service_account_key(self, email: str) -> dict[str, t.Any]:
        """A throwaway service-account key file (dict) whose token_uri is this fake; its public key is trusted."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.trusted_keys[email] = key.public_key()
        project = email.split("@", 1)[1].split(".", 1)[0]
        return {
            "type": "service_account",
            "project_id": project,
            "private_key_id": "fake-key-1",
            "private_key": pem,
            "client_email": email,
            "client_id": "100000000000000000001",
            "auth_uri": f"{self.url}/oauth2/auth",
            "token_uri": self.token_uri,
        }

    def add_sql_instance(self, project: str, region: str, name: str, version: str, private_ip: str,
                         flags: t.Mapping[str, str] | None = None) -> dict:
        """A RUNNABLE Cloud SQL instance on a private IP, as cloudsql_db leaves one (for connectors to dial)."""
        inst = {
            "kind": "sql#instance", "name": name, "project": project, "region": region, "databaseVersion": version,
            "state": "RUNNABLE", "backendType": "SECOND_GEN", "instanceType": "CLOUD_SQL_INSTANCE",
            "connectionName": f"{project}:{region}:{name}", "gceZone": f"{region}-b", "createTime": services.now(),
            "selfLink": f"https://sqladmin.googleapis.com/v1/projects/{project}/instances/{name}",
            "ipAddresses": [{"type": "PRIVATE", "ipAddress": private_ip}],
            "settings": {"kind": "sql#settings", "tier": "db-custom-1-3840", "settingsVersion": "1",
                         "ipConfiguration": {"ipv4Enabled": False, "privateNetwork": f"projects/{project}/global/"
                                             "networks/default"}},
            "etag": self.state.etag(),
        }
        if flags:
            inst["settings"]["databaseFlags"] = [{"name": k, "value": v} for k, v in flags.items()]
        with self._lock:
            self.state.instances[(project, name)] = inst
        return inst

    def serve_sql_instance(self, project: str, name: str, upstream: tuple[str, int], *, port: int = 3307,
                           roles: PostgresRoles | None = None) -> InstanceEndpoint:
        """Start the instance's server-side proxy on this fake's host, in front of a real database at `upstream`.

        A PostgreSQL instance's endpoint checks IAM logins against the instance's IAM users; with `roles` the Admin
        API's users.insert/delete also create and drop the database's roles, as Cloud SQL does."""
        inst = self.state.instances[(project, name)]
        with self._lock:
            ca = self.state.sql_cas.setdefault((project, name), InstanceCA(project, name))
            if roles is not None:
                self.state.sql_roles[(project, name)] = roles.prepare()

        def iam_users() -> set[str]:
            with self._lock:
                return self.state.sql_iam_users(project, name)

        postgres = inst["databaseVersion"].startswith("POSTGRES")
        return InstanceEndpoint(ca, self.host, upstream, port=port, iam_users=iam_users if postgres else None).start()

    @property
    def writes(self) -> list[Logged]:
        return [entry for entry in self.log if entry.write]

    def calls(self, method_id: str) -> list[Logged]:
        return [entry for entry in self.log if entry.method_id == method_id]

    # ---- request handling
    def handle(self, verb: str, raw_path: str, headers: dict[str, str], raw: bytes) -> tuple[int, t.Any, dict]:
        with self._lock:
            parts = urlsplit(raw_path)
            if parts.path == "/oauth2/token" and verb == "POST":
                return self._token(raw)
            return self._api(verb, parts.path, parse_qs(parts.query, keep_blank_values=True), headers, raw)

    def _token(self, raw: bytes) -> tuple[int, t.Any, dict]:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        record: dict[str, t.Any] = {"grant_type": form.get("grant_type")}
        self.token_requests.append(record)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return (
                400,
                {"error": "unsupported_grant_type", "error_description": "Only JWT bearer grants are served."},
                {},
            )
        try:
            head_b64, payload_b64, sig_b64 = form["assertion"].split(".")
            payload = json.loads(_b64(payload_b64))
            signature = _b64(sig_b64)
        except (KeyError, ValueError) as exc:
            return 400, {"error": "invalid_grant", "error_description": f"Malformed JWT: {exc}"}, {}
        record.update(iss=payload.get("iss"), aud=payload.get("aud"), scope=payload.get("scope"))
        public_key = self.trusted_keys.get(payload.get("iss", ""))
        if public_key is None:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, {}
        try:
            public_key.verify(signature, f"{head_b64}.{payload_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except Exception:  # noqa: BLE001 - any verification failure is an invalid grant
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, {}
        # google-auth signs with Google's token audience even when token_uri points elsewhere; Google accepts it.
        if (
            payload.get("aud") not in (self.token_uri, GOOGLE_TOKEN_AUDIENCE)
            or int(payload.get("exp", 0)) < time.time()
        ):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT: audience or expiry."}, {}
        token = self._issue(payload["iss"], str(payload.get("scope") or "").split())
        return 200, {"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"}, {}

    def issue_token(self, principal: str, scopes: t.Iterable[str] = (), lifetime: float = TOKEN_LIFETIME) -> str:
        """A token as the token endpoint issues it (to read state back through the API in a scenario's verify)."""
        with self._lock:
            return self._issue(principal, scopes, lifetime)

    def _issue(self, principal: str, scopes: t.Iterable[str], lifetime: float = TOKEN_LIFETIME) -> str:
        self._counter += 1
        token = f"ya29.fake-{self._counter}"
        self.tokens[token] = principal
        self.state.access_tokens[token] = services.AccessToken(principal, frozenset(scopes), time.time() + lifetime)
        return token

    def _api(
        self, verb: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes
    ) -> tuple[int, t.Any, dict]:
        api, _sep, rest = path.lstrip("/").partition("/")
        rest = unquote(rest)
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        principal = self.tokens.get(token, "")

        def log(method_id: str, status: int, body: t.Any) -> None:
            write = bool(method_id) and method_id not in READ_METHODS
            self.log.append(
                Logged(verb, path, method_id, query, body, status, token, principal, write and verb != "GET")
            )

        body: t.Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self.violations.append(f"{verb} {path}: body is not JSON")
                log("", 400, raw)
                return (*services.error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT"), {})
        if not token or (self.strict_tokens and token not in self.tokens):
            log("", 401, body)
            return (*services.error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED"), {})
        try:
            match = self.contract.match(api, verb, rest)
        except Violation as exc:
            self.violations.append(exc.message)
            log("", exc.status, body)
            return (
                *services.error(exc.status, exc.message, "NOT_FOUND" if exc.status == 404 else "INVALID_ARGUMENT"),
                {},
            )
        method = match.method
        problems = self.contract.check_query(method, query) + self.contract.check_request(method, body)
        if problems:
            self.violations.extend(f"{method.id}: {p}" for p in problems)
            log(method.id, 400, body)
            return (*services.error(400, "; ".join(problems), "INVALID_ARGUMENT"), {})
        req = services.Req(method.id, verb, match.path_params, query, body, principal)

        fault = self._take_fault(req)
        if fault is not None:
            if fault.action is not None:
                fault.action()
            else:
                status, err = self._fault_response(fault)
                log(method.id, status, body)
                extra = {"Retry-After": "1"} if status == 429 else {}
                return status, err, extra

        if method.id == "iamcredentials.projects.serviceAccounts.generateAccessToken":
            status, out = self._generate_access_token(req)
        else:
            handler = services.HANDLERS.get(method.id)
            if handler is None:
                self.violations.append(f"{method.id}: the fake does not implement this method")
                log(method.id, 501, body)
                return (*services.error(501, f"{method.id} is not implemented by the fake", "UNIMPLEMENTED"), {})
            status, out = handler(self.state, req)
        if status < 300:
            bad = self.contract.check_response(method, out)
            if bad:
                self.violations.extend(f"fake bug, response of {method.id}: {p}" for p in bad)
        log(method.id, status, body)
        return status, out, {}

    def _take_fault(self, req: services.Req) -> Fault | None:
        for fault in self.faults:
            if (
                fault.method_id == req.method_id
                and fault.hits < fault.times
                and (fault.when is None or fault.when(req))
            ):
                fault.hits += 1
                return fault
        return None

    @staticmethod
    def _fault_response(fault: Fault) -> tuple[int, t.Any]:
        names = {
            403: "PERMISSION_DENIED",
            404: "NOT_FOUND",
            409: "ABORTED",
            412: "FAILED_PRECONDITION",
            429: "RESOURCE_EXHAUSTED",
            500: "INTERNAL",
            503: "UNAVAILABLE",
        }
        status_name = names.get(fault.status, "UNKNOWN")
        message = fault.message
        meta = {}
        if fault.status == 403 and fault.permission:
            message = message or f"Permission '{fault.permission}' denied on resource (or it may not exist)."
            meta["permission"] = fault.permission
        message = message or {
            409: CONCURRENT_POLICY_CHANGE,
            412: "At least one of the pre-conditions you specified did not hold.",
            429: "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute'.",
            503: "The service is currently unavailable.",
        }.get(fault.status, "Injected fault.")
        reason = fault.reason or ("IAM_PERMISSION_DENIED" if meta else "")
        legacy = fault.method_id.startswith(("storage.", "sql."))
        return services.error(fault.status, message, status_name, reason or None, legacy=legacy, **meta)

    def _generate_access_token(self, req: services.Req) -> tuple[int, t.Any]:
        email = req.path_params["name"].rsplit("/", 1)[1].lower()
        if email not in self.state.service_accounts and email not in self.trusted_keys:
            return services.error(404, f"Not found; Gaia id not found for email {email}", "NOT_FOUND")
        lifetime = float(str((req.body or {}).get("lifetime") or "3600s").removesuffix("s"))
        token = self._issue(email, (req.body or {}).get("scope") or [], lifetime)
        expire = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.state.access_tokens[token].expires))
        return 200, {"accessToken": token, "expireTime": expire}


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
