# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container image references: parsing and the checks the roles' preflights and the publish module run.

Standard library only, so a preflight's filter pays no import of google-auth or requests (oci.py, google.py).
"""

from __future__ import annotations

import re
import typing as t

# ------------------------------------------------------------------------------------- references
# The grammar of github.com/distribution/reference: a host (with an optional port), path components of lowercase
# letters and digits separated by '.', '_', '__' or dashes, a tag, a digest. Only sha256 digests are accepted.
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_HOST_RE = re.compile(rf"^{_HOST}$")
# Artifact Registry's Docker hosts: LOCATION-docker.pkg.dev, LOCATION a region (europe-west1) or a multi-region
# (europe, us, asia).
_AR_HOST = re.compile(r"^([a-z]+(?:-[a-z]+[0-9]+)?)-docker\.pkg\.dev$")
_LOCATION = re.compile(r"^[a-z]+(?:-[a-z]+[0-9]+)?$")


class Reference(t.NamedTuple):
    registry: str  # host[:port]
    repository: str  # path inside the registry
    tag: str
    digest: str

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def check_digest(value: str) -> str | None:
    if not _DIGEST.match(value or ""):
        return f"'{value}' is not an image digest (sha256: followed by 64 lowercase hexadecimal digits)"
    return None


def check_tag(value: str) -> str | None:
    if not _TAG.match(value or ""):
        return (
            f"'{value}' is not an image tag (up to 128 letters, digits, '_', '.' and '-', not starting with '.' "
            "or '-')"
        )
    return None


def check_image_name(value: str) -> str | None:
    if not _PATH.match(value or "") or len(value) > 255:
        return (
            f"'{value}' is not an image name (lowercase letters and digits, separated by '.', '_', '-' or '/')"
        )
    return None


def check_location(value: str) -> str | None:
    if not _LOCATION.match(value or ""):
        return f"'{value}' is not an Artifact Registry location (a region such as europe-west1, or europe, us, asia)"
    return None


def parse_reference(value: str) -> Reference:
    """Split REGISTRY/PATH[:TAG][@sha256:HEX]; raise ValueError with a sentence saying what is wrong.

    The registry host is required: an image without one means docker.io to one tool and a search list to
    another, so the references this collection deploys always name it.
    """
    text = str(value or "").strip()
    if not text:
        raise ValueError("the image reference is empty")
    if text != str(value):
        raise ValueError(f"'{value}' has leading or trailing spaces")
    rest, _at, digest = text.partition("@")
    if _at:
        problem = check_digest(digest)
        if problem:
            raise ValueError(f"'{value}': {problem}")
    host, slash, path = rest.partition("/")
    if not slash or not ("." in host or ":" in host or host == "localhost"):
        raise ValueError(
            f"'{value}' names no registry: write the registry host first, for example "
            "europe-west1-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE:TAG or docker.io/library/IMAGE:TAG"
        )
    if not _HOST_RE.match(host):
        raise ValueError(f"'{value}': '{host}' is not a registry host name")
    tag = ""
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        problem = check_tag(tag)
        if problem:
            raise ValueError(f"'{value}': {problem}")
    if not _PATH.match(path):
        raise ValueError(
            f"'{value}': '{path}' is not an image path (lowercase letters and digits, separated by '.', '_', "
            "'-' or '/')"
        )
    if not tag and not digest:
        raise ValueError(f"'{value}' has neither a tag nor a digest; pin one (never an implicit latest)")
    return Reference(host, path, tag, digest)


def image_reference_problem(value: str) -> str:
    """'' when value is a deployable image reference, else the reason (for asserts that name the variable)."""
    try:
        parse_reference(value)
    except ValueError as exc:
        return str(exc)
    return ""


def artifact_registry_host(location: str) -> str:
    return f"{location}-docker.pkg.dev"


def artifact_registry_reference(
    location: str, project: str, repository: str, image: str, tag: str = "", digest: str = ""
) -> str:
    """LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE[:TAG][@DIGEST] (validated: ValueError names the part)."""
    # Imported here: google.py brings google-auth and requests, which the reference checks of a preflight never need.
    from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import check_project_id, check_repository_id

    problems = [
        ("location", check_location(location)),
        ("project", check_project_id(project)),
        ("repository", check_repository_id(repository)),
        ("image", check_image_name(image)),
        ("tag", check_tag(tag) if tag else None),
        ("digest", check_digest(digest) if digest else None),
    ]
    for part, problem in problems:
        if problem:
            raise ValueError(f"{part}: {problem}")
    if not tag and not digest:
        raise ValueError("tag: give a tag, a digest or both")
    text = f"{artifact_registry_host(location)}/{project}/{repository}/{image}"
    return text + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def artifact_registry_problem(value: str) -> str:
    """'' when value is an Artifact Registry Docker reference (LOCATION-docker.pkg.dev/PROJECT/REPO/IMAGE...)."""
    try:
        ref = parse_reference(value)
    except ValueError as exc:
        return str(exc)
    if not _AR_HOST.match(ref.registry):
        return (
            f"'{value}': '{ref.registry}' is not an Artifact Registry Docker host (LOCATION-docker.pkg.dev, for "
            "example europe-west1-docker.pkg.dev)"
        )
    if ref.repository.count("/") < 2:
        return f"'{value}': the path must be PROJECT/REPOSITORY/IMAGE"
    return ""
