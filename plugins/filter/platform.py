# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn the roles' variables into the values Kubernetes and MLflow need."""

from __future__ import annotations

import re
from urllib.parse import quote

from ansible.errors import AnsibleFilterError

_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_FACTORS = {None: 1 / 2**20, "Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024**2,
                   "k": 1000 / 2**20, "M": 10**6 / 2**20, "G": 10**9 / 2**20, "T": 10**12 / 2**20}
DRIVERS = {"postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql"}
# How long a connection may take to open, and (PostgreSQL) how soon a connection whose peer vanished is given up:
# TCP keepalives for an idle one, a user timeout for one with unacknowledged data. Without them a connection to a
# database that is gone (a stopped or rescheduled pod whose SYN or packets are dropped, not refused) blocks a server
# thread and its pool slot for minutes, and the server stays stuck after the database is back.
CONNECTION_OPTIONS = {
    "postgresql": "connect_timeout=10&keepalives=1&keepalives_idle=30&keepalives_interval=10&keepalives_count=3"
                  "&tcp_user_timeout=30000",
    "mysql": "connect_timeout=10",
}


def cpu_cores(quantity: object) -> float:
    """A Kubernetes CPU quantity ('500m', '2', 1.5) in cores."""
    match = _CPU.match(str(quantity).strip())
    if not match:
        raise AnsibleFilterError(f"cpu_cores: {quantity!r} is not a Kubernetes CPU quantity such as 500m or 2")
    value = float(match.group(1))
    return value / 1000 if match.group(2) else value


def mebibytes(quantity: object) -> int:
    """A Kubernetes memory quantity ('1536Mi', '2Gi', '1G') in MiB, rounded down."""
    match = _MEMORY.match(str(quantity).strip())
    if not match:
        raise AnsibleFilterError(f"mebibytes: {quantity!r} is not a Kubernetes memory quantity such as 512Mi or 2Gi")
    return int(float(match.group(1)) * _MEMORY_FACTORS[match.group(2)])


def database_uri(engine: str, user: str, password: str, host: str, port: int | str, database: str) -> str:
    """A SQLAlchemy URI with the user and password URL-encoded (a password may hold @ : / % # and spaces), and the
    connection's time limits (CONNECTION_OPTIONS).

    The driver is explicit: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3.
    """
    if engine not in DRIVERS:
        raise AnsibleFilterError(f"database_uri: engine must be one of {sorted(DRIVERS)}, got {engine!r}")
    credentials = quote(str(user), safe="")
    if password:
        credentials += ":" + quote(str(password), safe="")
    return (f"{DRIVERS[engine]}://{credentials}@{host}:{int(port)}/{quote(str(database), safe='')}"
            f"?{CONNECTION_OPTIONS[engine]}")


def allowed_hosts(service: str, namespace: str, extra: list[str] | None = None) -> list[str]:
    """Host names the server accepts: every in-cluster name of its Service (also with any port), plus extra."""
    names = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
             f"{service}.{namespace}.svc.cluster.local", "localhost"]
    hosts = [h for name in names for h in (name, f"{name}:*")]
    for host in extra or []:
        if host and host not in hosts:
            hosts.append(host)
    return hosts


def browser_origins(hosts: list[str], extra: list[str] | None = None) -> list[str]:
    """The CORS origins of the names a browser reaches the server by (its ingress host, the extra allowed hosts),
    over http and https, plus extra. MLflow refuses a state-changing request whose Origin is not among them (the UI
    searches with POST), and accepts localhost origins on its own."""
    origins = [f"{scheme}://{host}" for host in hosts if host for scheme in ("http", "https")]
    return list(dict.fromkeys(origins + [o for o in extra or [] if o]))


def restorable(obj: dict) -> dict:
    """A live object reduced to what re-applying it needs (for rolling back to it)."""
    meta = obj.get("metadata", {})
    dropped = ("deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration")
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in dropped}
    restored = {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                "metadata": {"name": meta["name"], "labels": meta.get("labels") or {}}, "spec": obj.get("spec", {})}
    if meta.get("namespace"):
        restored["metadata"]["namespace"] = meta["namespace"]
    if annotations:
        restored["metadata"]["annotations"] = annotations
    return restored


def k8s_as_applied(definitions: list[dict], set_name: str, namespace: str) -> list[dict]:
    """The objects exactly as k8s_object_set applies them as the set set_name (labels, namespace, order): the one
    transformation both a run and render_manifests.yml use."""
    # Imported here: Ansible loads every filter file to find any one filter, in every task that uses one.
    from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s

    return k8s.apply_order([k8s.with_set_label(d, set_name, namespace) for d in definitions if d])


def serving_plan(models: list[dict], resolved: list[dict], defaults: dict, served: list[dict]) -> list[dict]:
    """Each model entry completed with its defaults, the resolved version, and what is served now.

    `previous_version` is the version served before the last change (kept across runs that change nothing), so a
    rollback knows where to go.
    """
    served_by_name = {d["metadata"]["name"]: d["metadata"].get("annotations") or {} for d in served}
    plan = []
    for entry, result in zip(models, resolved, strict=True):
        model = {**defaults, **entry}
        model["run_id"] = result.get("run_id") or ""
        # A registry version serves models:/NAME/VERSION; a run's model is already pinned by its run ID.
        model["version"] = str(result["version"]) if result.get("version") else f"run-{model['run_id']}"
        model["model_uri"] = result.get("model_uri") or f"models:/{entry['model']}/{result['version']}"
        annotations = served_by_name.get(entry["name"], {})
        served_version = annotations.get("mlplatform.mlflow/model-version")
        model["served_model_uri"] = annotations.get("mlplatform.mlflow/model-uri", "")
        model["version_changed"] = annotations.get("mlplatform.mlflow/model-uri") != model["model_uri"]
        model["previous_version"] = (served_version or "") if model["version_changed"] else \
            annotations.get("mlplatform.mlflow/previous-version", "")
        model["workers"] = int(model.get("workers") or max(1, int(cpu_cores(model["cpu_limit"]))))
        plan.append(model)
    return plan


class FilterModule:
    def filters(self):
        return {"cpu_cores": cpu_cores, "mebibytes": mebibytes, "database_uri": database_uri,
                "allowed_hosts": allowed_hosts,
                "browser_origins": browser_origins,
                "restorable": restorable, "k8s_as_applied": k8s_as_applied,
                "serving_plan": serving_plan}
