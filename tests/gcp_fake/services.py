"""State and behaviour of the Google control-plane APIs the collection uses, for the fake server.

Each handler takes (state, request) and returns (status, body). Behaviour follows Google's documented
semantics where our modules depend on them: 404 for missing resources, 409 on create of an existing one,
etags on IAM policies that must match on set (409 ABORTED; 412 for Cloud Storage), long-running operations
that finish after a few polls, Cloud SQL's 409 operationInProgress while an operation runs, output-only
fields and server-side defaults (a bucket created without a location lands in US, a POSTGRES_16 instance
without an edition is ENTERPRISE_PLUS), names that carry the project number (Secret Manager), and IAM's
eventual consistency for new service accounts. Anything not modelled answers 501, never a made-up 200.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import itertools
import re
import time
import typing as t
import uuid
from dataclasses import dataclass, field

from gcp_fake.cloudsql import InstanceCA, Login, PostgresRoles

Response = tuple[int, t.Any]


@dataclass
class Req:
    method_id: str
    http_method: str
    path_params: dict[str, str]
    query: dict[str, list[str]]
    body: t.Any
    principal: str = ""  # who the bearer token was issued to ('' when the fake did not issue it)

    def q(self, key: str, default: str | None = None) -> str | None:
        values = self.query.get(key)
        return values[0] if values else default


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error(
    code: int, message: str, status: str, reason: str | None = None, *, legacy: bool = False, **meta: str
) -> Response:
    """Google's error envelope: legacy APIs (storage, sqladmin) carry errors[].reason, newer ones details."""
    err: dict[str, t.Any] = {"code": code, "message": message, "status": status}
    if legacy:
        err["errors"] = [{"message": message, "domain": "global", "reason": reason or status.lower()}]
    elif reason or meta:
        err["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason or status,
                "domain": "googleapis.com",
                "metadata": dict(meta),
            }
        ]
    return code, {"error": err}


def not_found(what: str, legacy: bool = False, reason: str = "notFound") -> Response:
    return error(404, f"{what} not found.", "NOT_FOUND", reason if legacy else None, legacy=legacy)


CONCURRENT_POLICY_CHANGE = (
    "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff."
)
KNOWN_FLAGS = {
    "POSTGRES": {
        "cloudsql.iam_authentication",
        "max_connections",
        "log_min_duration_statement",
        "cloudsql.logical_decoding",
    },
    "MYSQL": {"log_bin_trust_function_creators", "cloudsql_iam_authentication", "max_connections", "slow_query_log"},
}


@dataclass(frozen=True)
class AccessToken:
    """An OAuth access token the fake issued: to whom, with which scopes, valid until when (time.time())."""

    principal: str
    scopes: frozenset[str]
    expires: float


@dataclass
class Lro:
    op: dict[str, t.Any]
    remaining: int
    on_done: t.Callable[[], t.Any] | None
    sql: bool
    instance_key: tuple[str, str] | None = None


@dataclass
class State:
    projects: dict[str, str]  # project id -> project number
    lro_polls: int = 2
    workload_pools: set[str] = field(default_factory=set)
    sa_get_delay: float = 0.0  # a new SA answers 404 to GET (and to its own IAM calls) this long
    sa_policy_delay: float = 0.0  # ... and "does not exist" when named as a member in setIamPolicy
    services: dict[tuple[str, str], str] = field(default_factory=dict)
    buckets: dict[str, dict] = field(default_factory=dict)
    foreign_buckets: set[str] = field(default_factory=set)
    policies: dict[str, dict] = field(default_factory=dict)
    repositories: dict[str, dict] = field(default_factory=dict)
    service_accounts: dict[str, dict] = field(default_factory=dict)
    sa_created: dict[str, float] = field(default_factory=dict)
    secrets: dict[str, dict] = field(default_factory=dict)
    versions: dict[str, list[dict]] = field(default_factory=dict)
    instances: dict[tuple[str, str], dict] = field(default_factory=dict)
    databases: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    users: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    passwords: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    backup_runs: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    operations: dict[str, Lro] = field(default_factory=dict)
    sql_cas: dict[tuple[str, str], InstanceCA] = field(default_factory=dict)  # made on first connect
    # The database behind an instance, when a test attached one: users.insert/delete create and drop its roles.
    sql_roles: dict[tuple[str, str], PostgresRoles] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)  # every token the fake issued
    _etags: itertools.count = field(default_factory=lambda: itertools.count(1))
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    # ---- helpers
    def etag(self) -> str:
        return base64.b64encode(f"etag-{next(self._etags)}".encode()).decode()

    def number(self, project: str) -> str | None:
        if project in self.projects:
            return self.projects[project]
        if project in self.projects.values():
            return project
        return None

    def project_id(self, id_or_number: str) -> str | None:
        if id_or_number in self.projects:
            return id_or_number
        for pid, num in self.projects.items():
            if num == id_or_number:
                return pid
        return None

    def default_policy(self) -> dict:
        return {"version": 1, "etag": self.etag(), "bindings": []}

    def sa_visible(self, email: str, delay: float) -> bool:
        created = self.sa_created.get(email)
        return email in self.service_accounts and (created is None or time.monotonic() - created >= delay)

    def new_lro(
        self, name: str, op: dict, on_done: t.Callable[[], t.Any] | None, *, sql: bool = False, key=None
    ) -> dict:
        self.operations[name] = Lro(op, self.lro_polls, on_done, sql, key)
        if self.lro_polls <= 0:
            self._finish(self.operations[name])
        return copy.deepcopy(self.operations[name].op)

    def _finish(self, lro: Lro) -> None:
        result = lro.on_done() if lro.on_done else None
        if lro.sql:
            lro.op["status"] = "DONE"
            lro.op["endTime"] = now()
            if isinstance(result, dict) and result.get("errors"):
                lro.op["error"] = {"kind": "sql#operationErrors", "errors": result["errors"]}
        else:
            lro.op["done"] = True
            if isinstance(result, dict) and "error" in result:
                lro.op["error"] = result["error"]
            else:
                lro.op["response"] = result or {}

    def poll(self, name: str) -> dict | None:
        lro = self.operations.get(name)
        if lro is None:
            return None
        finished = lro.op.get("status") == "DONE" if lro.sql else lro.op.get("done")
        if not finished:
            lro.remaining -= 1
            if lro.sql and lro.op.get("status") == "PENDING":
                lro.op["status"] = "RUNNING"
            if lro.remaining <= 0:
                self._finish(lro)
        return copy.deepcopy(lro.op)

    def sql_iam_users(self, project: str, instance: str) -> set[str]:
        """The database user names of an instance's IAM users, who log in with a token, never a password."""
        return {u["name"] for u in self.users.get((project, instance), []) if u.get("type", "").startswith("CLOUD_IAM")}

    def sql_busy(self, project: str, instance: str) -> bool:
        return any(
            lro.sql and lro.instance_key == (project, instance) and lro.op.get("status") != "DONE"
            for lro in self.operations.values()
        )

    def check_members(self, policy: dict) -> Response | None:
        """What IAM answers to setIamPolicy naming a missing service account or workload pool."""
        for binding in policy.get("bindings") or []:
            role = binding.get("role", "")
            if not re.match(r"^(roles/|projects/[^/]+/roles/|organizations/\d+/roles/)[A-Za-z0-9_.]+$", role):
                return error(400, f"Role {role} is not supported for this resource.", "INVALID_ARGUMENT")
            for member in binding.get("members") or []:
                wi = re.match(r"^serviceAccount:([^\[]+)\.svc\.id\.goog\[[^/\]]+/[^\]]+\]$", member)
                if wi:
                    pool = f"{wi.group(1)}.svc.id.goog"
                    if pool not in self.workload_pools:
                        return error(
                            400,
                            f"Identity Pool does not exist ({pool}). Please check that you specified a valid "
                            "resource name as returned in the `name` attribute in the configuration API.",
                            "INVALID_ARGUMENT",
                        )
                    continue
                sa = re.match(r"^serviceAccount:([^@]+)@([^.]+)\.iam\.gserviceaccount\.com$", member)
                if sa and sa.group(2) in self.projects:
                    email = member.split(":", 1)[1].lower()
                    if not self.sa_visible(email, self.sa_policy_delay):
                        return error(400, f"Service account {email} does not exist.", "INVALID_ARGUMENT")
                elif not re.match(
                    r"^(user|serviceAccount|group|domain|projectOwner|projectEditor|projectViewer|deleted:serviceAccount):.+$"
                    r"|^allUsers$|^allAuthenticatedUsers$|^principal(Set)?://.+$",
                    member,
                ):
                    return error(400, f"Invalid principal: {member}", "INVALID_ARGUMENT")
        return None

    def set_policy(self, key: str, incoming: dict, *, conflict_status: int, allow_blind: bool) -> Response:
        current = self.policies.get(key) or self.default_policy()
        sent_etag = incoming.get("etag")
        if sent_etag is None and not allow_blind:
            sent_etag = current["etag"]
        if sent_etag is not None and sent_etag != current["etag"]:
            if conflict_status == 412:
                return error(
                    412,
                    "At least one of the pre-conditions you specified did not hold.",
                    "FAILED_PRECONDITION",
                    "conditionNotMet",
                    legacy=True,
                )
            return error(
                409,
                CONCURRENT_POLICY_CHANGE,
                "ABORTED",
            )
        bad = self.check_members(incoming)
        if bad:
            return bad
        has_condition = any(b.get("condition") for b in incoming.get("bindings") or [])
        if has_condition and int(incoming.get("version") or 1) < 3:
            return error(400, "Conditional bindings require policy version 3.", "INVALID_ARGUMENT")
        stored = {
            "version": int(incoming.get("version") or 1),
            "etag": self.etag(),
            "bindings": [copy.deepcopy(b) for b in incoming.get("bindings") or [] if b.get("members")],
        }
        if "auditConfigs" in current:
            stored["auditConfigs"] = current["auditConfigs"]
        self.policies[key] = stored
        return 200, self.policy_view(key)

    def policy_view(self, key: str) -> dict:
        policy = copy.deepcopy(self.policies.get(key) or self.default_policy())
        self.policies.setdefault(key, copy.deepcopy(policy))
        if not policy.get("bindings"):
            policy.pop("bindings", None)
        return policy

    def concurrent_iam_write(self, key: str) -> None:
        """Another writer changes the policy (new etag, one more binding) behind the client's back."""
        policy = self.policies.get(key) or self.default_policy()
        policy = copy.deepcopy(policy)
        policy.setdefault("bindings", []).append({"role": "roles/viewer", "members": ["user:other-writer@example.com"]})
        policy["etag"] = self.etag()
        self.policies[key] = policy


# ------------------------------------------------------------------------------------- serviceusage
def _service_parts(name: str) -> tuple[str, str] | None:
    m = re.match(r"^projects/([^/]+)/services/([^/]+)$", name)
    return (m.group(1), m.group(2)) if m else None


def su_get(st: State, r: Req) -> Response:
    parts = _service_parts(r.path_params["name"])
    if not parts or st.number(parts[0]) is None:
        return error(403, f"Permission denied to get service [{r.path_params['name']}]", "PERMISSION_DENIED")
    project, svc = parts
    num = st.number(project)
    state = st.services.get((num, svc), "DISABLED")
    return 200, {
        "name": f"projects/{num}/services/{svc}",
        "parent": f"projects/{num}",
        "state": state,
        "config": {"name": svc},
    }


def _su_toggle(st: State, r: Req, target: str) -> Response:
    parts = _service_parts(r.path_params["name"])
    if not parts or st.number(parts[0]) is None:
        return error(403, "Permission denied to enable service", "PERMISSION_DENIED")
    if not re.match(r"^[a-z][a-z0-9.-]*\.googleapis\.com$", parts[1]):
        return error(
            403,
            f"Not found or permission denied for service(s): {parts[1]}.",
            "PERMISSION_DENIED",
            "SERVICE_CONFIG_NOT_FOUND_OR_PERMISSION_DENIED",
        )
    num = st.number(parts[0])

    def done() -> dict:
        st.services[(num, parts[1])] = target
        kind = "EnableServiceResponse" if target == "ENABLED" else "DisableServiceResponse"
        return {
            "@type": f"type.googleapis.com/google.api.serviceusage.v1.{kind}",
            "service": {"name": f"projects/{num}/services/{parts[1]}", "state": target, "parent": f"projects/{num}"},
        }

    name = f"operations/acf.p2-{num}-{uuid.uuid4()}"
    return 200, st.new_lro(
        name, {"name": name, "metadata": {"@type": "type.googleapis.com/google.protobuf.Empty"}}, done
    )


def su_enable(st: State, r: Req) -> Response:
    return _su_toggle(st, r, "ENABLED")


def su_disable(st: State, r: Req) -> Response:
    return _su_toggle(st, r, "DISABLED")


def lro_get(st: State, r: Req) -> Response:
    name = r.path_params.get("name") or r.path_params.get("operation", "")
    op = st.poll(name)
    if op is None:
        return not_found(f"Operation {name}")
    return 200, op


# ------------------------------------------------------------------------------------------- storage
def _bucket_name_ok(name: str) -> bool:
    return (
        bool(re.match(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", name))
        and "google" not in name
        and not name.startswith("goog")
    )


def _bucket_forbidden(name: str, perm: str) -> Response:
    return error(
        403,
        f"caller@example.com does not have {perm} access to the Google Cloud Storage bucket. "
        f"Permission '{perm}' denied on resource (or it may not exist).",
        "PERMISSION_DENIED",
        "forbidden",
        legacy=True,
    )


def gcs_get(st: State, r: Req) -> Response:
    name = r.path_params["bucket"]
    if name in st.foreign_buckets:
        return _bucket_forbidden(name, "storage.buckets.get")
    if name not in st.buckets:
        return error(404, "The specified bucket does not exist.", "NOT_FOUND", "notFound", legacy=True)
    return 200, copy.deepcopy(st.buckets[name])


def gcs_insert(st: State, r: Req) -> Response:
    project = r.q("project")
    body = r.body or {}
    name = body.get("name", "")
    if not project:
        return error(400, "Required parameter: project", "INVALID_ARGUMENT", "required", legacy=True)
    num = st.number(project)
    if num is None:
        return error(
            403,
            f"caller does not have storage.buckets.create access to the Google Cloud project {project}.",
            "PERMISSION_DENIED",
            "forbidden",
            legacy=True,
        )
    if not _bucket_name_ok(name):
        return error(400, "Invalid bucket name: '" + name + "'", "INVALID_ARGUMENT", "invalid", legacy=True)
    if name in st.foreign_buckets:
        return error(
            409,
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system. "
            "Please select a different name and try again.",
            "CONFLICT",
            "conflict",
            legacy=True,
        )
    if name in st.buckets:
        return error(
            409,
            "Your previous request to create the named bucket succeeded and you already own it.",
            "CONFLICT",
            "conflict",
            legacy=True,
        )
    location = str(body.get("location") or "US").upper()
    iam = copy.deepcopy(body.get("iamConfiguration") or {})
    ubla = bool((iam.get("uniformBucketLevelAccess") or {}).get("enabled"))
    iam_out = {
        "uniformBucketLevelAccess": {"enabled": ubla},
        "bucketPolicyOnly": {"enabled": ubla},
        "publicAccessPrevention": iam.get("publicAccessPrevention") or "inherited",
    }
    if ubla:
        iam_out["uniformBucketLevelAccess"]["lockedTime"] = "2099-01-01T00:00:00.000Z"
        iam_out["bucketPolicyOnly"]["lockedTime"] = "2099-01-01T00:00:00.000Z"
    bucket = {
        "kind": "storage#bucket",
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{name}",
        "id": name,
        "name": name,
        "projectNumber": num,
        "generation": str(next(st._ids) * 1000),
        "metageneration": "1",
        "location": location,
        "locationType": "multi-region" if location in ("US", "EU", "ASIA") else "region",
        "storageClass": body.get("storageClass") or "STANDARD",
        "etag": "CAE=",
        "timeCreated": now(),
        "updated": now(),
        "iamConfiguration": iam_out,
        "softDeletePolicy": {"retentionDurationSeconds": "604800", "effectiveTime": now()},
        "rpo": "DEFAULT",
    }
    for key in ("labels", "versioning", "lifecycle"):
        if body.get(key) is not None:
            bucket[key] = copy.deepcopy(body[key])
    st.buckets[name] = bucket
    st.policies[f"bucket/{name}"] = {
        "version": 1,
        "etag": "CAE=",
        "bindings": [
            {
                "role": "roles/storage.legacyBucketOwner",
                "members": [f"projectEditor:{project}", f"projectOwner:{project}"],
            },
            {"role": "roles/storage.legacyBucketReader", "members": [f"projectViewer:{project}"]},
        ],
    }
    return 200, copy.deepcopy(bucket)


def gcs_patch(st: State, r: Req) -> Response:
    name = r.path_params["bucket"]
    if name not in st.buckets:
        return gcs_get(st, r)
    bucket = st.buckets[name]
    match = r.q("ifMetagenerationMatch")
    if match is not None and match != bucket["metageneration"]:
        return error(
            412,
            "At least one of the pre-conditions you specified did not hold.",
            "FAILED_PRECONDITION",
            "conditionNotMet",
            legacy=True,
        )
    body = r.body or {}
    if "location" in body and str(body["location"]).upper() != bucket["location"]:
        return error(400, "The location of a bucket cannot be changed.", "INVALID_ARGUMENT", "invalid", legacy=True)
    for key, value in body.items():
        if key in (
            "name",
            "location",
            "kind",
            "id",
            "selfLink",
            "projectNumber",
            "metageneration",
            "etag",
            "timeCreated",
            "updated",
        ):
            continue
        if key == "labels":
            labels = dict(bucket.get("labels") or {})
            for k, v in (value or {}).items():
                if v is None:
                    labels.pop(k, None)
                else:
                    labels[k] = v
            bucket["labels"] = labels
        elif key == "iamConfiguration":
            cur = bucket.setdefault("iamConfiguration", {})
            for k, v in (value or {}).items():
                if k == "uniformBucketLevelAccess":
                    cur[k] = {"enabled": bool(v.get("enabled"))}
                    cur["bucketPolicyOnly"] = {"enabled": bool(v.get("enabled"))}
                elif k != "bucketPolicyOnly":
                    cur[k] = v
        elif value is None:
            bucket.pop(key, None)
        else:
            bucket[key] = copy.deepcopy(value)
    bucket["metageneration"] = str(int(bucket["metageneration"]) + 1)
    bucket["etag"] = base64.b64encode(f"CA{bucket['metageneration']}".encode()).decode()
    bucket["updated"] = now()
    return 200, copy.deepcopy(bucket)


def gcs_delete(st: State, r: Req) -> Response:
    name = r.path_params["bucket"]
    if name not in st.buckets:
        return gcs_get(st, r)
    del st.buckets[name]
    st.policies.pop(f"bucket/{name}", None)
    return 204, None


def gcs_get_iam(st: State, r: Req) -> Response:
    name = r.path_params["bucket"]
    if name not in st.buckets:
        return gcs_get(st, r)
    policy = st.policy_view(f"bucket/{name}")
    policy.update({"kind": "storage#policy", "resourceId": f"projects/_/buckets/{name}"})
    return 200, policy


def gcs_set_iam(st: State, r: Req) -> Response:
    name = r.path_params["bucket"]
    if name not in st.buckets:
        return gcs_get(st, r)
    status, body = st.set_policy(f"bucket/{name}", r.body or {}, conflict_status=412, allow_blind=True)
    if status == 200:
        body.update({"kind": "storage#policy", "resourceId": f"projects/_/buckets/{name}"})
    return status, body


# ---------------------------------------------------------------------------------- artifactregistry
def ar_create(st: State, r: Req) -> Response:
    parent = r.path_params["parent"]
    m = re.match(r"^projects/([^/]+)/locations/([^/]+)$", parent)
    repo_id = r.q("repositoryId")
    if not m or st.number(m.group(1)) is None:
        return error(
            403,
            f"Permission 'artifactregistry.repositories.create' denied on resource '{parent}' (or it may not exist).",
            "PERMISSION_DENIED",
            "IAM_PERMISSION_DENIED",
            permission="artifactregistry.repositories.create",
        )
    if not repo_id or not re.match(r"^[a-z]([a-z0-9-]*[a-z0-9])?$", repo_id):
        return error(400, f"Invalid repository ID: {repo_id!r}", "INVALID_ARGUMENT")
    body = r.body or {}
    if not body.get("format"):
        return error(400, "Repository format must be specified.", "INVALID_ARGUMENT")
    name = f"{parent}/repositories/{repo_id}"
    if name in st.repositories:
        return error(409, f"the repository already exists: {name}", "ALREADY_EXISTS")
    repo = copy.deepcopy(body)
    repo.update(
        {"name": name, "mode": body.get("mode") or "STANDARD_REPOSITORY", "createTime": now(), "updateTime": now()}
    )
    repo.setdefault("description", "")

    def done() -> dict:
        st.repositories[name] = repo
        return dict(
            copy.deepcopy(repo), **{"@type": "type.googleapis.com/google.devtools.artifactregistry.v1.Repository"}
        )

    op_name = f"{parent}/operations/{uuid.uuid4()}"
    return 200, st.new_lro(
        op_name,
        {
            "name": op_name,
            "metadata": {"@type": "type.googleapis.com/google.devtools.artifactregistry.v1.OperationMetadata"},
        },
        done,
    )


def ar_get(st: State, r: Req) -> Response:
    name = r.path_params["name"]
    if name not in st.repositories:
        return not_found("Requested entity was")
    return 200, copy.deepcopy(st.repositories[name])


def ar_patch(st: State, r: Req) -> Response:
    name = r.path_params["name"]
    if name not in st.repositories:
        return not_found("Requested entity was")
    mask = [m for m in (r.q("updateMask") or "").split(",") if m]
    allowed = {
        "description",
        "labels",
        "cleanupPolicies",
        "cleanupPolicyDryRun",
        "dockerConfig",
        "dockerConfig.immutableTags",
    }
    for path in mask:
        if path not in allowed:
            return error(400, f"Invalid update_mask path: {path}", "INVALID_ARGUMENT")
    repo = st.repositories[name]
    body = r.body or {}
    for path in mask:
        if path == "dockerConfig.immutableTags":
            repo.setdefault("dockerConfig", {})["immutableTags"] = (body.get("dockerConfig") or {}).get(
                "immutableTags", False
            )
        elif path in body:
            repo[path] = copy.deepcopy(body[path])
        else:
            repo.pop(path, None)
    repo["updateTime"] = now()
    return 200, copy.deepcopy(repo)


def ar_delete(st: State, r: Req) -> Response:
    name = r.path_params["name"]
    if name not in st.repositories:
        return not_found("Requested entity was")
    parent = name.rsplit("/repositories/", 1)[0]
    op_name = f"{parent}/operations/{uuid.uuid4()}"
    return 200, st.new_lro(
        op_name,
        {"name": op_name},
        lambda: st.repositories.pop(name, None) and {"@type": "type.googleapis.com/google.protobuf.Empty"},
    )


# ----------------------------------------------------------------------------------------------- iam
def _sa_ref(st: State, name: str) -> tuple[str | None, str | None]:
    m = re.match(r"^projects/([^/]+)/serviceAccounts/([^/]+)$", name)
    if not m:
        return None, None
    ident = m.group(2).lower()
    if ident in st.service_accounts:
        return m.group(1), ident
    for email, sa in st.service_accounts.items():
        if sa["uniqueId"] == ident:
            return m.group(1), email
    return m.group(1), None


def iam_sa_create(st: State, r: Req) -> Response:
    m = re.match(r"^projects/([^/]+)$", r.path_params["name"])
    project = m.group(1) if m else ""
    if project not in st.projects:
        return error(
            403,
            "Permission 'iam.serviceAccounts.create' denied on resource (or it may not exist).",
            "PERMISSION_DENIED",
            "IAM_PERMISSION_DENIED",
            permission="iam.serviceAccounts.create",
        )
    body = r.body or {}
    account_id = body.get("accountId", "")
    if not re.match(r"^[a-z]([-a-z0-9]*[a-z0-9])$", account_id) or not 6 <= len(account_id) <= 30:
        return error(
            400,
            f"Invalid account ID {account_id!r}; it must be 6-30 characters long and match [a-z]([-a-z0-9]*[a-z0-9]).",
            "INVALID_ARGUMENT",
        )
    email = f"{account_id}@{project}.iam.gserviceaccount.com"
    if email in st.service_accounts:
        return error(
            409, f"Service account {account_id} already exists within project projects/{project}.", "ALREADY_EXISTS"
        )
    sa = dict(body.get("serviceAccount") or {})
    unique = str(100000000000000000000 + next(st._ids))
    sa.update(
        {
            "name": f"projects/{project}/serviceAccounts/{email}",
            "projectId": project,
            "uniqueId": unique,
            "email": email,
            "etag": "MDEwMjE5MjA=",
            "oauth2ClientId": unique,
        }
    )
    st.service_accounts[email] = sa
    st.sa_created[email] = time.monotonic()
    return 200, copy.deepcopy(sa)


def _sa_or_404(st: State, r: Req, key: str = "name", delay: float | None = None) -> tuple[str | None, Response | None]:
    email = _sa_ref(st, r.path_params[key])[1]
    if email is None or not st.sa_visible(email, st.sa_get_delay if delay is None else delay):
        return None, error(404, f"Unknown service account {r.path_params[key]}.", "NOT_FOUND")
    return email, None


def iam_sa_get(st: State, r: Req) -> Response:
    email, err = _sa_or_404(st, r)
    if err:
        return err
    return 200, copy.deepcopy(st.service_accounts[email])


def iam_sa_patch(st: State, r: Req) -> Response:
    email, err = _sa_or_404(st, r)
    if err:
        return err
    body = r.body or {}
    mask = [m for m in (body.get("updateMask") or "").split(",") if m]
    if not mask:
        return error(400, "updateMask is required.", "INVALID_ARGUMENT")
    sa = st.service_accounts[email]
    for path in mask:
        if path not in ("displayName", "description"):
            return error(400, f"Invalid update mask path: {path}", "INVALID_ARGUMENT")
        sa[path] = (body.get("serviceAccount") or {}).get(path, "")
    return 200, copy.deepcopy(sa)


def iam_sa_delete(st: State, r: Req) -> Response:
    email, err = _sa_or_404(st, r)
    if err:
        return err
    del st.service_accounts[email]
    st.policies.pop(f"sa/{email}", None)
    return 200, {}


def iam_sa_get_iam(st: State, r: Req) -> Response:
    email, err = _sa_or_404(st, r, "resource")
    if err:
        return err
    return 200, st.policy_view(f"sa/{email}")


def iam_sa_set_iam(st: State, r: Req) -> Response:
    email, err = _sa_or_404(st, r, "resource")
    if err:
        return err
    return st.set_policy(f"sa/{email}", (r.body or {}).get("policy") or {}, conflict_status=409, allow_blind=True)


# ------------------------------------------------------------------------------ cloudresourcemanager
def crm_get_iam(st: State, r: Req) -> Response:
    project = r.path_params["resource"]
    if project not in st.projects:
        return error(403, "The caller does not have permission", "PERMISSION_DENIED")
    return 200, st.policy_view(f"project/{project}")


def crm_set_iam(st: State, r: Req) -> Response:
    project = r.path_params["resource"]
    if project not in st.projects:
        return error(403, "The caller does not have permission", "PERMISSION_DENIED")
    policy = (r.body or {}).get("policy") or {}
    for binding in policy.get("bindings") or []:
        if any(m in ("allUsers", "allAuthenticatedUsers") for m in binding.get("members") or []):
            return error(400, "Policy members must not include allUsers or allAuthenticatedUsers.", "INVALID_ARGUMENT")
    return st.set_policy(f"project/{project}", policy, conflict_status=409, allow_blind=True)


# ------------------------------------------------------------------------------------- secretmanager
def _secret_key(st: State, name: str) -> str | None:
    m = re.match(r"^projects/([^/]+)/secrets/([^/:]+)", name)
    if not m or st.number(m.group(1)) is None:
        return None
    return f"projects/{st.number(m.group(1))}/secrets/{m.group(2)}"


def sm_create(st: State, r: Req) -> Response:
    m = re.match(r"^projects/([^/]+)$", r.path_params["parent"])
    num = st.number(m.group(1)) if m else None
    if num is None:
        return error(
            403,
            "Permission 'secretmanager.secrets.create' denied on resource (or it may not exist).",
            "PERMISSION_DENIED",
            "IAM_PERMISSION_DENIED",
            permission="secretmanager.secrets.create",
        )
    secret_id = r.q("secretId") or ""
    if not re.match(r"^[A-Za-z0-9_-]{1,255}$", secret_id):
        return error(400, "The secret ID is invalid.", "INVALID_ARGUMENT")
    body = r.body or {}
    if not body.get("replication"):
        return error(400, "Secret.replication is required.", "INVALID_ARGUMENT")
    name = f"projects/{num}/secrets/{secret_id}"
    if name in st.secrets:
        return error(409, f"Secret [{name}] already exists.", "ALREADY_EXISTS")
    secret = {
        "name": name,
        "replication": copy.deepcopy(body["replication"]),
        "createTime": now(),
        "etag": f'"{st.etag()}"',
    }
    if body.get("labels"):
        secret["labels"] = dict(body["labels"])
    st.secrets[name] = secret
    st.versions[name] = []
    return 200, copy.deepcopy(secret)


def sm_get(st: State, r: Req) -> Response:
    key = _secret_key(st, r.path_params["name"])
    if key not in st.secrets:
        return not_found(f"Secret [{r.path_params['name']}]")
    return 200, copy.deepcopy(st.secrets[key])


def sm_patch(st: State, r: Req) -> Response:
    key = _secret_key(st, r.path_params["name"])
    if key not in st.secrets:
        return not_found(f"Secret [{r.path_params['name']}]")
    mask = [m for m in (r.q("updateMask") or "").split(",") if m]
    if not mask:
        return error(400, "update_mask is required.", "INVALID_ARGUMENT")
    for path in mask:
        if path not in ("labels", "annotations", "topics", "rotation", "expireTime", "ttl", "versionAliases"):
            return error(400, f"Invalid update_mask path: {path}", "INVALID_ARGUMENT")
        value = (r.body or {}).get(path)
        if value is None:
            st.secrets[key].pop(path, None)
        else:
            st.secrets[key][path] = copy.deepcopy(value)
    st.secrets[key]["etag"] = f'"{st.etag()}"'
    return 200, copy.deepcopy(st.secrets[key])


def sm_delete(st: State, r: Req) -> Response:
    key = _secret_key(st, r.path_params["name"])
    if key not in st.secrets:
        return not_found(f"Secret [{r.path_params['name']}]")
    del st.secrets[key]
    st.versions.pop(key, None)
    return 200, {}


def sm_add_version(st: State, r: Req) -> Response:
    from gcp_fake.crc import crc32c  # local import keeps the module graph flat

    key = _secret_key(st, r.path_params["parent"])
    if key not in st.secrets:
        return not_found(f"Secret [{r.path_params['parent']}]")
    payload = (r.body or {}).get("payload") or {}
    data = base64.b64decode(payload.get("data") or "")
    if payload.get("dataCrc32c") is not None and int(payload["dataCrc32c"]) != crc32c(data):
        return error(400, "Checksum mismatch: data_crc32c does not match the payload.", "INVALID_ARGUMENT")
    number = len(st.versions[key]) + 1
    version = {
        "name": f"{key}/versions/{number}",
        "createTime": now(),
        "state": "ENABLED",
        "etag": f'"{st.etag()}"',
        "clientSpecifiedPayloadChecksum": payload.get("dataCrc32c") is not None,
        "replicationStatus": {"automatic": {}},
    }
    st.versions[key].append({"meta": version, "data": data})
    return 200, copy.deepcopy(version)


def sm_list_versions(st: State, r: Req) -> Response:
    key = _secret_key(st, r.path_params["parent"])
    if key not in st.secrets:
        return not_found(f"Secret [{r.path_params['parent']}]")
    flt = r.q("filter") or ""
    items = [copy.deepcopy(v["meta"]) for v in reversed(st.versions[key])]
    m = re.match(r"^state\s*[:=]\s*(\w+)$", flt.strip())
    if flt and not m:
        return error(400, f"Invalid filter: {flt}", "INVALID_ARGUMENT")
    if m:
        items = [v for v in items if v["state"] == m.group(1).upper()]
    out: dict[str, t.Any] = {"totalSize": len(items)}
    if items:
        out["versions"] = items
    return 200, out


def sm_access(st: State, r: Req) -> Response:
    from gcp_fake.crc import crc32c

    name = r.path_params["name"]
    key = _secret_key(st, name)
    if key not in st.secrets:
        return not_found(f"Secret [{name}]")
    which = name.rsplit("/", 1)[1]
    versions = st.versions[key]
    if which == "latest":
        chosen = versions[-1] if versions else None
    else:
        chosen = versions[int(which) - 1] if which.isdigit() and 0 < int(which) <= len(versions) else None
    if chosen is None:
        return not_found(f"Secret Version [{name}]")
    if chosen["meta"]["state"] != "ENABLED":
        return error(
            400,
            f"Secret Version [{chosen['meta']['name']}] is in {chosen['meta']['state']} state.",
            "FAILED_PRECONDITION",
        )
    data = chosen["data"]
    return 200, {
        "name": chosen["meta"]["name"],
        "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(crc32c(data))},
    }


def sm_get_iam(st: State, r: Req) -> Response:
    key = _secret_key(st, r.path_params["resource"])
    if key not in st.secrets:
        return not_found(f"Secret [{r.path_params['resource']}]")
    return 200, st.policy_view(f"secret/{key}")


def sm_set_iam(st: State, r: Req) -> Response:
    key = _secret_key(st, r.path_params["resource"])
    if key not in st.secrets:
        return not_found(f"Secret [{r.path_params['resource']}]")
    return st.set_policy(f"secret/{key}", (r.body or {}).get("policy") or {}, conflict_status=409, allow_blind=True)


# -------------------------------------------------------------------------------------------- sqladmin
def _sql_err(code: int, message: str, reason: str) -> Response:
    status = {
        400: "INVALID_ARGUMENT",
        404: "NOT_FOUND",
        409: "ALREADY_EXISTS" if "exists" in reason.lower() else "ABORTED",
    }.get(code, "FAILED_PRECONDITION")
    return error(code, message, status, reason, legacy=True)


def _sql_op(st: State, project: str, instance: str, op_type: str, on_done: t.Callable[[], t.Any] | None) -> dict:
    name = str(uuid.uuid4())
    op = {
        "kind": "sql#operation",
        "name": name,
        "status": "PENDING",
        "operationType": op_type,
        "targetId": instance,
        "targetProject": project,
        "targetLink": f"https://sqladmin.googleapis.com/v1/projects/{project}/instances/{instance}",
        "selfLink": f"https://sqladmin.googleapis.com/v1/projects/{project}/operations/{name}",
        "insertTime": now(),
        "user": "caller@example.com",
    }
    return st.new_lro(name, op, on_done, sql=True, key=(project, instance))


def _instance(st: State, r: Req) -> tuple[dict | None, Response | None]:
    project, name = r.path_params["project"], r.path_params["instance"]
    if project not in st.projects:
        return None, _sql_err(403, "The client is not authorized to make this request.", "notAuthorized")
    inst = st.instances.get((project, name))
    if inst is None:
        return None, _sql_err(404, "The Cloud SQL instance does not exist.", "instanceDoesNotExist")
    return inst, None


def _busy(st: State, r: Req) -> Response | None:
    if st.sql_busy(r.path_params["project"], r.path_params["instance"]):
        return _sql_err(
            409, "Operation failed because another operation was already in progress.", "operationInProgress"
        )
    return None


def _check_settings(version: str, settings: dict) -> Response | None:
    engine = "MYSQL" if version.startswith("MYSQL") else "POSTGRES"
    for flag in settings.get("databaseFlags") or []:
        if flag.get("name") not in KNOWN_FLAGS[engine]:
            return _sql_err(
                400, f"Invalid flag for instance: {flag.get('name')} is not supported for {version}.", "invalidFlagName"
            )
    backup = settings.get("backupConfiguration") or {}
    if backup.get("binaryLogEnabled") and engine != "MYSQL":
        return _sql_err(400, "Binary logging is only supported for MySQL.", "invalid")
    if backup.get("pointInTimeRecoveryEnabled") and engine == "MYSQL":
        return _sql_err(400, "Point-in-time recovery for MySQL is configured with binaryLogEnabled.", "invalid")
    edition = settings.get("edition")
    tier = settings.get("tier", "")
    if edition == "ENTERPRISE_PLUS" and not tier.startswith("db-perf-optimized-N-"):
        return _sql_err(400, f"Invalid Tier ({tier}) for (ENTERPRISE_PLUS) Edition.", "invalid")
    window = settings.get("maintenanceWindow") or {}
    if window and not (1 <= int(window.get("day", 1)) <= 7 and 0 <= int(window.get("hour", 0)) <= 23):
        return _sql_err(400, "Invalid maintenance window.", "invalid")
    return None


def sql_instance_get(st: State, r: Req) -> Response:
    inst, err = _instance(st, r)
    return err if err else (200, copy.deepcopy(inst))


def sql_instance_insert(st: State, r: Req) -> Response:
    project = r.path_params["project"]
    if project not in st.projects:
        return _sql_err(403, "The client is not authorized to make this request.", "notAuthorized")
    body = copy.deepcopy(r.body or {})
    name = body.get("name", "")
    if not re.match(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", name):
        return _sql_err(400, "Invalid request: instance name (" + name + ").", "invalid")
    if (project, name) in st.instances:
        return _sql_err(409, "The Cloud SQL instance already exists.", "instanceAlreadyExists")
    version = body.get("databaseVersion") or "MYSQL_8_0"
    settings = body.get("settings") or {}
    if not settings.get("tier"):
        return _sql_err(400, "Invalid request: tier is required.", "invalid")
    if not settings.get("edition"):
        settings["edition"] = (
            "ENTERPRISE_PLUS"
            if re.match(r"^POSTGRES_(1[6-9]|[2-9]\d)$", version) or version == "MYSQL_8_4"
            else "ENTERPRISE"
        )
    bad = _check_settings(version, settings)
    if bad:
        return bad
    region = body.get("region") or "us-central1"
    defaults = {
        "kind": "sql#settings",
        "settingsVersion": "1",
        "activationPolicy": "ALWAYS",
        "pricingPlan": "PER_USE",
        "availabilityType": "ZONAL",
        "dataDiskSizeGb": "10",
        "dataDiskType": "PD_SSD",
        "storageAutoResize": True,
        "storageAutoResizeLimit": "0",
        "replicationType": "SYNCHRONOUS",
        "ipConfiguration": {"ipv4Enabled": True, "sslMode": "ALLOW_UNENCRYPTED_AND_ENCRYPTED"},
        "backupConfiguration": {
            "kind": "sql#backupConfiguration",
            "enabled": False,
            "startTime": "00:00",
            "transactionLogRetentionDays": 7,
            "backupRetentionSettings": {"retentionUnit": "COUNT", "retainedBackups": 7},
        },
        "locationPreference": {"zone": f"{region}-b", "kind": "sql#locationPreference"},
        "deletionProtectionEnabled": False,
    }
    merged = _merge(defaults, settings)
    inst = {
        "kind": "sql#instance",
        "name": name,
        "project": project,
        "databaseVersion": version,
        "region": region,
        "gceZone": f"{region}-b",
        "state": "PENDING_CREATE",
        "backendType": "SECOND_GEN",
        "instanceType": "CLOUD_SQL_INSTANCE",
        "connectionName": f"{project}:{region}:{name}",
        "selfLink": f"https://sqladmin.googleapis.com/v1/projects/{project}/instances/{name}",
        "serviceAccountEmailAddress": f"p{st.projects[project]}-abc@gcp-sa-cloud-sql.iam.gserviceaccount.com",
        "createTime": now(),
        "databaseInstalledVersion": version + "_1",
        "settings": merged,
        "etag": st.etag(),
    }
    if merged.get("ipConfiguration", {}).get("privateNetwork"):
        inst["ipAddresses"] = [{"type": "PRIVATE", "ipAddress": "10.20.0.3"}]
    st.instances[(project, name)] = inst
    engine_default_user = {
        "kind": "sql#user",
        "name": "postgres" if version.startswith("POSTGRES") else "root",
        "instance": name,
        "project": project,
        "etag": st.etag(),
        "type": "BUILT_IN",
    }
    if not version.startswith("POSTGRES"):
        engine_default_user["host"] = "%"
    st.users[(project, name)] = [engine_default_user]

    def done() -> None:
        inst["state"] = "RUNNABLE"

    return 200, _sql_op(st, project, name, "CREATE", done)


def _merge(base: dict, patch: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:  # lists (databaseFlags, authorizedNetworks) are replaced wholesale, as the API does
            out[key] = copy.deepcopy(value)
    return out


def sql_instance_patch(st: State, r: Req) -> Response:
    inst, err = _instance(st, r)
    if err:
        return err
    busy = _busy(st, r)
    if busy:
        return busy
    body = r.body or {}
    for key in ("region", "databaseVersion", "name"):
        if key in body and body[key] != inst[key]:
            return _sql_err(400, f"Invalid request: {key} cannot be changed by patch.", "invalid")
    settings = _merge(inst["settings"], body.get("settings") or {})
    bad = _check_settings(inst["databaseVersion"], settings)
    if bad:
        return bad

    def done() -> None:
        inst["settings"] = settings
        inst["settings"]["settingsVersion"] = str(int(inst["settings"]["settingsVersion"]) + 1)
        if "userLabels" in (body.get("settings") or {}):
            inst["settings"]["userLabels"] = copy.deepcopy(body["settings"]["userLabels"])
        inst["etag"] = st.etag()

    return 200, _sql_op(st, inst["project"], inst["name"], "UPDATE", done)


def sql_instance_delete(st: State, r: Req) -> Response:
    inst, err = _instance(st, r)
    if err:
        return err
    busy = _busy(st, r)
    if busy:
        return busy
    if inst["settings"].get("deletionProtectionEnabled"):
        return _sql_err(
            400,
            "The instance is protected. Please disable the deletion protection and try again.",
            "deletionProtectionEnabled",
        )
    key = (inst["project"], inst["name"])
    return 200, _sql_op(st, key[0], key[1], "DELETE", lambda: st.instances.pop(key, None) and None)


def _runnable(st: State, r: Req) -> tuple[dict | None, Response | None]:
    inst, err = _instance(st, r)
    if err:
        return None, err
    if inst["state"] != "RUNNABLE":
        return None, _sql_err(
            409, "Operation failed because another operation was already in progress.", "operationInProgress"
        )
    busy = _busy(st, r)
    return (None, busy) if busy else (inst, None)


def sql_db_get(st: State, r: Req) -> Response:
    inst, err = _instance(st, r)
    if err:
        return err
    db = st.databases.get((inst["project"], inst["name"], r.path_params["database"]))
    if db is None:
        return _sql_err(404, "Not Found", "notFound")
    return 200, copy.deepcopy(db)


def sql_db_insert(st: State, r: Req) -> Response:
    inst, err = _runnable(st, r)
    if err:
        return err
    body = r.body or {}
    name = body.get("name", "")
    key = (inst["project"], inst["name"], name)
    if not name:
        return _sql_err(400, "Invalid request: database name is required.", "invalid")
    if key in st.databases:
        return _sql_err(409, f"Database {name} already exists.", "databaseAlreadyExists")
    pg = inst["databaseVersion"].startswith("POSTGRES")
    db = {
        "kind": "sql#database",
        "name": name,
        "instance": inst["name"],
        "project": inst["project"],
        "charset": body.get("charset") or ("UTF8" if pg else "utf8mb4"),
        "collation": body.get("collation") or ("en_US.UTF8" if pg else "utf8mb4_0900_ai_ci"),
        "selfLink": f"{inst['selfLink']}/databases/{name}",
        "etag": st.etag(),
    }
    return 200, _sql_op(st, inst["project"], inst["name"], "CREATE_DATABASE", lambda: st.databases.__setitem__(key, db))


def sql_db_delete(st: State, r: Req) -> Response:
    inst, err = _runnable(st, r)
    if err:
        return err
    key = (inst["project"], inst["name"], r.path_params["database"])
    if key not in st.databases:
        return _sql_err(404, "Not Found", "notFound")
    return 200, _sql_op(st, key[0], key[1], "DELETE_DATABASE", lambda: st.databases.pop(key, None) and None)


def sql_users_list(st: State, r: Req) -> Response:
    inst, err = _instance(st, r)
    if err:
        return err
    return 200, {"kind": "sql#usersList", "items": copy.deepcopy(st.users.get((inst["project"], inst["name"]), []))}


def _find_user(users: list[dict], name: str, host: str | None) -> dict | None:
    for user in users:
        if user["name"] == name and (host is None or user.get("host", "") == host):
            return user
    return None


def sql_user_insert(st: State, r: Req) -> Response:
    inst, err = _runnable(st, r)
    if err:
        return err
    body = r.body or {}
    pg = inst["databaseVersion"].startswith("POSTGRES")
    name = body.get("name", "")
    kind = body.get("type") or "BUILT_IN"
    host = body.get("host")
    if pg and host:
        return _sql_err(400, "Invalid request: host is not supported for PostgreSQL users.", "invalid")
    if not pg and kind == "BUILT_IN" and host is None:
        host = "%"
    if kind == "CLOUD_IAM_SERVICE_ACCOUNT":
        flag = "cloudsql.iam_authentication" if pg else "cloudsql_iam_authentication"
        flags = {f["name"]: f.get("value") for f in inst["settings"].get("databaseFlags") or []}
        if flags.get(flag) != "on":
            return _sql_err(400, f"Invalid request: the {flag} flag must be on to add IAM users.", "invalid")
        if pg and (not name.endswith(".iam") or "gserviceaccount.com" in name):
            return _sql_err(
                400,
                "Invalid request: IAM service account user names on PostgreSQL are the e-mail without "
                ".gserviceaccount.com.",
                "invalid",
            )
        if not pg and not re.match(r"^[^@]+@[^@]+\.iam\.gserviceaccount\.com$", name):
            return _sql_err(
                400, "Invalid request: IAM service account user names on MySQL are the full e-mail.", "invalid"
            )
    elif not body.get("password"):
        return _sql_err(400, "Invalid request: password is required for built-in users.", "invalid")
    users = st.users.setdefault((inst["project"], inst["name"]), [])
    if _find_user(users, name, host if not pg else None):
        return _sql_err(409, f"User {name} already exists.", "userAlreadyExists")
    user = {
        "kind": "sql#user",
        "name": name,
        "instance": inst["name"],
        "project": inst["project"],
        "etag": st.etag(),
        "type": kind,
    }
    if host is not None:
        user["host"] = host
    if body.get("databaseRoles"):
        user["databaseRoles"] = list(body["databaseRoles"])

    def done() -> None:
        roles = st.sql_roles.get((inst["project"], inst["name"]))
        if roles is not None:
            roles.added(user, body.get("password", ""))
        users.append(user)
        if body.get("password"):
            st.passwords[(inst["project"], inst["name"], name, host or "")] = body["password"]

    return 200, _sql_op(st, inst["project"], inst["name"], "CREATE_USER", done)


def sql_user_update(st: State, r: Req) -> Response:
    inst, err = _runnable(st, r)
    if err:
        return err
    name, host = r.q("name") or "", r.q("host")
    users = st.users.get((inst["project"], inst["name"]), [])
    user = _find_user(users, name, host)
    if user is None:
        return _sql_err(404, f"User {name} does not exist.", "notFound")
    body = r.body or {}

    def done() -> None:
        if body.get("password"):
            st.passwords[(inst["project"], inst["name"], name, host or "")] = body["password"]

    return 200, _sql_op(st, inst["project"], inst["name"], "UPDATE_USER", done)


def sql_user_delete(st: State, r: Req) -> Response:
    inst, err = _runnable(st, r)
    if err:
        return err
    name, host = r.q("name") or "", r.q("host")
    users = st.users.get((inst["project"], inst["name"]), [])
    user = _find_user(users, name, host)
    if user is None:
        return _sql_err(404, f"User {name} does not exist.", "notFound")

    def done() -> None:
        roles = st.sql_roles.get((inst["project"], inst["name"]))
        if roles is not None:
            roles.removed(user)
        users.remove(user)

    return 200, _sql_op(st, inst["project"], inst["name"], "DELETE_USER", done)


def sql_backup_insert(st: State, r: Req) -> Response:
    inst, err = _runnable(st, r)
    if err:
        return err
    key = (inst["project"], inst["name"])
    run = {
        "kind": "sql#backupRun",
        "id": str(1700000000000 + next(st._ids)),
        "status": "RUNNING",
        "type": "ON_DEMAND",
        "instance": inst["name"],
        "enqueuedTime": now(),
        "startTime": now(),
        "backupKind": "SNAPSHOT",
        "location": inst["region"],
    }
    if (r.body or {}).get("description"):
        run["description"] = r.body["description"]
    run["selfLink"] = f"{inst['selfLink']}/backupRuns/{run['id']}"
    st.backup_runs.setdefault(key, []).insert(0, run)

    def done() -> None:
        run["status"] = "SUCCESSFUL"
        run["endTime"] = now()

    op = _sql_op(st, key[0], key[1], "BACKUP_VOLUME", done)
    return 200, op


def sql_backup_list(st: State, r: Req) -> Response:
    inst, err = _instance(st, r)
    if err:
        return err
    items = copy.deepcopy(st.backup_runs.get((inst["project"], inst["name"]), []))
    limit = int(r.q("maxResults") or 0)
    if limit:
        items = items[:limit]
    out: dict[str, t.Any] = {"kind": "sql#backupRunsList"}
    if items:
        out["items"] = items
    return 200, out


def _connectable(st: State, r: Req) -> tuple[dict | None, InstanceCA | None, Response | None]:
    inst, err = _instance(st, r)
    if err:
        return None, None, err
    if inst["state"] != "RUNNABLE":
        return None, None, _sql_err(400, "Invalid request: Instance is not running.", "invalid")
    key = (inst["project"], inst["name"])
    if key not in st.sql_cas:
        st.sql_cas[key] = InstanceCA(*key)
    return inst, st.sql_cas[key], None


def sql_connect_get(st: State, r: Req) -> Response:
    """connectSettings: what a connector needs to dial the instance (its CA, addresses, region, engine)."""
    inst, ca, err = _connectable(st, r)
    if err:
        return err
    assert inst is not None and ca is not None
    return 200, {
        "kind": "sql#connectSettings",
        "serverCaCert": ca.server_ca_cert(),
        "ipAddresses": copy.deepcopy(inst.get("ipAddresses", [])),
        "region": inst["region"],
        "databaseVersion": inst["databaseVersion"],
        "backendType": inst["backendType"],
        "pscEnabled": False,
        "serverCaMode": "GOOGLE_MANAGED_INTERNAL_CA",
    }


def sql_connect_generate_ephemeral(st: State, r: Req) -> Response:
    """generateEphemeralCert: a one-hour client certificate for the caller's public key, signed by the instance CA.

    With access_token (IAM database authentication) the token must be one the fake issued and unexpired; the
    certificate is bound to it (the login it stands for) and expires with it at the latest."""
    _inst, ca, err = _connectable(st, r)
    if err:
        return err
    assert ca is not None
    body = r.body or {}
    public_key = body.get("public_key", "")
    if not public_key:
        return _sql_err(400, "Invalid request: public_key is required.", "invalid")
    login = None
    if body.get("access_token"):
        token = st.access_tokens.get(body["access_token"])
        if token is None or token.expires <= time.time():
            return _sql_err(400, "Invalid request: access_token is invalid or expired.", "invalid")
        login = Login(token.principal, token.scopes, dt.datetime.fromtimestamp(token.expires, dt.UTC))
    cert = ca.issue(public_key, r.principal, login)
    if cert is None:
        return _sql_err(400, "Invalid request: public_key is not a PEM RSA public key.", "invalid")
    return 200, {"ephemeralCert": cert}


def sql_op_get(st: State, r: Req) -> Response:
    op = st.poll(r.path_params["operation"])
    if op is None or op.get("targetProject") != r.path_params["project"]:
        return _sql_err(404, "The Cloud SQL operation does not exist.", "operationDoesNotExist")
    return 200, op


HANDLERS: dict[str, t.Callable[[State, Req], Response]] = {
    "serviceusage.services.get": su_get,
    "serviceusage.services.enable": su_enable,
    "serviceusage.services.disable": su_disable,
    "serviceusage.operations.get": lro_get,
    "storage.buckets.get": gcs_get,
    "storage.buckets.insert": gcs_insert,
    "storage.buckets.patch": gcs_patch,
    "storage.buckets.delete": gcs_delete,
    "storage.buckets.getIamPolicy": gcs_get_iam,
    "storage.buckets.setIamPolicy": gcs_set_iam,
    "artifactregistry.projects.locations.repositories.create": ar_create,
    "artifactregistry.projects.locations.repositories.get": ar_get,
    "artifactregistry.projects.locations.repositories.patch": ar_patch,
    "artifactregistry.projects.locations.repositories.delete": ar_delete,
    "artifactregistry.projects.locations.operations.get": lro_get,
    "iam.projects.serviceAccounts.create": iam_sa_create,
    "iam.projects.serviceAccounts.get": iam_sa_get,
    "iam.projects.serviceAccounts.patch": iam_sa_patch,
    "iam.projects.serviceAccounts.delete": iam_sa_delete,
    "iam.projects.serviceAccounts.getIamPolicy": iam_sa_get_iam,
    "iam.projects.serviceAccounts.setIamPolicy": iam_sa_set_iam,
    "cloudresourcemanager.projects.getIamPolicy": crm_get_iam,
    "cloudresourcemanager.projects.setIamPolicy": crm_set_iam,
    "secretmanager.projects.secrets.create": sm_create,
    "secretmanager.projects.secrets.get": sm_get,
    "secretmanager.projects.secrets.patch": sm_patch,
    "secretmanager.projects.secrets.delete": sm_delete,
    "secretmanager.projects.secrets.addVersion": sm_add_version,
    "secretmanager.projects.secrets.versions.list": sm_list_versions,
    "secretmanager.projects.secrets.versions.access": sm_access,
    "secretmanager.projects.secrets.getIamPolicy": sm_get_iam,
    "secretmanager.projects.secrets.setIamPolicy": sm_set_iam,
    "sql.instances.get": sql_instance_get,
    "sql.instances.insert": sql_instance_insert,
    "sql.instances.patch": sql_instance_patch,
    "sql.instances.delete": sql_instance_delete,
    "sql.databases.get": sql_db_get,
    "sql.databases.insert": sql_db_insert,
    "sql.databases.delete": sql_db_delete,
    "sql.users.list": sql_users_list,
    "sql.users.insert": sql_user_insert,
    "sql.users.update": sql_user_update,
    "sql.users.delete": sql_user_delete,
    "sql.backupRuns.insert": sql_backup_insert,
    "sql.backupRuns.list": sql_backup_list,
    "sql.operations.get": sql_op_get,
    "sql.connect.get": sql_connect_get,
    "sql.connect.generateEphemeral": sql_connect_generate_ephemeral,
}

# Methods that only read, although some use POST (IAM's getIamPolicy): they never appear in the write log.
READ_METHODS = {m for m in HANDLERS if m.endswith((".get", ".list", ".getIamPolicy", ".access"))} | {
    "sql.connect.generateEphemeral"  # signs a certificate, changes no resource
}
