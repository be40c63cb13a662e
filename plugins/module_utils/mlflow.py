# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client over MLflow's REST API, and the AnsibleModule wrapper the mlflow_* modules share.

The client raises ``MlflowError`` subclasses with messages that name the resource and MLflow's
``error_code``/``message``; only modules turn them into ``fail_json`` (through ``MlflowModule``).
All HTTP goes through ansible's ``Request`` (open_url's engine): nothing beyond ansible-core is needed on the target.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import random
import re
import ssl
import time
import typing as t
import urllib.error
from dataclasses import dataclass, replace
from urllib.parse import urlencode, urlsplit

from ansible.module_utils.basic import AnsibleModule, env_fallback
from ansible.module_utils.urls import ConnectionError as AnsibleConnectionError
from ansible.module_utils.urls import Request, make_context

API_PREFIX = "/api/2.0/mlflow"
API3_PREFIX = "/api/3.0/mlflow"  # users' grants (MLflow 3.17's role-based permissions)
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
INVALID_HOST_MARKER = "Invalid Host header"
MAX_SEARCH_PAGES = 100
SEARCH_PAGE_SIZE = 1000

# Same rules as mlflow.utils.validation (_validate_model_alias_name / _reserved) in MLflow 3.17.
ALIAS_NAME_RE = re.compile(r"^[\w\-]+$")
ALIAS_RESERVED_VERSION_RE = re.compile(r"^[vV]\d+$")
MAX_ALIAS_LENGTH = 255

MLFLOW_CONNECTION_SPEC: dict[str, dict[str, t.Any]] = {
    "tracking_uri": {
        "type": "str",
        "required": True,
        "fallback": (env_fallback, ["MLFLOW_TRACKING_URI"]),
    },
    "username": {
        "type": "str",
        "fallback": (env_fallback, ["MLFLOW_TRACKING_USERNAME"]),
    },
    "password": {
        "type": "str",
        "no_log": True,
        "fallback": (env_fallback, ["MLFLOW_TRACKING_PASSWORD"]),
    },
    "token": {
        "type": "str",
        "no_log": True,
        "fallback": (env_fallback, ["MLFLOW_TRACKING_TOKEN"]),
    },
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "timeout": {"type": "int", "default": 30},
}
MLFLOW_REQUIRED_TOGETHER: list[list[str]] = [["username", "password"]]

Opener = t.Callable[..., t.Any]
Sleeper = t.Callable[[float], None]
_TLS_CONTEXTS: dict[tuple[str | None, bool], ssl.SSLContext] = {}


def open_url(url: str, *, method: str, **kwargs: t.Any) -> t.Any:
    """ansible's open_url with one TLS context per CA and verification for the process: open_url makes one per call,
    loading the system's CA certificates each time (about 10 ms)."""
    key = (kwargs.get("ca_path"), kwargs.get("validate_certs", True))
    if key not in _TLS_CONTEXTS:
        _TLS_CONTEXTS[key] = make_context(cafile=key[0], validate_certs=key[1])
    return Request().open(method, url, context=_TLS_CONTEXTS[key], **kwargs)


def mlflow_argument_spec() -> dict[str, dict[str, t.Any]]:
    """A fresh copy of the shared connection options (callers may change it freely)."""
    return copy.deepcopy(MLFLOW_CONNECTION_SPEC)


# --------------------------------------------------------------------------------------------- errors


class MlflowError(Exception):
    """Any failure talking to MLflow; ``str()`` is the readable message."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.url = url

    def details(self) -> dict[str, t.Any]:
        """Machine-readable fields for the module's failure result."""
        return {
            key: value
            for key, value in (
                ("status", self.status),
                ("error_code", self.error_code),
                ("url", self.url),
            )
            if value is not None
        }


class MlflowConfigError(MlflowError):
    """The connection settings themselves are unusable (no request was sent)."""


class MlflowConnectionError(MlflowError):
    """The server could not be reached (after retries)."""


class MlflowHTTPError(MlflowError):
    """The server answered with an HTTP error status."""


class MlflowAuthenticationError(MlflowHTTPError):
    """HTTP 401."""


class MlflowPermissionError(MlflowHTTPError):
    """HTTP 403: permission denied or a rejected Host header."""


class MlflowNotFoundError(MlflowHTTPError):
    """HTTP 404 / RESOURCE_DOES_NOT_EXIST."""


# ---------------------------------------------------------------------------------- pure helpers


def validate_tracking_uri(tracking_uri: str) -> str:
    """Return the base URL without a trailing slash, or raise MlflowConfigError."""
    parts = urlsplit(tracking_uri.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MlflowConfigError(
            f"tracking_uri '{tracking_uri}' is not an http(s) URL of an MLflow tracking server "
            "(for example https://mlflow.example.com or http://127.0.0.1:5000); file, sqlite and "
            "databricks URIs are not supported by these modules."
        )
    if parts.username is not None or parts.password is not None:
        raise MlflowConfigError(
            "tracking_uri must not carry credentials; pass them as username/password or token."
        )
    if parts.query or parts.fragment:
        raise MlflowConfigError(
            f"tracking_uri '{tracking_uri}' must not have a query or fragment."
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def build_url(
    base_url: str, endpoint: str, query: t.Mapping[str, t.Any] | None = None
) -> str:
    """``base_url`` + ``/api/2.0/mlflow/`` + endpoint (+ query string, None values dropped); an endpoint that starts
    with ``/api/`` (MLflow's 3.0 API) is taken as the whole path."""
    path = endpoint if endpoint.startswith("/api/") else f"{API_PREFIX}/{endpoint.lstrip('/')}"
    url = f"{base_url.rstrip('/')}{path}"
    if query:
        pairs = [(key, str(value)) for key, value in query.items() if value is not None]
        if pairs:
            url = f"{url}?{urlencode(pairs)}"
    return url


def alias_name_problem(alias: str) -> str | None:
    """Why MLflow would reject ``alias`` as an alias to set, or None if it is valid."""
    if not alias:
        return "an alias name cannot be empty"
    if len(alias) > MAX_ALIAS_LENGTH:
        return f"alias '{alias[:40]}...' is longer than {MAX_ALIAS_LENGTH} characters"
    if not ALIAS_NAME_RE.match(alias):
        return f"alias '{alias}' is invalid: names may only contain alphanumerics, underscores (_) and dashes (-)"
    if alias.lower() == "latest":
        return "alias 'latest' (case insensitive) is reserved by MLflow for the highest version"
    if ALIAS_RESERVED_VERSION_RE.match(alias):
        return f"alias '{alias}' is reserved by MLflow: names of the form v<digits> refer to versions"
    return None


def parse_version(value: t.Any) -> int | None:
    """A model version number as int, or None unless ``value`` is a positive integer (or its digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        number = int(value.strip())
        return number if number > 0 else None
    return None


# The model URIs the collection serves (mlflow.store.artifact.models_artifact_repo / runs_artifact_repo in 3.17).
MODEL_URI_FORMS = "models:/NAME@ALIAS, models:/NAME/VERSION, models:/NAME/latest or runs:/RUN_ID/PATH"
RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class ModelReference:
    """A parsed model URI: a registry entry (``name`` with ``alias`` or ``version``) or a run's model."""

    kind: str  # "alias", "version", "latest" or "run"
    name: str = ""
    alias: str = ""
    version: int = 0
    run_id: str = ""
    artifact_path: str = ""


def parse_model_uri(uri: str) -> ModelReference | str:
    """The reference ``uri`` names, or an error message saying which forms are accepted. No I/O."""
    expected = f"a model URI must be one of {MODEL_URI_FORMS}, got {uri!r}"
    if not isinstance(uri, str) or any(c.isspace() for c in uri):
        return expected
    if uri.startswith("runs:/"):
        run_id, _sep, path = uri[len("runs:/"):].partition("/")
        path = path.strip("/")
        if not RUN_ID_RE.match(run_id):
            return f"{expected}: RUN_ID must be the run's 32 lower-case hex digits"
        if not path or any(part in ("", ".", "..") for part in path.split("/")):
            return f"{expected}: PATH must name the model's artifact folder inside the run, for example model"
        return ModelReference("run", run_id=run_id, artifact_path=path)
    if not uri.startswith("models:/"):
        return expected
    rest = uri[len("models:/"):]
    if "@" in rest:
        name, _sep, alias = rest.partition("@")
        problem = alias_name_problem(alias) if name and "/" not in name else expected
        return f"{expected}: {problem}" if problem else ModelReference("alias", name=name, alias=alias)
    name, _sep, version = rest.partition("/")
    if not name or not version or "/" in version:
        return expected
    if version == "latest":
        return ModelReference("latest", name=name)
    number = parse_version(version)
    if number is None:
        return f"{expected}: VERSION must be a positive integer"
    return ModelReference("version", name=name, version=number)


def aliases_of(registered_model: t.Mapping[str, t.Any]) -> dict[str, int]:
    """``{alias: version}`` from a registered model as MLflow's REST API returns it."""
    return {
        item["alias"]: int(item["version"])
        for item in registered_model.get("aliases") or []
    }


def latest_version(
    versions: t.Iterable[t.Mapping[str, t.Any]],
) -> dict[str, t.Any] | None:
    """The model version with the highest number (what ``models:/NAME/latest`` means), or None."""
    return max(versions, key=lambda mv: int(mv["version"]), default=None)


def filter_for_model(name: str) -> str:
    """A model-versions/search filter selecting one registered model by exact name."""
    if "'" not in name:
        return f"name = '{name}'"
    if '"' not in name:
        return f'name = "{name}"'
    raise MlflowConfigError(
        f"cannot search versions of model {name!r}: its name contains both quote characters"
    )


def backoff_delay(
    attempt: int, base: float, cap: float, retry_after: str | None = None
) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): Retry-After if given, else capped exponential."""
    if retry_after:
        try:
            return min(max(float(retry_after), 0.0), cap)
        except ValueError:
            pass
    return min(base * (2 ** (attempt - 1)), cap)


def _error_body(raw: bytes) -> tuple[str | None, str]:
    """(error_code, message) from an MLflow error response body (JSON or plain text)."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return None, text[:500]
    if isinstance(payload, dict):
        return payload.get("error_code"), str(payload.get("message") or text)[:500]
    return None, text[:500]


# ----------------------------------------------------------------------------------------- client


@dataclass(frozen=True)
class MlflowConnection:
    """Where and as whom to talk to MLflow."""

    tracking_uri: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    validate_certs: bool = True
    ca_path: str | None = None
    timeout: float = 30
    retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 10.0

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any]) -> MlflowConnection:
        return cls(
            tracking_uri=params["tracking_uri"],
            username=params.get("username"),
            password=params.get("password"),
            token=params.get("token"),
            validate_certs=params.get("validate_certs", True),
            ca_path=params.get("ca_path"),
            timeout=params.get("timeout") or 30,
        )

    def authorization(self) -> str | None:
        """The Authorization header: basic auth wins over a token, as in MLflow's own client."""
        if self.username and self.password:
            pair = f"{self.username}:{self.password}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        if self.token:
            return f"Bearer {self.token}"
        return None

    def identity(self) -> str:
        """Who the requests authenticate as, for error messages (never the secret)."""
        if self.username and self.password:
            return f"user '{self.username}'"
        if self.token:
            return "the bearer token"
        return "anonymous requests"

    def credentials_hint(self) -> str:
        if self.username and self.password:
            return "check username and password"
        if self.token:
            return "check the token"
        return (
            "no credentials were given: set username and password (or MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD) or token"
        )


class MlflowClient:
    """MLflow model-registry REST calls with retries; every method raises MlflowError on failure."""

    def __init__(
        self,
        connection: MlflowConnection,
        opener: Opener | None = None,
        sleep: Sleeper | None = None,
    ) -> None:
        self.connection = connection
        self.base_url = validate_tracking_uri(connection.tracking_uri)
        self._open = opener or open_url
        self._sleep = sleep or time.sleep

    # -- registry endpoints

    def get_registered_model(self, name: str) -> dict[str, t.Any]:
        data = self.request(
            "GET",
            "registered-models/get",
            {"name": name},
            resource=f"registered model '{name}'",
        )
        return data["registered_model"]

    def get_model_version(self, name: str, version: int | str) -> dict[str, t.Any]:
        data = self.request(
            "GET",
            "model-versions/get",
            {"name": name, "version": str(version)},
            resource=f"version {version} of registered model '{name}'",
        )
        return data["model_version"]

    def get_model_version_by_alias(self, name: str, alias: str) -> dict[str, t.Any]:
        data = self.request(
            "GET",
            "registered-models/alias",
            {"name": name, "alias": alias},
            resource=f"alias '{alias}' of registered model '{name}'",
        )
        return data["model_version"]

    def set_alias(self, name: str, alias: str, version: int | str) -> None:
        self.request(
            "POST",
            "registered-models/alias",
            body={"name": name, "alias": alias, "version": str(version)},
            resource=f"alias '{alias}' of registered model '{name}' (setting it to version {version})",
        )

    def delete_alias(self, name: str, alias: str) -> None:
        self.request(
            "DELETE",
            "registered-models/alias",
            body={"name": name, "alias": alias},
            resource=f"alias '{alias}' of registered model '{name}' (deleting it)",
        )

    def set_tag(self, name: str, version: int | str | None, key: str, value: str) -> None:
        """Set a tag of a registered model, or of one of its versions."""
        if version is None:
            self.request("POST", "registered-models/set-tag", body={"name": name, "key": key, "value": value},
                         resource=f"tag '{key}' of registered model '{name}'")
        else:
            self.request("POST", "model-versions/set-tag",
                         body={"name": name, "version": str(version), "key": key, "value": value},
                         resource=f"tag '{key}' of version {version} of registered model '{name}'")

    def search_model_versions(self, name: str) -> list[dict[str, t.Any]]:
        """All versions of one registered model (follows next_page_token, bounded)."""
        versions: list[dict[str, t.Any]] = []
        token: str | None = None
        for _page in range(MAX_SEARCH_PAGES):
            data = self.request(
                "GET",
                "model-versions/search",
                {
                    "filter": filter_for_model(name),
                    "max_results": SEARCH_PAGE_SIZE,
                    "page_token": token,
                },
                resource=f"versions of registered model '{name}'",
            )
            versions.extend(data.get("model_versions") or [])
            token = data.get("next_page_token")
            if not token:
                return versions
        raise MlflowError(
            f"listing versions of registered model '{name}' returned more than {MAX_SEARCH_PAGES} pages; giving up"
        )

    def get_run(self, run_id: str) -> dict[str, t.Any]:
        data = self.request("GET", "runs/get", {"run_id": run_id}, resource=f"run {run_id}")
        return data["run"]

    def experiment_of(self, run_id: str, model_id: str) -> str:
        """The experiment whose artifact store holds a model version's files (its run's, else its logged model's)."""
        if run_id:
            return str(self.get_run(run_id)["info"]["experiment_id"])
        if model_id:
            data = self.request("GET", f"logged-models/{model_id}", resource=f"logged model {model_id}")
            return str(data["model"]["info"]["experiment_id"])
        return ""

    def list_artifacts(self, run_id: str, path: str) -> list[dict[str, t.Any]]:
        data = self.request(
            "GET", "artifacts/list", {"run_id": run_id, "path": path},
            resource=f"artifacts '{path}' of run {run_id}",
        )
        return list(data.get("files") or [])

    def find_logged_model(self, experiment_id: str, run_id: str, name: str) -> dict[str, t.Any] | None:
        """The MLflow 3 logged model ``name`` that run ``run_id`` produced (what runs:/RUN_ID/NAME loads), or None."""
        token: str | None = None
        for _page in range(MAX_SEARCH_PAGES):
            body: dict[str, t.Any] = {"experiment_ids": [experiment_id], "filter": filter_for_model(name),
                                      "max_results": 100}
            if token:
                body["page_token"] = token
            data = self.request("POST", "logged-models/search", body=body,
                                resource=f"logged models named '{name}' of experiment {experiment_id}")
            for model in data.get("models") or []:
                info = model.get("info") or {}
                if info.get("source_run_id") == run_id:
                    return info
            token = data.get("next_page_token")
            if not token:
                return None
        raise MlflowError(f"searching logged models of experiment {experiment_id} returned too many pages")

    # -- users and their permissions (basic-auth servers)

    def get_user(self, username: str) -> dict[str, t.Any] | None:
        """The user (id, username, is_admin), or None when there is none of that name."""
        try:
            return self.request("GET", "users/get", {"username": username}, resource=f"user '{username}'")["user"]
        except MlflowNotFoundError:
            return None

    def create_user(self, username: str, password: str) -> None:
        self.request("POST", "users/create", body={"username": username, "password": password},
                     resource=f"user '{username}' (creating it)")

    def update_user_password(self, username: str, password: str) -> None:
        self.request("PATCH", "users/update-password", body={"username": username, "password": password},
                     resource=f"user '{username}' (setting its password)")

    def update_user_admin(self, username: str, is_admin: bool) -> None:
        self.request("PATCH", "users/update-admin", body={"username": username, "is_admin": is_admin},
                     resource=f"user '{username}' (setting is_admin)")

    def delete_user(self, username: str) -> None:
        self.request("DELETE", "users/delete", body={"username": username}, resource=f"user '{username}' (deleting it)")

    def user_grants(self, username: str) -> list[dict[str, t.Any]]:
        """The user's own grants (its synthetic role's rows: resource_type, resource_pattern, permission)."""
        data = self.request("GET", f"{API3_PREFIX}/users/permissions/list", {"username": username},
                            resource=f"permissions of user '{username}'")
        return [row for row in data.get("permissions") or [] if str(row.get("role_name", "")).startswith("__user_")]

    def grant(self, username: str, resource_type: str, resource_id: str, permission: str) -> None:
        self.request("POST", f"{API3_PREFIX}/users/permissions/grant",
                     body={"username": username, "resource_type": resource_type, "resource_id": resource_id,
                           "permission": permission},
                     resource=f"{permission} on {resource_type} '{resource_id}' for user '{username}'")

    def revoke(self, username: str, resource_type: str, resource_id: str) -> None:
        self.request("POST", f"{API3_PREFIX}/users/permissions/revoke",
                     body={"username": username, "resource_type": resource_type, "resource_id": resource_id},
                     resource=f"the grant on {resource_type} '{resource_id}' of user '{username}'")

    def authenticates(self, username: str, password: str) -> bool:
        """Whether the server accepts this user and password (asks who is logged in, as that user)."""
        as_user = MlflowClient(replace(self.connection, username=username, password=password, token=None, retries=0),
                               opener=self._open, sleep=self._sleep)
        try:
            as_user.request("GET", "users/current", resource=f"user '{username}' (checking its password)")
        except MlflowAuthenticationError:
            return False
        return True

    # -- transport

    def request(
        self,
        method: str,
        endpoint: str,
        query: t.Mapping[str, t.Any] | None = None,
        body: t.Mapping[str, t.Any] | None = None,
        *,
        resource: str,
    ) -> dict[str, t.Any]:
        """One REST call, retried on 429/5xx and connection errors; returns the decoded JSON object."""
        url = build_url(self.base_url, endpoint, query)
        headers = {"Accept": "application/json"}
        auth = self.connection.authorization()
        if auth:
            headers["Authorization"] = auth
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"

        attempts = self.connection.retries + 1
        for attempt in range(1, attempts + 1):
            retry_after: str | None = None
            try:
                response = self._open(
                    url,
                    data=data,
                    headers=headers,
                    method=method,
                    timeout=self.connection.timeout,
                    validate_certs=self.connection.validate_certs,
                    ca_path=self.connection.ca_path,
                    use_netrc=False,
                    http_agent="mlplatform.mlflow",
                )
                raw = response.read()
            except urllib.error.HTTPError as exc:
                raw_error = exc.read() if exc.fp is not None else b""
                if exc.code not in RETRYABLE_STATUS or attempt == attempts:
                    raise self._http_error(
                        method, url, exc.code, raw_error, resource
                    ) from None
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
            except (
                urllib.error.URLError,
                AnsibleConnectionError,
                http.client.HTTPException,
                ConnectionError,
                TimeoutError,
                ssl.SSLError,
            ) as exc:
                reason = getattr(exc, "reason", None) or exc
                # TLS problems are configuration, not transient: do not retry them.
                if isinstance(reason, ssl.SSLError) or attempt == attempts:
                    raise self._connection_error(
                        method, url, reason, resource, attempt
                    ) from None
            else:
                return self._decode(raw, method, url, resource)
            delay = backoff_delay(
                attempt,
                self.connection.backoff,
                self.connection.max_backoff,
                retry_after,
            )
            self._sleep(
                delay * (0.5 + random.random() / 2) if retry_after is None else delay
            )
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _decode(raw: bytes, method: str, url: str, resource: str) -> dict[str, t.Any]:
        if not raw.strip():
            return {}
        try:
            payload = json.loads(raw)
        except ValueError:
            raise MlflowError(
                f"{method} {url} for {resource} returned a response that is not JSON "
                f"(is tracking_uri the MLflow server?): {raw[:200].decode('utf-8', errors='replace')!r}",
                url=url,
            ) from None
        if not isinstance(payload, dict):
            raise MlflowError(
                f"{method} {url} for {resource} returned unexpected JSON: {payload!r:.200}",
                url=url,
            )
        return payload

    def _connection_error(
        self, method: str, url: str, reason: object, resource: str, attempts: int
    ) -> MlflowError:
        hint = ""
        if isinstance(reason, ssl.SSLCertVerificationError):
            hint = (
                " Set ca_path to the CA bundle that signed the server certificate"
                " (or validate_certs: false for tests)."
            )
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return MlflowConnectionError(
            f"cannot reach MLflow at {self.base_url} for {resource}{tries}: {reason}.{hint}",
            url=url,
        )

    def _http_error(
        self, method: str, url: str, status: int, raw: bytes, resource: str
    ) -> MlflowHTTPError:
        error_code, message = _error_body(raw)
        reason = f"{error_code}: {message}" if error_code else message
        where = f"{method} {url}"
        if status == 401:
            return MlflowAuthenticationError(
                f"authentication failed for {self.connection.identity()} at {self.base_url} (HTTP 401) "
                f"while accessing {resource}: {self.connection.credentials_hint()}. Server said: {reason}",
                status=status,
                error_code=error_code,
                url=url,
            )
        if status == 403 and INVALID_HOST_MARKER in message:
            host = urlsplit(self.base_url).netloc
            hostname = urlsplit(self.base_url).hostname
            return MlflowPermissionError(
                f"MLflow at {self.base_url} rejected the Host header '{host}' (HTTP 403: {message}) while "
                f"accessing {resource}. Add '{host}' (or '{hostname}:*') to the server's allowed hosts "
                "(mlflow server --allowed-hosts or MLFLOW_SERVER_ALLOWED_HOSTS), or use a host name it allows.",
                status=status,
                error_code=error_code,
                url=url,
            )
        if status == 403:
            return MlflowPermissionError(
                f"permission denied for {self.connection.identity()} on {resource} at {self.base_url} "
                f"(HTTP 403): {reason}. Grant the user a sufficient permission on the registered model "
                "(READ to read, EDIT to change aliases) or use an admin account.",
                status=status,
                error_code=error_code,
                url=url,
            )
        if status == 404 or error_code == "RESOURCE_DOES_NOT_EXIST":
            return MlflowNotFoundError(
                f"{resource} not found at {self.base_url} (HTTP {status}, {error_code or 'no error code'}): {message}",
                status=status,
                error_code=error_code,
                url=url,
            )
        return MlflowHTTPError(
            f"{where} failed for {resource} (HTTP {status}): {reason}",
            status=status,
            error_code=error_code,
            url=url,
        )


# ---------------------------------------------------------------------------------- module wrapper


def resolve_alias(client: MlflowClient, name: str, alias: str) -> dict[str, t.Any]:
    """The version ``alias`` points at; on failure, say whether the model or the alias is missing."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowError as original:
        if original.status not in (400, 404):
            raise
        # Raises MlflowNotFoundError when the model itself is missing.
        registered = client.get_registered_model(name)
        existing = aliases_of(registered)
        if alias in existing:
            raise
        known = ", ".join(f"{key} -> {value}" for key, value in sorted(existing.items())) or "none"
        raise MlflowNotFoundError(
            f"registered model '{name}' has no alias '{alias}' (its aliases: {known})",
            status=original.status,
            error_code=original.error_code,
            url=original.url,
        ) from None


def resolve_model_version(client: MlflowClient, name: str, kind: str, value: str | int) -> dict[str, t.Any]:
    """The registry's model version for ``kind`` alias/version/latest of model ``name``."""
    if kind == "alias":
        return resolve_alias(client, name, str(value))
    if kind == "version":
        return client.get_model_version(name, value)
    # A clear "model not found" rather than an empty search.
    client.get_registered_model(name)
    newest = latest_version(client.search_model_versions(name))
    if newest is None:
        raise MlflowNotFoundError(f"registered model '{name}' has no versions yet")
    return newest


# ------------------------------------------------------------------------------- model URIs, pinned


def pin_registry_version(reference: ModelReference, model_version: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The result for a registry reference resolved to ``model_version`` (REST shape). No I/O."""
    version = int(model_version["version"])
    result = {"source": "registry", "name": reference.name, "version": version,
              "model_uri": f"models:/{reference.name}/{version}", "run_id": model_version.get("run_id") or "",
              "artifact_path": "", "status": model_version.get("status", "")}
    if model_version.get("model_id"):
        result["model_id"] = model_version["model_id"]
    return result


def readiness_problem(result: t.Mapping[str, t.Any]) -> str | None:
    if result["source"] != "registry" or result["status"] == "READY":
        return None
    return (f"version {result['version']} of registered model '{result['name']}' is "
            f"{result['status'] or 'in an unknown state'}, not READY")


def has_mlmodel(files: t.Iterable[t.Mapping[str, t.Any]], path: str) -> bool:
    """Whether an artifacts/list answer for ``path`` contains ``path``/MLmodel. No I/O."""
    return any(f.get("path") in (f"{path}/MLmodel", "MLmodel") and not f.get("is_dir") for f in files)


def pin_run_model(client: MlflowClient, reference: ModelReference) -> dict[str, t.Any]:
    """Check that the run exists and produced a model at PATH; runs:/ URIs are already immutable."""
    run = client.get_run(reference.run_id)
    info = run.get("info") or {}
    uri = f"runs:/{reference.run_id}/{reference.artifact_path}"
    if info.get("lifecycle_stage") == "deleted":
        raise MlflowNotFoundError(f"{uri}: run {reference.run_id} is deleted")
    result = {"source": "run", "name": "", "version": 0, "model_uri": uri, "run_id": reference.run_id,
              "artifact_path": reference.artifact_path, "status": info.get("status", ""),
              "experiment_id": str(info.get("experiment_id", ""))}
    first, _sep, rest = reference.artifact_path.partition("/")
    logged = None if rest else client.find_logged_model(str(info.get("experiment_id", "")), reference.run_id, first)
    if logged:
        result["model_id"] = logged.get("model_id", "")
        return result
    if has_mlmodel(client.list_artifacts(reference.run_id, reference.artifact_path), reference.artifact_path):
        return result
    raise MlflowNotFoundError(
        f"{uri}: run {reference.run_id} has no model '{reference.artifact_path}' (neither a logged model of that "
        f"name nor an MLmodel file under that artifact path)")


MODEL_URI_INFO_SPEC: dict[str, dict[str, t.Any]] = {
    "uri": {"type": "str", "required": True},
    "require_ready": {"type": "bool", "default": True},
}


def pin_model_uri(client: MlflowClient, uri: str, require_ready: bool = True) -> dict[str, t.Any]:
    """The exact model a URI names now (mlflow_model_uri_info's result); MlflowError when it cannot be served."""
    reference = parse_model_uri(uri)
    if isinstance(reference, str):
        raise MlflowConfigError(f"invalid uri: {reference}")
    if reference.kind == "run":
        result = pin_run_model(client, reference)
    else:
        value = {"alias": reference.alias, "version": reference.version}.get(reference.kind, "latest")
        result = pin_registry_version(reference, resolve_model_version(client, reference.name, reference.kind, value))
        result["experiment_id"] = client.experiment_of(result["run_id"], result.get("model_id", ""))
    problem = readiness_problem(result)
    del result["status"]
    if problem and require_ready:
        raise MlflowError(f"{uri}: {problem}. Wait for registration to finish or pin another version.")
    return {"resolved_from": uri, **result}


class MlflowModule:
    """An AnsibleModule with the shared MLflow connection options and one way to fail on MlflowError."""

    def __init__(
        self,
        argument_spec: dict[str, dict[str, t.Any]],
        *,
        required_together: list[list[str]] | None = None,
        opener: Opener | None = None,
        **kwargs: t.Any,
    ) -> None:
        spec = mlflow_argument_spec()
        clash = set(spec) & set(argument_spec)
        if clash:
            raise ValueError(
                f"module options clash with the MLflow connection options: {sorted(clash)}"
            )
        spec.update(copy.deepcopy(argument_spec))
        self.module = AnsibleModule(
            argument_spec=spec,
            required_together=[*MLFLOW_REQUIRED_TOGETHER, *(required_together or [])],
            **kwargs,
        )
        self._opener = opener
        self._client: MlflowClient | None = None

    @property
    def params(self) -> dict[str, t.Any]:
        return self.module.params

    @property
    def check_mode(self) -> bool:
        return self.module.check_mode

    @property
    def diff_mode(self) -> bool:
        return self.module._diff

    @property
    def client(self) -> MlflowClient:
        """The client, built on first use (so validation failures never send a request)."""
        if self._client is None:
            try:
                self._client = MlflowClient(
                    MlflowConnection.from_params(self.params), opener=self._opener
                )
            except MlflowError as exc:
                self.fail_from_error(exc)
        return self._client

    def exit_json(self, **result: t.Any) -> t.NoReturn:
        self.module.exit_json(**result)

    def fail_json(self, msg: str, **result: t.Any) -> t.NoReturn:
        self.module.fail_json(msg=msg, **result)

    def fail_from_error(self, error: MlflowError, **result: t.Any) -> t.NoReturn:
        self.module.fail_json(msg=str(error), **error.details(), **result)


# --------------------------------------------------------------------------------------- users as code

USER_SPEC: dict[str, dict[str, t.Any]] = {
    "name": {"type": "str", "required": True},
    "user_password": {"type": "str", "no_log": True},
    "admin": {"type": "bool", "default": False},
    "permissions": {
        "type": "list", "elements": "dict", "default": [],
        "options": {
            "resource_type": {"type": "str", "required": True, "choices": ["experiment", "registered_model"]},
            "resource_id": {"type": "str", "required": True},
            "permission": {"type": "str", "default": "READ",
                           "choices": ["READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"]},
        },
    },
    "purge_permissions": {"type": "bool", "default": False},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}

Grants = dict[tuple[str, str], str]  # (resource_type, resource_id) -> permission


def wanted_grants(permissions: list[dict[str, str]]) -> Grants:
    return {(p["resource_type"], p["resource_id"]): p["permission"] for p in permissions}


def current_grants(rows: list[dict[str, t.Any]]) -> Grants:
    return {(row["resource_type"], row["resource_pattern"]): row["permission"] for row in rows
            if row.get("resource_type") in ("experiment", "registered_model")}


def grant_changes(current: Grants, wanted: Grants, purge: bool) -> tuple[list, list]:
    """(revoke, grant): keys to revoke and (key, permission) to grant, so the user ends with what is wanted. No I/O.

    A changed permission is a revoke then a grant (MLflow refuses a second grant on the same resource)."""
    revoke = [key for key, permission in current.items()
              if (key in wanted and wanted[key] != permission) or (key not in wanted and purge)]
    grant = [(key, permission) for key, permission in wanted.items() if current.get(key) != permission]
    return sorted(revoke), sorted(grant)


def format_grants(grants: Grants) -> list[str]:
    return [f"{permission} on {resource_type} {resource_id}"
            for (resource_type, resource_id), permission in sorted(grants.items())]


def keep_user(client: MlflowClient, params: t.Mapping[str, t.Any], check_mode: bool) -> dict[str, t.Any]:
    """mlflow_user: make user ``name`` as declared (or absent); the result lists the actions and a diff."""
    name, password = params["name"], params.get("user_password")
    user = client.get_user(name)
    current = current_grants(client.user_grants(name)) if user is not None else {}
    before = {} if user is None else {"admin": bool(user.get("is_admin")), "permissions": format_grants(current)}
    steps: list[tuple[str, t.Callable[[], None]]] = []
    after: dict[str, t.Any] = {}
    if params["state"] == "absent":
        if user is not None:
            steps.append(("delete user", lambda: client.delete_user(name)))
    else:
        if user is None and not password:
            raise MlflowConfigError(f"user '{name}' does not exist: give user_password to create it")
        revoke, grant = grant_changes(current, wanted_grants(params["permissions"]), params["purge_permissions"])
        if user is None:
            steps.append(("create user", lambda: client.create_user(name, password)))
        elif password and not client.authenticates(name, password):
            steps.append(("set password", lambda: client.update_user_password(name, password)))
        if bool((user or {}).get("is_admin")) != params["admin"]:
            steps.append((f"set admin {params['admin']}", lambda: client.update_user_admin(name, params["admin"])))
        steps += [(f"revoke the grant on {kind} {rid}", lambda kind=kind, rid=rid: client.revoke(name, kind, rid))
                  for kind, rid in revoke]
        steps += [(f"grant {permission} on {kind} {rid}",
                   lambda kind=kind, rid=rid, permission=permission: client.grant(name, kind, rid, permission))
                  for (kind, rid), permission in grant]
        final = {key: permission for key, permission in current.items() if key not in revoke} | dict(grant)
        after = {"admin": params["admin"], "permissions": format_grants(final)}
        if any(action in ("create user", "set password") for action, _step in steps):
            after["password"] = "changed"
    if not check_mode:
        for _action, step in steps:
            step()
    return {"changed": bool(steps), "name": name, "actions": [action for action, _step in steps],
            "diff": {"before": before, "after": after, "before_header": f"MLflow user {name}",
                     "after_header": f"MLflow user {name}"}}
