# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Kubernetes API client: kubeconfig (or in-cluster) credentials, one kept-alive HTTPS connection, JSON.

Why not the `kubernetes` package: importing it costs about 0.5 s (it loads every API model), paid by every task
that talks to the cluster; this client imports in milliseconds, so the collection's Kubernetes actions run inside
the controller's worker process at the cost of their HTTP requests alone. It covers what a kubeconfig written by
kubectl, minikube, kind or `gcloud container clusters get-credentials` holds: certificate authorities, client
certificates, bearer tokens and token files, basic auth, and exec credential plugins (gke-gcloud-auth-plugin).
Functions raise K8sError; only modules and actions turn that into a failure.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
REQUEST_TIMEOUT = 30
# A 429 means the API server did not take the request (API Priority and Fairness, or a CRD's storage still
# initializing right after the CRD was created): it is sent again after Retry-After (at most 5 s), up to 30 s in all.
THROTTLED_WAIT_MAX, THROTTLED_TOTAL = 5.0, 30.0

# A runner starts a command: run(argv, environment additions) -> (rc, stdout, stderr). Modules pass
# AnsibleModule.run_command, controller-side plugins a subprocess (plugin_utils/in_process.py); only exec credential
# plugins need one.


class K8sError(Exception):
    """A Kubernetes API call failed; the message names the object and the API's reason."""

    def __init__(self, message: str, status: int | None = None, reason: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason


def kubeconfig_paths(explicit: str | None) -> list[str]:
    """The kubeconfig files to read, as kubectl finds them: the given path, K8S_AUTH_KUBECONFIG, KUBECONFIG (a
    colon-separated list), then ~/.kube/config."""
    given = explicit or os.environ.get("K8S_AUTH_KUBECONFIG") or os.environ.get("KUBECONFIG") or ""
    paths = [os.path.expanduser(p) for p in given.split(os.pathsep) if p]
    return paths or [os.path.expanduser("~/.kube/config")]


def merge_kubeconfigs(documents: list[tuple[str, dict]]) -> dict:
    """Merge kubeconfig documents as kubectl does: the first file that names an entry or the current context wins.

    Each entry remembers the folder of its file, which relative certificate and token paths are relative to."""
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
    for path, doc in documents:
        base = os.path.dirname(os.path.abspath(path))
        merged["current-context"] = merged["current-context"] or doc.get("current-context") or ""
        for section, field in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in doc.get(section) or []:
                if entry.get("name") not in merged[section]:
                    merged[section][entry.get("name")] = {**(entry.get(field) or {}), "_base": base}
    return merged


def _path(entry: dict, key: str) -> str | None:
    value = entry.get(key)
    return os.path.join(entry["_base"], os.path.expanduser(value)) if value else None


def _data(entry: dict, key: str) -> bytes | None:
    """A certificate or key given inline (KEY-data, base64) or as a file (KEY)."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    path = _path(entry, key)
    if path:
        with open(path, "rb") as handle:
            return handle.read()
    return None


class Settings:
    """Where the API server is and how to authenticate to it."""

    def __init__(self, server: str, ca: bytes | None = None, insecure: bool = False, tls_server_name: str = "",
                 cert: bytes | None = None, key: bytes | None = None, token: str = "", token_file: str = "",
                 basic: tuple[str, str] | None = None, exec_spec: dict | None = None, description: str = "",
                 context: str = ""):
        self.server, self.ca, self.insecure, self.tls_server_name = server.rstrip("/"), ca, insecure, tls_server_name
        self.cert, self.key, self.token, self.token_file = cert, key, token, token_file
        self.basic, self.exec_spec, self.description = basic, exec_spec, description
        self.context = context  # the kubeconfig context's name; empty in a pod


def load_settings(kubeconfig: str | None = None, context: str | None = None) -> Settings:
    """Settings from the kubeconfig (or, with none to read, the pod's service account)."""
    paths = [p for p in kubeconfig_paths(kubeconfig) if os.path.exists(p)]
    if not paths:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(f"{IN_CLUSTER_DIR}/token"):
            host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            with open(f"{IN_CLUSTER_DIR}/ca.crt", "rb") as handle:
                ca = handle.read()
            return Settings(f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}", ca=ca,
                            token_file=f"{IN_CLUSTER_DIR}/token", description="the in-cluster service account")
        raise K8sError(f"no kubeconfig at {', '.join(kubeconfig_paths(kubeconfig))} and not running in a pod")
    documents = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                documents.append((path, yaml.safe_load(handle) or {}))
        except (OSError, yaml.YAMLError) as exc:
            raise K8sError(f"cannot read kubeconfig {path}: {exc}") from exc
    merged = merge_kubeconfigs(documents)
    name = context or merged["current-context"]
    where = ", ".join(paths)
    if name not in merged["contexts"]:
        raise K8sError(f"kubeconfig {where} has no context {name!r} (it has: "
                       f"{', '.join(sorted(merged['contexts'])) or 'none'})")
    ctx = merged["contexts"][name]
    cluster = merged["clusters"].get(ctx.get("cluster"))
    user = merged["users"].get(ctx.get("user"), {"_base": ""})
    if cluster is None or not cluster.get("server"):
        raise K8sError(f"kubeconfig {where}: context {name!r} names cluster {ctx.get('cluster')!r}, "
                       "which has no server")
    if user.get("auth-provider"):
        raise K8sError(f"kubeconfig {where}: user {ctx.get('user')!r} uses an auth-provider, which Kubernetes removed; "
                       "use an exec plugin (for GKE: gke-gcloud-auth-plugin)")
    if cluster.get("proxy-url"):
        raise K8sError(f"kubeconfig {where}: cluster {ctx.get('cluster')!r} sets proxy-url, which is not supported")
    try:
        return Settings(
            cluster["server"], ca=_data(cluster, "certificate-authority"),
            insecure=bool(cluster.get("insecure-skip-tls-verify")), tls_server_name=cluster.get("tls-server-name", ""),
            cert=_data(user, "client-certificate"), key=_data(user, "client-key"), token=user.get("token", ""),
            token_file=_path(user, "tokenFile") or "",
            basic=(user["username"], user.get("password", "")) if user.get("username") else None,
            exec_spec=user.get("exec"), description=f"context {name!r} of {where}", context=name)
    except OSError as exc:
        raise K8sError(f"kubeconfig {where}, context {name!r}: {exc}") from exc


def exec_credential(spec: dict, run: Callable[[list, dict], tuple] | None) -> dict:
    """Run an exec credential plugin (client.authentication.k8s.io) and return its ExecCredential status."""
    if run is None:
        raise K8sError(f"the kubeconfig's user runs the credential plugin {spec.get('command')}, which this caller "
                       "cannot start")
    env = {item["name"]: item["value"] for item in spec.get("env") or []}
    env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": spec.get("apiVersion"), "kind": "ExecCredential",
                                              "spec": {"interactive": False}})
    try:
        rc, out, err = run([spec["command"], *(spec.get("args") or [])], env)
    except OSError as exc:
        hint = f" {spec['installHint']}" if spec.get("installHint") else ""
        raise K8sError(f"the kubeconfig's credential plugin {spec['command']} could not run: {exc}.{hint}") from exc
    if rc != 0:
        raise K8sError(f"the kubeconfig's credential plugin {spec['command']} failed ({rc}): {err.strip()[-500:]}")
    try:
        return json.loads(out)["status"]
    except (ValueError, KeyError) as exc:
        raise K8sError(f"the kubeconfig's credential plugin {spec['command']} printed no ExecCredential") from exc


def _ssl_context(settings: Settings, cert: bytes | None, key: bytes | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=settings.ca.decode() if settings.ca else None)
    if settings.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert and key:
        # load_cert_chain reads files only: the pair goes to a private temporary file, removed at once.
        with tempfile.TemporaryDirectory(prefix="mlplatform-k8s-") as folder:
            pem = os.path.join(folder, "client.pem")
            with open(os.open(pem, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
                handle.write(cert.rstrip(b"\n") + b"\n" + key)
            context.load_cert_chain(pem)
    return context


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS that checks the certificate against tls-server-name when the kubeconfig sets one."""

    def __init__(self, host: str, port: int | None, server_name: str, **kwargs: Any):
        super().__init__(host, port, **kwargs)
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name or self.host)


class Client:
    """One API server, one kept-alive connection; resources found by discovery, once per API group version."""

    def __init__(self, settings: Settings, run: Callable[[list, dict], tuple] | None = None):
        self.settings = settings
        self._run = run
        parts = urlsplit(settings.server)
        if parts.scheme not in ("https", "http"):
            raise K8sError(f"{settings.description}: server {settings.server!r} is not an http(s) URL")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._connection: http.client.HTTPConnection | None = None
        self._headers: dict[str, str] = {}
        self._cert, self._key = settings.cert, settings.key
        self._token_expiry = 0.0
        self._discovery: dict[str, dict[str, tuple[str, bool]]] = {}

    def _authenticate(self) -> None:
        s = self.settings
        if s.exec_spec and time.time() >= self._token_expiry:
            status = exec_credential(s.exec_spec, self._run)
            if status.get("token"):
                self._headers["Authorization"] = f"Bearer {status['token']}"
            if status.get("clientCertificateData"):
                self._cert, self._key = status["clientCertificateData"].encode(), status["clientKeyData"].encode()
            self._token_expiry = time.time() + 300  # ExecCredential expiry is RFC 3339; five minutes is safe
            self._connection = None
        elif s.token_file:
            with open(s.token_file, encoding="utf-8") as handle:
                self._headers["Authorization"] = f"Bearer {handle.read().strip()}"
        elif s.token:
            self._headers["Authorization"] = f"Bearer {s.token}"
        elif s.basic:
            pair = base64.b64encode(f"{s.basic[0]}:{s.basic[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {pair}"

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._scheme == "http":
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=REQUEST_TIMEOUT)
            else:
                context = _ssl_context(self.settings, self._cert, self._key)
                self._connection = _TLSConnection(self._host, self._port, self.settings.tls_server_name,
                                                  timeout=REQUEST_TIMEOUT, context=context)
        return self._connection

    def request(self, method: str, path: str, body: Any = None, query: dict | None = None,
                content_type: str = "application/json", text: bool = False) -> Any:
        """The decoded JSON answer (the body as text with text=True: a pod's metrics through the API server's
        proxy); K8sError with the API's status and message otherwise (404 included)."""
        self._authenticate()
        url = self._prefix + path + (f"?{urlencode(query, doseq=True)}" if query else "")
        payload = json.dumps(body).encode() if body is not None else None
        headers = {**self._headers, "Accept": "application/json", "User-Agent": "mlplatform.mlflow"}
        if payload is not None:
            headers["Content-Type"] = content_type
        deadline = time.monotonic() + THROTTLED_TOTAL
        response, data = self._send(method, path, url, payload, headers)
        while response.status == 429 and time.monotonic() < deadline:
            try:
                wait = float(response.getheader("Retry-After") or 1)
            except ValueError:
                wait = 1.0
            time.sleep(max(0.0, min(wait, THROTTLED_WAIT_MAX, deadline - time.monotonic())))
            response, data = self._send(method, path, url, payload, headers)
        if text and response.status < 400:
            return data.decode(errors="replace")
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = None
        if response.status >= 400:
            message = (decoded or {}).get("message") if isinstance(decoded, dict) else data.decode(errors="replace")
            reason = (decoded or {}).get("reason", "") if isinstance(decoded, dict) else response.reason
            raise K8sError(f"{response.status} {reason}: {message}", status=response.status, reason=reason)
        return decoded

    def _send(self, method: str, path: str, url: str, payload: bytes | None,
              headers: dict[str, str]) -> tuple[http.client.HTTPResponse, bytes]:
        """One request on the kept-alive connection (a new one, once, when the server had closed it)."""
        reopened = False
        while True:
            connection = self._connect()
            try:
                connection.request(method, url, body=payload, headers=headers)
                response = connection.getresponse()
                return response, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                connection.close()
                self._connection = None  # the server closed an idle kept-alive connection: open a new one, once
                if reopened:
                    raise K8sError(f"{method} {path}: {exc}") from exc
                reopened = True
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                self._connection = None
                raise K8sError(f"cannot reach the Kubernetes API at {self.settings.server} "
                               f"({self.settings.description}): {exc}") from exc

    def resource(self, api_version: str, kind: str) -> tuple[str, bool] | None:
        """(plural, namespaced) of a kind, or None when the cluster does not serve it."""
        if api_version not in self._discovery:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            try:
                listing = self.request("GET", path)
            except K8sError as exc:
                if exc.status == 404:
                    self._discovery[api_version] = {}
                    return None
                raise
            self._discovery[api_version] = {r["kind"]: (r["name"], r["namespaced"])
                                            for r in listing.get("resources", []) if "/" not in r["name"]}
        return self._discovery[api_version].get(kind)

    def path(self, api_version: str, kind: str, namespace: str | None = None, name: str | None = None) -> str:
        found = self.resource(api_version, kind)
        if found is None:
            raise K8sError(f"the cluster does not serve {api_version} {kind}", status=404, reason="NotServed")
        plural, namespaced = found
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced and namespace:
            base += f"/namespaces/{namespace}"
        return f"{base}/{plural}" + (f"/{name}" if name else "")

    def namespaced(self, api_version: str, kind: str) -> bool:
        found = self.resource(api_version, kind)
        return bool(found and found[1])


def connect(kubeconfig: str | None = None, context: str | None = None,
            run: Callable[[list, dict], tuple] | None = None) -> Client:
    """A client for the kubeconfig's context; run starts exec credential plugins."""
    return Client(load_settings(kubeconfig, context), run)
