# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One client for Google's REST control-plane APIs, used by every gcp_* module of mlplatform.mlflow.

It owns: credentials (application default, service-account key, access token, impersonation through
iamcredentials generateAccessToken), endpoint overrides (tests, Private Service Connect), request timeouts,
retries with capped exponential backoff, long-running-operation waits, IAM read-modify-write, and error
messages that name the resource, the HTTP status, Google's reason and, for 403, the missing permission.

module_utils raise exceptions (GoogleError and subclasses); only modules call fail_json, through GoogleModule.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import random
import re
import time
import typing as t
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

try:
    import google.auth
    import google.auth.exceptions
    import google.auth.transport.requests
    import requests
    from google.auth import impersonated_credentials
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2 import credentials as oauth2_credentials
    from google.oauth2 import service_account

    HAS_GOOGLE_AUTH = True
    GOOGLE_AUTH_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only without the libraries
    HAS_GOOGLE_AUTH = False
    GOOGLE_AUTH_IMPORT_ERROR = exc

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

# Service name -> root URL. Paths handed to GoogleClient are relative to these roots and carry the version
# (for example "v1/projects/p/instances" for sqladmin, "storage/v1/b/x" for storage).
API_ROOTS: dict[str, str] = {
    "artifactregistry": "https://artifactregistry.googleapis.com",
    "cloudresourcemanager": "https://cloudresourcemanager.googleapis.com",
    "iam": "https://iam.googleapis.com",
    "iamcredentials": "https://iamcredentials.googleapis.com",
    "secretmanager": "https://secretmanager.googleapis.com",
    "serviceusage": "https://serviceusage.googleapis.com",
    "sqladmin": "https://sqladmin.googleapis.com",
    "storage": "https://storage.googleapis.com",
}

AUTH_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "project": {"type": "str", "fallback": (env_fallback, ["GCP_PROJECT"])},
    "auth_kind": {
        "type": "str",
        "default": "application",
        "choices": ["application", "serviceaccount", "accesstoken"],
        "fallback": (env_fallback, ["GCP_AUTH_KIND"]),
    },
    "service_account_file": {"type": "path", "fallback": (env_fallback, ["GCP_SERVICE_ACCOUNT_FILE"])},
    "service_account_contents": {
        "type": "jsonarg",
        "no_log": True,
        "fallback": (env_fallback, ["GCP_SERVICE_ACCOUNT_CONTENTS"]),
    },
    "access_token": {"type": "str", "no_log": True, "fallback": (env_fallback, ["GCP_ACCESS_TOKEN"])},
    "impersonate_service_account": {
        "type": "str",
        "fallback": (env_fallback, ["GCP_IMPERSONATE_SERVICE_ACCOUNT"]),
    },
    "scopes": {
        "type": "list",
        "elements": "str",
        "default": [CLOUD_PLATFORM_SCOPE],
        "fallback": (env_fallback, ["GCP_SCOPES"]),
    },
    "endpoint_overrides": {
        "type": "dict",
        "default": {},
        "fallback": (env_fallback, ["GCP_ENDPOINT_OVERRIDES"]),
    },
    "request_timeout": {"type": "float", "default": 60.0},
    "operation_timeout": {"type": "int", "default": 1800},
    "retries": {"type": "int", "default": 6},
}

AUTH_MUTUALLY_EXCLUSIVE = [["service_account_file", "service_account_contents", "access_token"]]
AUTH_REQUIRED_IF = [
    ["auth_kind", "serviceaccount", ["service_account_file", "service_account_contents"], True],
    ["auth_kind", "accesstoken", ["access_token"]],
]

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


# --------------------------------------------------------------------------------------------- errors
class GoogleError(Exception):
    """Base of every error this module_utils raises; GoogleModule turns it into one fail_json."""

    def __init__(self, message: str, **details: t.Any) -> None:
        super().__init__(message)
        self.details = details


class GoogleAuthError(GoogleError):
    pass


class OperationError(GoogleError):
    pass


class GoogleApiError(GoogleError):
    """An HTTP error answered by a Google API, parsed from Google's error envelope."""

    def __init__(
        self,
        status: int,
        *,
        method: str,
        url: str,
        resource: str,
        message: str = "",
        status_name: str = "",
        reason: str = "",
        permission: str = "",
    ) -> None:
        self.status = status
        self.method = method
        self.url = url
        self.resource = resource
        self.google_message = message
        self.status_name = status_name
        self.reason = reason
        self.permission = permission
        super().__init__(self._render(), status=status, reason=reason, permission=permission, resource=resource)

    def _render(self) -> str:
        why = "/".join(x for x in (self.status_name, self.reason) if x)
        text = f"{self.method} {self.resource} failed: HTTP {self.status}"
        if why:
            text += f" {why}"
        if self.google_message:
            text += f": {self.google_message}"
        if self.status == 403:
            if self.permission:
                text += (
                    f" (missing permission {self.permission} on {self.resource}; grant the caller a role that"
                    " contains it, or check that the resource exists and the name is right)"
                )
            else:
                text += f" (permission denied on {self.resource}; check the caller's roles and the resource name)"
        return text

    @classmethod
    def from_response(cls, status: int, text: str, *, method: str, url: str, resource: str) -> GoogleApiError:
        message, status_name, reason, permission = parse_error_body(text)
        return cls(
            status,
            method=method,
            url=url,
            resource=resource,
            message=message,
            status_name=status_name,
            reason=reason,
            permission=permission,
        )

    def mentions(self, *needles: str) -> bool:
        haystack = f"{self.google_message} {self.reason} {self.status_name}".lower()
        return any(n.lower() in haystack for n in needles)


_PERMISSION_PATTERNS = (
    re.compile(r"[Pp]ermission ['\"]?([a-z][a-zA-Z0-9]*\.[a-zA-Z0-9.]+)['\"]? denied"),
    re.compile(r"does not have ([a-z][a-zA-Z0-9]*\.[a-zA-Z0-9.]+) access"),
    re.compile(r"requires? (?:the )?['\"]?([a-z][a-zA-Z0-9]*\.[a-zA-Z0-9]+\.[a-zA-Z0-9.]+)['\"]? permission"),
)


def parse_error_body(text: str) -> tuple[str, str, str, str]:
    """Return (message, status_name, reason, permission) from Google's error envelope (any flavour)."""
    try:
        payload = json.loads(text) if text else {}
    except ValueError:
        return (text.strip()[:500], "", "", "")
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, str):  # OAuth token endpoint: {"error": "invalid_grant", "error_description": "..."}
        return (payload.get("error_description", ""), err, "", "")
    if not isinstance(err, dict):
        return (text.strip()[:500], "", "", "")
    message = str(err.get("message", ""))
    status_name = str(err.get("status", ""))
    reason = ""
    permission = ""
    for item in err.get("errors") or []:
        if isinstance(item, dict) and item.get("reason"):
            reason = str(item["reason"])
            break
    for detail in err.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if detail.get("reason") and not reason:
            reason = str(detail["reason"])
        metadata = detail.get("metadata") or {}
        if isinstance(metadata, dict) and metadata.get("permission"):
            permission = str(metadata["permission"])
    if not permission:
        for pattern in _PERMISSION_PATTERNS:
            match = pattern.search(message)
            if match:
                permission = match.group(1)
                break
    return (message, status_name, reason, permission)


# ---------------------------------------------------------------------------------------- validation
# Pure functions: each returns None when the value is valid, else a sentence saying what is wrong.
_PROJECT_ID = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
_ACCOUNT_ID = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_WI_MEMBER = re.compile(
    r"^serviceAccount:([a-z][-a-z0-9]{4,28}[a-z0-9])\.svc\.id\.goog\[([a-z0-9.-]+)/([a-z0-9.-]+)\]$"
)
_ROLE = re.compile(
    r"^(roles/[A-Za-z0-9_.]+|projects/[a-z][-a-z0-9]{4,28}[a-z0-9]/roles/[A-Za-z0-9_.]+"
    r"|organizations/[0-9]+/roles/[A-Za-z0-9_.]+)$"
)
_SQL_INSTANCE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_REPOSITORY_ID = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)*\.googleapis\.com$")


def check_project_id(value: str) -> str | None:
    if not _PROJECT_ID.match(value or ""):
        return (
            f"'{value}' is not a valid project ID (6-30 characters: lowercase letters, digits and hyphens, "
            "starting with a letter, not ending with a hyphen)"
        )
    return None


def check_account_id(value: str) -> str | None:
    if not (6 <= len(value or "") <= 30) or not _ACCOUNT_ID.match(value):
        return (
            f"'{value}' is not a valid service account ID (6-30 characters: lowercase letters, digits and "
            "hyphens, starting with a letter, not ending with a hyphen)"
        )
    return None


def check_bucket_name(name: str) -> str | None:
    """Cloud Storage bucket naming rules (https://cloud.google.com/storage/docs/buckets#naming)."""
    name = name or ""
    if not re.match(r"^[a-z0-9][a-z0-9._-]*[a-z0-9]$", name):
        return (
            f"'{name}' is not a valid bucket name: use lowercase letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    limit = 222 if "." in name else 63
    if not 3 <= len(name) <= limit:
        return f"'{name}' is not a valid bucket name: it must be 3 to {limit} characters long"
    if any(len(part) > 63 for part in name.split(".")):
        return f"'{name}' is not a valid bucket name: each dot-separated part must be at most 63 characters"
    if name.startswith("goog") or "google" in name or "g00gle" in name:
        return f"'{name}' is not a valid bucket name: it must not start with 'goog' or contain 'google'"
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return None
    return f"'{name}' is not a valid bucket name: it must not be an IP address"


def check_sql_instance_name(name: str) -> str | None:
    if not (1 <= len(name or "") <= 98) or not _SQL_INSTANCE.match(name):
        return (
            f"'{name}' is not a valid Cloud SQL instance name (lowercase letters, digits and hyphens, "
            "starting with a letter, not ending with a hyphen, at most 98 characters)"
        )
    return None


def check_repository_id(value: str) -> str | None:
    if not (1 <= len(value or "") <= 63) or not _REPOSITORY_ID.match(value):
        return (
            f"'{value}' is not a valid Artifact Registry repository ID (lowercase letters, digits and hyphens, "
            "starting with a letter, at most 63 characters)"
        )
    return None


def check_secret_id(value: str) -> str | None:
    if not _SECRET_ID.match(value or ""):
        return f"'{value}' is not a valid secret ID (1-255 characters: letters, digits, '-' and '_')"
    return None


def check_role(role: str) -> str | None:
    if not _ROLE.match(role or ""):
        return (
            f"'{role}' is not an IAM role name; use roles/NAME, projects/PROJECT/roles/NAME or "
            "organizations/ID/roles/NAME (for example roles/storage.objectViewer)"
        )
    return None


def check_member(member: str) -> str | None:
    """IAM principal format, including Workload Identity principals for GKE."""
    member = member or ""
    if member in ("allUsers", "allAuthenticatedUsers"):
        return None
    if member.startswith(("principal://", "principalSet://")):
        return None
    kind, _sep, rest = member.partition(":")
    if kind == "serviceAccount" and rest.endswith("]"):
        if _WI_MEMBER.match(member):
            return None
        return (
            f"'{member}' is not a valid Workload Identity member; use serviceAccount:PROJECT.svc.id.goog[NAMESPACE/KSA]"
        )
    if kind in ("user", "serviceAccount", "group") and _EMAIL.match(rest):
        return None
    if kind == "domain" and re.match(r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$", rest):
        return None
    if kind in ("projectOwner", "projectEditor", "projectViewer") and rest:
        return None
    return (
        f"'{member}' is not a valid IAM member; use user:EMAIL, serviceAccount:EMAIL, group:EMAIL, domain:DOMAIN, "
        "serviceAccount:PROJECT.svc.id.goog[NAMESPACE/KSA], principal://..., allUsers or allAuthenticatedUsers"
    )


def check_labels(labels: t.Mapping[str, t.Any] | None) -> str | None:
    for key, value in (labels or {}).items():
        if not _LABEL_KEY.match(str(key)):
            return (
                f"label key '{key}' is invalid (lowercase letters, digits, '_' and '-', starting with a letter, "
                "at most 63 characters)"
            )
        if not _LABEL_VALUE.match(str(value)):
            return f"label '{key}' has invalid value '{value}' (lowercase letters, digits, '_' and '-', at most 63)"
    return None


def check_service_name(name: str) -> str | None:
    if not _SERVICE_NAME.match(name or ""):
        return f"'{name}' is not a Google API service name (for example sqladmin.googleapis.com)"
    return None


def service_account_email(account: str, project: str | None) -> str:
    """Accept an account ID or a full e-mail; return the e-mail."""
    if "@" in account:
        return account
    if not project:
        raise GoogleError(f"service account '{account}' is not an e-mail, so the 'project' option is required")
    return f"{account}@{project}.iam.gserviceaccount.com"


# ------------------------------------------------------------------------------------- pure helpers
def desired_changes(current: t.Any, desired: t.Any) -> t.Any:
    """Return the part of `desired` that differs from `current` (None when nothing differs).

    Dicts are compared key by key, recursively, and only for keys present in `desired`, so fields the user
    did not set are never touched. Lists and scalars are compared as a whole.
    """
    if isinstance(desired, dict) and isinstance(current, dict):
        out: dict[str, t.Any] = {}
        for key, value in desired.items():
            sub = desired_changes(current.get(key), value)
            if sub is not None:
                out[key] = value if not isinstance(value, dict) or key not in current else sub
        return out or None
    return None if _equal(current, desired) else desired


def _equal(a: t.Any, b: t.Any) -> bool:
    # int64 fields travel as strings ("20"); treat "20" and 20 as the same value.
    if isinstance(a, (int, str)) and isinstance(b, (int, str)) and not isinstance(a, bool) and not isinstance(b, bool):
        return str(a) == str(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def deep_merge(base: dict[str, t.Any], patch: t.Mapping[str, t.Any] | None) -> dict[str, t.Any]:
    """Return base updated recursively with patch (dicts merged, everything else replaced)."""
    out = copy.deepcopy(base)
    for key, value in (patch or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_labels(current: t.Mapping[str, str] | None, desired: t.Mapping[str, t.Any] | None, purge: bool) -> dict:
    """The label map the resource should end with (purge=False keeps labels set by others)."""
    wanted = {str(k): str(v) for k, v in (desired or {}).items()}
    if purge:
        return wanted
    out = dict(current or {})
    out.update(wanted)
    return out


def merge_list(current: list | None, desired: list | None, purge: bool) -> list:
    """The list a set-like option should end with: purge=False keeps current items and appends missing ones."""
    desired = list(desired or [])
    if purge:
        return desired
    out = list(current or [])
    out.extend(item for item in desired if not any(_equal(item, have) for have in out))
    return out


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), as Secret Manager's dataCrc32c expects."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _bit in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------------------------------- IAM logic
def normalize_member(member: str) -> str:
    """Lower-case the e-mail part, as IAM does, except for principal:// identifiers and allUsers."""
    if member.startswith(("principal://", "principalSet://", "allUsers", "allAuthenticatedUsers")):
        return member
    kind, sep, rest = member.partition(":")
    if sep and kind in ("user", "serviceAccount", "group", "domain"):
        return f"{kind}:{rest.lower()}"
    return member


def _condition_key(condition: t.Mapping[str, t.Any] | None) -> tuple[str, str, str] | None:
    if not condition:
        return None
    return (condition.get("title", ""), condition.get("description", ""), condition.get("expression", ""))


def binding_members(policy: t.Mapping[str, t.Any], role: str, condition: t.Mapping | None = None) -> list[str]:
    key = _condition_key(condition)
    members: list[str] = []
    for binding in policy.get("bindings") or []:
        if binding.get("role") == role and _condition_key(binding.get("condition")) == key:
            members.extend(binding.get("members") or [])
    return sorted(normalize_member(m) for m in members)


def policy_with_member(
    policy: t.Mapping[str, t.Any], role: str, member: str, *, present: bool, condition: t.Mapping | None = None
) -> tuple[dict[str, t.Any], bool]:
    """Return (new_policy, changed) with `member` added to or removed from the (role, condition) binding.

    Everything else (other bindings, convenience members such as projectOwner:, auditConfigs, etag) is
    carried over untouched. Empty bindings are dropped; the version is 3 when any binding has a condition.
    """
    new = copy.deepcopy(dict(policy))
    bindings = new.get("bindings") or []
    key = _condition_key(condition)
    norm = normalize_member(member)
    matching = [b for b in bindings if b.get("role") == role and _condition_key(b.get("condition")) == key]
    has = any(normalize_member(m) == norm for b in matching for m in b.get("members") or [])
    changed = present != has
    if present and not has:
        if matching:
            matching[0]["members"] = [*(matching[0].get("members") or []), member]
        else:
            binding: dict[str, t.Any] = {"role": role, "members": [member]}
            if condition:
                binding["condition"] = dict(condition)
            bindings.append(binding)
    elif not present and has:
        for binding in matching:
            binding["members"] = [m for m in binding.get("members") or [] if normalize_member(m) != norm]
    new["bindings"] = [b for b in bindings if b.get("members")]
    if any(b.get("condition") for b in new["bindings"]):
        new["version"] = 3
    elif not new.get("version"):
        new["version"] = 1
    return new, changed


class IamTarget(t.NamedTuple):
    """Where a resource's IAM policy lives and how its getIamPolicy/setIamPolicy calls look."""

    api: str
    get_method: str
    get_path: str
    get_params: dict[str, t.Any] | None
    get_body: dict[str, t.Any] | None
    set_method: str
    set_path: str
    wraps_policy: bool  # setIamPolicy body is {"policy": ...} (True) or the policy itself (storage, False)
    describe: str


def iam_target(kind: str, resource: str, project: str | None = None) -> IamTarget:
    """Build the IamTarget for a project, bucket, service account or secret."""
    if kind == "project":
        path = f"v1/projects/{quote(resource, safe='')}"
        return IamTarget(
            "cloudresourcemanager",
            "POST",
            f"{path}:getIamPolicy",
            None,
            {"options": {"requestedPolicyVersion": 3}},
            "POST",
            f"{path}:setIamPolicy",
            True,
            f"project {resource}",
        )
    if kind == "bucket":
        path = f"storage/v1/b/{quote(resource, safe='')}/iam"
        return IamTarget(
            "storage",
            "GET",
            path,
            {"optionsRequestedPolicyVersion": 3},
            None,
            "PUT",
            path,
            False,
            f"bucket {resource}",
        )
    if kind == "service_account":
        email = service_account_email(resource, project)
        sa_project = project or email.split("@", 1)[1].split(".", 1)[0]
        path = f"v1/projects/{quote(sa_project, safe='')}/serviceAccounts/{quote(email, safe='@')}"
        return IamTarget(
            "iam",
            "POST",
            f"{path}:getIamPolicy",
            {"options.requestedPolicyVersion": 3},
            None,
            "POST",
            f"{path}:setIamPolicy",
            True,
            f"service account {email}",
        )
    if kind == "secret":
        if not project:
            raise GoogleError(f"secret '{resource}' needs the 'project' option")
        path = f"v1/projects/{quote(project, safe='')}/secrets/{quote(resource, safe='')}"
        return IamTarget(
            "secretmanager",
            "GET",
            f"{path}:getIamPolicy",
            {"options.requestedPolicyVersion": 3},
            None,
            "POST",
            f"{path}:setIamPolicy",
            True,
            f"secret projects/{project}/secrets/{resource}",
        )
    raise GoogleError(f"unknown IAM resource type '{kind}'")


def is_iam_conflict(err: GoogleApiError) -> bool:
    return err.status in (409, 412)


def adopt_on_conflict(err: GoogleApiError, reread: t.Callable[[], t.Any]) -> t.Any:
    """A create answered 409: the resource exists (a concurrent creator, or a read that lagged). Return it.

    Any other error, or a 409 for something that cannot be read back (a name still reserved after a delete,
    a name owned by another project), is raised.
    """
    if err.status != 409:
        raise err
    current = reread()
    if current is None:
        raise GoogleError(f"{err} (the create conflicts, but the resource cannot be read back)", **err.details)
    return current


def is_sql_busy(err: GoogleApiError) -> bool:
    """Cloud SQL answers 409 operationInProgress while another operation runs on the instance: retry it."""
    return err.status == 409 and err.reason == "operationInProgress"


def is_member_not_yet_visible(err: GoogleApiError) -> bool:
    """A just-created service account that IAM does not see yet (eventual consistency)."""
    return err.status in (400, 404) and err.mentions("does not exist", "not found") and not err.mentions("pool")


# ------------------------------------------------------------------------------------------- client
class GoogleClient:
    """HTTP client for Google's REST APIs. Raises GoogleError subclasses; never calls fail_json."""

    def __init__(
        self,
        options: t.Mapping[str, t.Any],
        *,
        session: t.Any = None,
        sleep: t.Callable[[float], None] | None = None,
        clock: t.Callable[[], float] | None = None,
        jitter: t.Callable[[], float] | None = None,
        initial_delay: float = 1.0,
        max_delay: float = 30.0,
    ) -> None:
        self.options = dict(options)
        self._session = session
        self.sleep = sleep or time.sleep
        self.clock = clock or time.monotonic
        self.jitter = jitter or random.random
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        opts = self.options
        self.timeout = float(opts["request_timeout"] if opts.get("request_timeout") is not None else 60.0)
        self.retries = int(opts["retries"] if opts.get("retries") is not None else 6)
        self.operation_timeout = int(opts["operation_timeout"] if opts.get("operation_timeout") is not None else 1800)
        self.operations: list[dict[str, t.Any]] = []
        self.retry_log: list[str] = []

    # ---- endpoints and credentials
    def base_url(self, api: str) -> str:
        overrides = self.options.get("endpoint_overrides") or {}
        template = overrides.get(api) or overrides.get("all")
        if template:
            return str(template).replace("{api}", api).rstrip("/")
        return API_ROOTS[api]

    def url(self, api: str, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url(api)}/{path.lstrip('/')}"

    def credentials(self) -> t.Any:
        if not HAS_GOOGLE_AUTH:
            raise GoogleAuthError(missing_required_lib("google-auth and requests"))
        opts = self.options
        scopes = opts.get("scopes") or [CLOUD_PLATFORM_SCOPE]
        kind = opts.get("auth_kind") or "application"
        try:
            if kind == "accesstoken":
                creds = oauth2_credentials.Credentials(token=opts["access_token"])
            elif kind == "serviceaccount":
                if opts.get("service_account_contents"):
                    info = opts["service_account_contents"]
                    info = json.loads(info) if isinstance(info, str) else info
                    creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
                else:
                    creds = service_account.Credentials.from_service_account_file(
                        opts["service_account_file"], scopes=scopes
                    )
            else:
                creds, _project = google.auth.default(scopes=scopes)
        except (ValueError, KeyError, OSError, google.auth.exceptions.GoogleAuthError) as exc:
            raise GoogleAuthError(f"cannot load Google credentials (auth_kind={kind}): {exc}") from exc
        target = opts.get("impersonate_service_account")
        if target:
            endpoint = self.url(
                "iamcredentials", f"v1/projects/-/serviceAccounts/{quote(target, safe='@')}:generateAccessToken"
            )
            creds = impersonated_credentials.Credentials(
                source_credentials=creds,
                target_principal=target,
                target_scopes=scopes,
                lifetime=3600,
                iam_endpoint_override=endpoint,
            )
        return creds

    @property
    def session(self) -> t.Any:
        if self._session is None:
            self._session = AuthorizedSession(self.credentials())
        return self._session

    def access_token(self) -> str:
        """A current OAuth2 access token of the configured credentials (for APIs that take it as a password, such
        as Artifact Registry's Docker endpoint). Never log or return it."""
        creds = self.credentials()
        if not creds.valid:
            try:
                creds.refresh(google.auth.transport.requests.Request())
            except google.auth.exceptions.RefreshError as exc:
                raise GoogleAuthError(f"cannot get an access token: {exc}") from exc
        return str(creds.token)

    # ---- requests
    def _backoff(self, attempt: int) -> float:
        delay = min(self.max_delay, self.initial_delay * (2**attempt))
        return delay + self.jitter() * self.initial_delay

    def request(
        self,
        method: str,
        api: str,
        path: str,
        *,
        resource: str,
        params: t.Mapping[str, t.Any] | None = None,
        body: t.Any = None,
        retry_if: t.Callable[[GoogleApiError], bool] | None = None,
    ) -> t.Any:
        """Send one request; retry 429/5xx and connection errors (and whatever retry_if accepts)."""
        url = self.url(api, path)
        attempt = 0
        while True:
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=body,
                    timeout=self.timeout,
                    headers={"User-Agent": "mlplatform.mlflow"},
                )
            except google.auth.exceptions.RefreshError as exc:
                raise GoogleAuthError(f"cannot get an access token for {method} {resource}: {exc}") from exc
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if attempt >= self.retries:
                    raise GoogleError(
                        f"{method} {resource} failed: no answer from {url} after {attempt + 1} attempts ({exc})"
                    ) from exc
                delay = self._backoff(attempt)
                self.retry_log.append(f"{method} {resource}: {type(exc).__name__}, retried after {delay:.1f}s")
                self.sleep(delay)
                attempt += 1
                continue
            if response.status_code < 400:
                if not response.content:
                    return {}
                try:
                    return response.json()
                except ValueError as exc:
                    raise GoogleError(f"{method} {resource}: the answer from {url} is not JSON") from exc
            error = GoogleApiError.from_response(
                response.status_code, response.text, method=method, url=url, resource=resource
            )
            retryable = error.status in RETRYABLE_STATUSES or bool(retry_if and retry_if(error))
            if not retryable or attempt >= self.retries:
                raise error
            delay = self._backoff(attempt)
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit():
                delay = max(delay, min(float(retry_after), self.max_delay))
            self.retry_log.append(f"{method} {resource}: HTTP {error.status}, retried after {delay:.1f}s")
            self.sleep(delay)
            attempt += 1

    def get(self, api: str, path: str, *, resource: str, params: t.Mapping[str, t.Any] | None = None) -> t.Any:
        """GET that returns None for 404 (the resource does not exist)."""
        try:
            return self.request("GET", api, path, resource=resource, params=params)
        except GoogleApiError as err:
            if err.status == 404:
                return None
            raise

    # ---- long-running operations
    def poll(
        self, describe: str, kind: str, name: str, fetch: t.Callable[[], dict], done: t.Callable[[dict], bool]
    ) -> dict:
        start = self.clock()
        record: dict[str, t.Any] = {"name": name, "kind": kind, "resource": describe, "polls": 0, "status": "RUNNING"}
        self.operations.append(record)
        delay = self.initial_delay
        while True:
            op = fetch()
            record["polls"] += 1
            record["elapsed_seconds"] = round(self.clock() - start, 1)
            if done(op):
                record["status"] = "DONE"
                return op
            if self.clock() - start >= self.operation_timeout:
                record["status"] = "TIMEOUT"
                raise OperationError(
                    f"operation {name} on {describe} still not done after {self.operation_timeout}s "
                    f"({record['polls']} polls). It goes on at Google; rerun the play later, or raise "
                    "operation_timeout."
                )
            self.sleep(delay)
            delay = min(delay * 2, 15.0)

    def wait_operation(self, api: str, op: dict, *, resource: str) -> dict:
        """Wait for a google.longrunning.Operation ({name, done, error, response}); return its response."""
        name = op.get("name", "")
        if not op.get("done"):
            op = self.poll(
                resource,
                f"{api} operation",
                name,
                lambda: self.request("GET", api, f"v1/{name}", resource=f"operation {name}"),
                lambda o: bool(o.get("done")),
            )
        else:
            self.operations.append(
                {"name": name, "kind": f"{api} operation", "resource": resource, "polls": 0, "status": "DONE"}
            )
        if op.get("error"):
            err = op["error"]
            self.operations[-1]["status"] = "FAILED"
            raise OperationError(
                f"operation {name} on {resource} failed: code {err.get('code')}: {err.get('message', '')}",
                operation=op,
            )
        return op.get("response") or {}

    def wait_sql_operation(self, project: str, op: dict, *, resource: str) -> dict:
        """Wait for a Cloud SQL sql#operation; DONE with error.errors is a failure."""
        name = op.get("name", "")
        path = f"v1/projects/{quote(project, safe='')}/operations/{quote(name, safe='')}"
        if op.get("status") != "DONE":
            op = self.poll(
                resource,
                "sqladmin operation",
                name,
                lambda: self.request("GET", "sqladmin", path, resource=f"operation {name}"),
                lambda o: o.get("status") == "DONE",
            )
        else:
            self.operations.append(
                {"name": name, "kind": "sqladmin operation", "resource": resource, "polls": 0, "status": "DONE"}
            )
        errors = (op.get("error") or {}).get("errors") or []
        if errors:
            self.operations[-1]["status"] = "FAILED"
            text = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
            raise OperationError(f"operation {name} ({op.get('operationType', '')}) on {resource} failed: {text}")
        return op

    # ---- IAM read-modify-write
    def get_iam_policy(self, target: IamTarget) -> dict:
        return self.request(
            target.get_method,
            target.api,
            target.get_path,
            resource=target.describe,
            params=target.get_params,
            body=target.get_body,
        )

    def set_iam_policy(self, target: IamTarget, policy: dict) -> dict:
        policy = (
            {k: v for k, v in policy.items() if k not in ("kind", "resourceId")} if target.api == "storage" else policy
        )
        if target.api == "cloudresourcemanager":
            body: dict[str, t.Any] = {"policy": policy, "updateMask": "bindings,etag"}
        elif target.wraps_policy:
            body = {"policy": policy}
        else:
            body = policy
        return self.request(target.set_method, target.api, target.set_path, resource=target.describe, body=body)

    def iam_member(
        self,
        target: IamTarget,
        role: str,
        member: str,
        *,
        present: bool,
        condition: t.Mapping | None = None,
        check_mode: bool = False,
        consistency_timeout: float = 90.0,
        max_conflicts: int = 10,
    ) -> dict[str, t.Any]:
        """Read-modify-write one (role, member) binding with the policy etag.

        Retries 409/412 etag conflicts (re-reading the policy each time) and, for a bounded time, the
        400/404 that IAM answers while a just-created service account (the member or the resource) is not
        visible yet. Returns {changed, before, after} where before/after are the binding's members.
        """
        start = self.clock()
        conflicts = 0
        attempt = 0
        while True:
            try:
                try:
                    policy = self.get_iam_policy(target)
                except GoogleApiError as err:
                    if check_mode and err.status == 404:  # the resource itself is still to be created
                        after = [normalize_member(member)] if present else []
                        return {"changed": present, "before": [], "after": after}
                    raise
                before = binding_members(policy, role, condition)
                new, changed = policy_with_member(policy, role, member, present=present, condition=condition)
                after = binding_members(new, role, condition)
                if not changed or check_mode:
                    return {"changed": changed, "before": before, "after": after}
                self.set_iam_policy(target, new)
                return {"changed": True, "before": before, "after": after}
            except GoogleApiError as err:
                if is_iam_conflict(err) and conflicts < max_conflicts:
                    conflicts += 1
                    delay = self._backoff(min(conflicts - 1, 4))
                    self.retry_log.append(
                        f"{target.describe}: etag conflict (HTTP {err.status}), re-read after {delay:.1f}s"
                    )
                    self.sleep(delay)
                    continue
                not_visible = is_member_not_yet_visible(err) or (target.api == "iam" and err.status == 404)
                if not_visible and self.clock() - start < consistency_timeout:
                    delay = self._backoff(min(attempt, 3))
                    attempt += 1
                    self.retry_log.append(
                        f"{target.describe}: not visible yet (HTTP {err.status}), retried after {delay:.1f}s"
                    )
                    self.sleep(delay)
                    continue
                raise


# ------------------------------------------------------------------------------------ module wrapper
class GoogleModule:
    """Holds the AnsibleModule: merges the shared auth options with the module's own and fails cleanly."""

    def __init__(
        self,
        argument_spec: dict[str, t.Any],
        *,
        mutually_exclusive: list | None = None,
        required_if: list | None = None,
        required_one_of: list | None = None,
        required_together: list | None = None,
        client_factory: t.Callable[[t.Mapping[str, t.Any]], GoogleClient] | None = None,
    ) -> None:
        spec = copy.deepcopy(AUTH_ARGUMENT_SPEC)
        spec.update(copy.deepcopy(argument_spec))
        self.module = AnsibleModule(
            argument_spec=spec,
            supports_check_mode=True,
            mutually_exclusive=copy.deepcopy(AUTH_MUTUALLY_EXCLUSIVE) + (mutually_exclusive or []),
            required_if=copy.deepcopy(AUTH_REQUIRED_IF) + (required_if or []),
            required_one_of=required_one_of or [],
            required_together=required_together or [],
        )
        if not HAS_GOOGLE_AUTH:
            self.module.fail_json(msg=missing_required_lib("google-auth"), exception=str(GOOGLE_AUTH_IMPORT_ERROR))
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self._client_factory = client_factory or GoogleClient
        self._client: GoogleClient | None = None

    @property
    def client(self) -> GoogleClient:
        if self._client is None:
            self._client = self._client_factory(self.params)
        return self._client

    def fail(self, msg: str, **kwargs: t.Any) -> t.NoReturn:
        self.module.fail_json(msg=msg, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    def validate(self, problems: t.Iterable[tuple[str, str | None]]) -> None:
        """Fail naming the option for the first (option, problem) pair whose problem is not None."""
        for option, problem in problems:
            if problem:
                self.fail(f"option {option}: {problem}")

    def require_project(self) -> str:
        project = self.params.get("project")
        if not project:
            self.fail("option project is required for this module (or set GCP_PROJECT)")
        problem = check_project_id(project)
        if problem:
            self.fail(f"option project: {problem}")
        return project

    def _extras(self) -> dict[str, t.Any]:
        extra: dict[str, t.Any] = {}
        if self._client is not None:
            if self._client.operations:
                extra["operations"] = self._client.operations
            if self._client.retry_log:
                extra["retries"] = self._client.retry_log
        return extra

    def run(self, func: t.Callable[[GoogleModule], dict[str, t.Any]]) -> t.NoReturn:
        """Run the module body; exit with its result or fail with a readable message."""
        try:
            result = func(self)
        except GoogleError as err:  # GoogleApiError details carry status, reason, permission and resource
            self.fail(str(err), **err.details, **self._extras())
        diff = result.pop("diff", None)
        if diff is not None and self.module._diff:
            result["diff"] = diff
        result.update(self._extras())
        self.module.exit_json(**result)
        raise AssertionError("unreachable")  # pragma: no cover
