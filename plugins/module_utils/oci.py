# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container images: local OCI archives and one client for the OCI distribution API (references: image_reference.py).

Artifact Registry speaks the OCI distribution (Docker Registry v2) API at https://LOCATION-docker.pkg.dev, with
the Google access token as the password of the user `oauth2accesstoken`. RegistryClient owns that conversation:
the auth challenge (Bearer token exchange or Basic), retries with backoff on 429/5xx, blob uploads and manifest
reads and writes. The access token is asked for only when the registry challenges, travels only in request
headers, and is never part of a message or a result.

module_utils raise exceptions (RegistryError, a GoogleError); only modules call fail_json.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import tarfile
import time
import typing as t
from urllib.parse import urlencode, urljoin, urlsplit

from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import GoogleError

try:
    import requests

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - exercised only without the library
    HAS_REQUESTS = False

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
INDEX_TYPES = frozenset(MANIFEST_TYPES[1::2])
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
TOKEN_USER = "oauth2accesstoken"


# ---------------------------------------------------------------------------------- OCI archives
class LocalImage(t.NamedTuple):
    digest: str  # of the manifest
    media_type: str
    manifest: bytes
    blobs: list[dict[str, t.Any]]  # descriptors of the config and the layers (digest, size, mediaType)
    ref_name: str


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob_path(digest: str) -> str:
    algorithm, _sep, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _member(archive: tarfile.TarFile, path: str) -> tarfile.TarInfo:
    for name in (path, f"./{path}"):
        try:
            return archive.getmember(name)
        except KeyError:
            continue
    raise KeyError(path)


def read_blob(archive: tarfile.TarFile, path: str) -> bytes:
    handle = archive.extractfile(_member(archive, path))
    if handle is None:
        raise KeyError(path)
    return handle.read()


def choose_manifest(index: dict, ref_name: str = "") -> dict:
    """The manifest descriptor of an OCI index: the one whose ref.name is ref_name, or the only one."""
    manifests = index.get("manifests") or []
    names = [m.get("annotations", {}).get("org.opencontainers.image.ref.name", "") for m in manifests]
    if ref_name:
        matching = [m for m, name in zip(manifests, names, strict=True) if name == ref_name]
        if len(matching) != 1:
            raise ValueError(f"the archive holds no single image tagged '{ref_name}' (it holds: {names})")
        return matching[0]
    if len(manifests) != 1:
        raise ValueError(f"the archive holds {len(manifests)} images ({names}); choose one with its tag")
    return manifests[0]


def read_oci_archive(path: str, ref_name: str = "") -> LocalImage:
    """Read the manifest of a tarred OCI image layout (as cluster/images.sh writes it) and check its digest."""
    try:
        with tarfile.open(path) as archive:
            index = json.loads(read_blob(archive, "index.json"))
            descriptor = choose_manifest(index, ref_name)
            digest = descriptor["digest"]
            manifest = read_blob(archive, _blob_path(digest))
    except (OSError, tarfile.TarError) as exc:
        raise RegistryError(f"cannot read the OCI archive {path}: {exc}") from exc
    except KeyError as exc:
        raise RegistryError(f"{path} is not an OCI image layout archive: {exc.args[0]} is missing") from exc
    except ValueError as exc:
        raise RegistryError(f"{path}: {exc}") from exc
    if sha256_digest(manifest) != digest:
        raise RegistryError(f"{path} is damaged: its manifest does not match the digest {digest}")
    body = json.loads(manifest)
    media_type = descriptor.get("mediaType") or body.get("mediaType") or MANIFEST_TYPES[0]
    if media_type in INDEX_TYPES:
        raise RegistryError(f"{path}: multi-platform images (an index) are not supported; archive one platform")
    blobs = [body["config"], *body.get("layers", [])]
    ref = descriptor.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
    return LocalImage(digest, media_type, manifest, blobs, ref)


# ---------------------------------------------------------------------------------------- client
class RegistryError(GoogleError):
    pass


def is_safe_url(url: str) -> bool:
    """https, or plain http to a loopback address (a test or local mirror): where credentials may be sent."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """('bearer'|'basic', params) from a WWW-Authenticate header."""
    scheme, _sep, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'([A-Za-z]+)="([^"]*)"', rest)}
    return scheme.lower(), params


class RegistryClient:
    """The OCI distribution API of one registry. Raises RegistryError; never calls fail_json."""

    def __init__(
        self,
        base_url: str,
        repository: str,
        token: t.Callable[[], str],
        *,
        timeout: float = 60.0,
        retries: int = 6,
        session: t.Any = None,
        sleep: t.Callable[[float], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.repository = repository
        self._token = token  # called once, on the first challenge
        self.timeout = timeout
        self.retries = retries
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = "mlplatform.mlflow"
        self.sleep = sleep or time.sleep
        self.retry_log: list[str] = []
        self._authenticated = False
        # Sent only with requests to the registry's own host (never set on the session: upload locations and
        # token realms may name other hosts).
        self._authorization = ""
        self._host = urlsplit(self.base_url).netloc

    def _url(self, path: str) -> str:
        return f"{self.base_url}/v2/{self.repository}/{path}"

    def _backoff(self, attempt: int) -> float:
        return min(30.0, 2.0**attempt) + random.random()

    def _authenticate(self, challenge: str) -> None:
        scheme, params = parse_challenge(challenge)
        password = self._token()
        basic = "Basic " + base64.b64encode(f"{TOKEN_USER}:{password}".encode()).decode()
        if scheme == "basic":
            self._authorization = basic
        elif scheme == "bearer" and params.get("realm"):
            query = {"scope": f"repository:{self.repository}:pull,push"}
            if params.get("service"):
                query["service"] = params["service"]
            realm = params["realm"]
            if urlsplit(realm).netloc != self._host or not is_safe_url(realm):
                raise RegistryError(
                    f"the registry {self._host} sends its clients to the token service "
                    f"{urlsplit(realm).netloc or realm} (another host, or plain http off loopback): the Google "
                    "credentials are not sent there")
            response = self.session.get(
                f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}",
                headers={"Authorization": basic},
                timeout=self.timeout,
            )
            if response.status_code != 200:
                raise RegistryError(
                    f"the registry's token service {urlsplit(realm).netloc} refused the Google credentials for "
                    f"{self.repository}: HTTP {response.status_code} (the caller needs roles/artifactregistry.writer "
                    "on the repository)"
                )
            body = response.json()
            self._authorization = "Bearer " + (body.get("token") or body.get("access_token") or "")
        else:
            raise RegistryError(f"the registry asks for an unsupported authentication: {scheme or 'none'}")
        self._authenticated = True

    def request(self, method: str, url: str, *, what: str, ok: t.Iterable[int] = (200,), **kwargs: t.Any) -> t.Any:
        """One request; authenticate on the first 401; retry 429/5xx and connection errors (not streamed bodies)."""
        ok = tuple(ok)
        attempt = 0
        streamed = hasattr(kwargs.get("data"), "read")
        while True:
            headers = dict(kwargs.pop("headers", None) or {})
            if self._authorization and urlsplit(url).netloc == self._host:
                headers["Authorization"] = self._authorization
            try:
                response = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if streamed or attempt >= self.retries:
                    host = urlsplit(url).netloc
                    raise RegistryError(f"{what}: no answer from {host} ({type(exc).__name__})") from exc
                delay = self._backoff(attempt)
                self.retry_log.append(f"{what}: {type(exc).__name__}, retried after {delay:.1f}s")
                self.sleep(delay)
                attempt += 1
                continue
            if response.status_code == 401 and not self._authenticated and not streamed:
                self._authenticate(response.headers.get("WWW-Authenticate", ""))
                continue
            if response.status_code in ok:
                return response
            if response.status_code in RETRYABLE_STATUSES and not streamed and attempt < self.retries:
                delay = self._backoff(attempt)
                self.retry_log.append(f"{what}: HTTP {response.status_code}, retried after {delay:.1f}s")
                self.sleep(delay)
                attempt += 1
                continue
            raise RegistryError(self._error_text(what, response), status=response.status_code)

    @staticmethod
    def _error_text(what: str, response: t.Any) -> str:
        text = f"{what} failed: HTTP {response.status_code}"
        try:
            errors = response.json().get("errors") or []
            text += ": " + "; ".join(f"{e.get('code', '')} {e.get('message', '')}".strip() for e in errors)
        except (ValueError, AttributeError):
            pass
        if response.status_code in (401, 403):
            text += " (check that the caller has roles/artifactregistry.writer on the repository)"
        return text

    # ---- the calls
    def ping(self) -> None:
        """GET /v2/, authenticating when challenged, so later uploads never stream into a 401."""
        self.request("GET", f"{self.base_url}/v2/", what=f"GET {self.base_url}/v2/")

    def manifest_digest(self, reference: str) -> str | None:
        """The digest the registry serves for a tag or digest; None when it has no such manifest."""
        response = self.request(
            "HEAD",
            self._url(f"manifests/{reference}"),
            what=f"HEAD {self.repository}:{reference}",
            ok=(200, 404),
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest", "")
        if not digest:  # a registry may omit the header: read the manifest and hash it
            body = self.request(
                "GET",
                self._url(f"manifests/{reference}"),
                what=f"GET {self.repository}:{reference}",
                headers={"Accept": ", ".join(MANIFEST_TYPES)},
            ).content
            digest = sha256_digest(body)
        return digest

    def has_blob(self, digest: str) -> bool:
        response = self.request("HEAD", self._url(f"blobs/{digest}"), what=f"HEAD blob {digest}", ok=(200, 404))
        return response.status_code == 200

    def upload_blob(self, digest: str, size: int, data: t.IO[bytes]) -> None:
        """POST an upload session, PATCH the bytes in one stream, PUT with the digest (what docker push does)."""
        what = f"upload of blob {digest} to {self.repository}"
        started = self.request("POST", self._url("blobs/uploads/"), what=what, ok=(202,))
        location = urljoin(self.base_url + "/", started.headers["Location"])
        patched = self.request(
            "PATCH",
            location,
            what=what,
            ok=(202,),
            data=data,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        location = urljoin(self.base_url + "/", patched.headers.get("Location") or location)
        separator = "&" if "?" in location else "?"
        self.request("PUT", f"{location}{separator}{urlencode({'digest': digest})}", what=what, ok=(201,))

    def put_manifest(self, tag: str, media_type: str, manifest: bytes) -> str:
        response = self.request(
            "PUT",
            self._url(f"manifests/{tag}"),
            what=f"PUT manifest {self.repository}:{tag}",
            ok=(201,),
            data=manifest,
            headers={"Content-Type": media_type},
        )
        return response.headers.get("Docker-Content-Digest", "")

    def push(self, archive_path: str, image: LocalImage, tag: str) -> dict[str, int]:
        """Upload the blobs the registry lacks, then the manifest under tag. Returns blob counts and bytes sent."""
        sent = {"blobs_uploaded": 0, "blobs_present": 0, "bytes_uploaded": 0}
        with tarfile.open(archive_path) as archive:
            for blob in image.blobs:
                if self.has_blob(blob["digest"]):
                    sent["blobs_present"] += 1
                    continue
                handle = archive.extractfile(_member(archive, _blob_path(blob["digest"])))
                if handle is None:
                    raise RegistryError(f"{archive_path}: blob {blob['digest']} is missing")
                self.upload_blob(blob["digest"], int(blob["size"]), handle)
                sent["blobs_uploaded"] += 1
                sent["bytes_uploaded"] += int(blob["size"])
        digest = self.put_manifest(tag, image.media_type, image.manifest)
        if digest and digest != image.digest:
            raise RegistryError(
                f"the registry stored the manifest of {self.repository}:{tag} as {digest}, not {image.digest}"
            )
        return sent
