# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a named set of Kubernetes objects with server-side apply, prune what the set no longer holds.

Pure helpers (labels, normalisation, secret masking, ordering) are separate from the API calls so unit tests can
drive them without a cluster. Functions here raise; only modules call fail_json.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import time
from typing import Any

try:
    from kubernetes import config as k8s_config
    from kubernetes.client import ApiClient
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc

SET_LABEL = "mlplatform.mlflow/object-set"
MANAGED_BY = "mlplatform.mlflow"

# Kinds a set may prune, in deletion order. PersistentVolumeClaims are never pruned: they hold data.
DEFAULT_PRUNE_KINDS = [
    "networking.k8s.io/v1/Ingress",
    "autoscaling/v2/HorizontalPodAutoscaler",
    "policy/v1/PodDisruptionBudget",
    "networking.k8s.io/v1/NetworkPolicy",
    "batch/v1/CronJob",
    "apps/v1/Deployment",
    "apps/v1/StatefulSet",
    "v1/Service",
    "v1/ConfigMap",
    "v1/Secret",
    "v1/ServiceAccount",
    "rbac.authorization.k8s.io/v1/RoleBinding",
    "rbac.authorization.k8s.io/v1/Role",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "networking.gke.io/v1/ManagedCertificate",
    "cloud.google.com/v1/BackendConfig",
]

# Applied first so that what depends on them (pods on ServiceAccounts, Secrets, ConfigMaps) finds them.
APPLY_ORDER = ["Namespace", "ServiceAccount", "Role", "RoleBinding", "Secret", "ConfigMap",
               "PersistentVolumeClaim", "Service", "StatefulSet", "Deployment"]

VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid",
                     "selfLink", "deletionGracePeriodSeconds", "deletionTimestamp")


class K8sError(Exception):
    """A Kubernetes API call failed; the message names the object and the API's reason."""


def object_ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {where}{meta.get('name')}"


def with_set_label(definition: dict[str, Any], set_name: str, namespace: str | None) -> dict[str, Any]:
    """A copy of the definition carrying the set label, managed-by label and default namespace."""
    obj = copy.deepcopy(definition)
    meta = obj.setdefault("metadata", {})
    labels = meta.setdefault("labels", {}) or {}
    meta["labels"] = labels
    labels[SET_LABEL] = set_name
    labels.setdefault("app.kubernetes.io/managed-by", MANAGED_BY)
    if namespace and obj.get("kind") != "Namespace" and not meta.get("namespace"):
        meta["namespace"] = namespace
    if obj.get("kind") == "Secret" and "stringData" in obj:
        data = obj.setdefault("data", {})
        for key, value in obj.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    return obj


def apply_order(definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def rank(obj: dict[str, Any]) -> int:
        kind = obj.get("kind", "")
        return APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)

    return sorted(definitions, key=rank)


def normalize(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """The object without fields the server changes on every write, for comparison and diffs."""
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata", {})
    for key in VOLATILE_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    annotations.pop("deployment.kubernetes.io/revision", None)
    if not annotations:
        meta.pop("annotations", None)
    return out


def mask_secret(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """Secret values replaced by a short digest: a diff shows that a value changed, never the value."""
    if obj is None or obj.get("kind") != "Secret":
        return obj
    out = copy.deepcopy(obj)
    for field in ("data", "stringData"):
        if out.get(field):
            out[field] = {k: f"<hidden sha256:{hashlib.sha256(str(v).encode()).hexdigest()[:10]}>"
                          for k, v in out[field].items()}
    return out


def connect(kubeconfig: str | None = None, context: str | None = None) -> DynamicClient:
    try:
        api_client = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
    except Exception as exc:  # kubeconfig missing or unreadable
        raise K8sError(f"cannot load kubeconfig {kubeconfig or '(default)'}: {exc}") from exc
    try:
        return DynamicClient(api_client)
    except Exception as exc:
        host = api_client.configuration.host if isinstance(api_client, ApiClient) else "?"
        raise K8sError(f"cannot reach the Kubernetes API at {host}: {exc}") from exc


def _resource(client: DynamicClient, api_version: str, kind: str):
    try:
        return client.resources.get(api_version=api_version, kind=kind)
    except ResourceNotFoundError:
        return None


def _api_error(exc: Exception, action: str, ref: str) -> K8sError:
    if isinstance(exc, DynamicApiError):
        return K8sError(f"{action} {ref} failed: {exc.status} {exc.reason}: {exc.summary()}")
    return K8sError(f"{action} {ref} failed: {exc}")


def get(client: DynamicClient, obj: dict[str, Any]) -> dict[str, Any] | None:
    resource = _resource(client, obj["apiVersion"], obj["kind"])
    if resource is None:
        raise K8sError(f"{object_ref(obj)}: the cluster does not serve {obj['apiVersion']} {obj['kind']}")
    meta = obj["metadata"]
    try:
        return resource.get(name=meta["name"], namespace=meta.get("namespace")).to_dict()
    except NotFoundError:
        return None
    except Exception as exc:
        raise _api_error(exc, "reading", object_ref(obj)) from exc


def apply(client: DynamicClient, obj: dict[str, Any], field_manager: str, dry_run: bool) -> dict[str, Any]:
    resource = _resource(client, obj["apiVersion"], obj["kind"])
    if resource is None:
        raise K8sError(f"{object_ref(obj)}: the cluster does not serve {obj['apiVersion']} {obj['kind']}")
    kwargs: dict[str, Any] = {"field_manager": field_manager, "force_conflicts": True}
    if dry_run:
        kwargs["dry_run"] = "All"
    try:
        return client.server_side_apply(resource, body=obj, namespace=obj["metadata"].get("namespace"),
                                        **kwargs).to_dict()
    except Exception as exc:
        raise _api_error(exc, "applying", object_ref(obj)) from exc


def list_set(client: DynamicClient, set_name: str, namespace: str | None,
             kinds: list[str]) -> list[dict[str, Any]]:
    """Every object of the given kinds that carries the set label (kinds the cluster lacks are skipped)."""
    found = []
    for kind_ref in kinds:
        api_version, _sep, kind = kind_ref.rpartition("/")
        resource = _resource(client, api_version, kind)
        if resource is None:
            continue
        try:
            items = resource.get(namespace=namespace if resource.namespaced else None,
                                 label_selector=f"{SET_LABEL}={set_name}").to_dict()["items"]
        except Exception as exc:
            raise _api_error(exc, "listing", f"{kind} with label {SET_LABEL}={set_name}") from exc
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
            found.append(item)
    return found


def delete(client: DynamicClient, obj: dict[str, Any], dry_run: bool) -> None:
    """Ask for a deletion with foreground propagation; wait_until_gone() waits for it to finish."""
    resource = _resource(client, obj["apiVersion"], obj["kind"])
    meta = obj["metadata"]
    body = {"propagationPolicy": "Foreground"}
    if dry_run:
        body["dryRun"] = ["All"]
    try:
        resource.delete(name=meta["name"], namespace=meta.get("namespace"), body=body)
    except NotFoundError:
        return
    except Exception as exc:
        raise _api_error(exc, "deleting", object_ref(obj)) from exc


def wait_until_gone(client: DynamicClient, objs: list[dict[str, Any]], timeout: float = 180) -> None:
    """Wait until every object is gone (deletions asked for together terminate together).

    Returning earlier would let a following apply of the same name land on the terminating object, which then
    disappears (seen with serving candidates recreated right after their predecessor's removal).
    """
    deadline = time.monotonic() + timeout
    for obj in objs:
        while get(client, obj) is not None:
            if time.monotonic() > deadline:
                raise K8sError(f"{object_ref(obj)} was still terminating {timeout:.0f} s after its deletion")
            time.sleep(0.5)


def same_identity(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def key(o: dict[str, Any]) -> tuple:
        meta = o.get("metadata", {})
        return (o.get("apiVersion", "").split("/")[0] if "/" in o.get("apiVersion", "") else "",
                o.get("kind"), meta.get("namespace"), meta.get("name"))

    return key(a) == key(b)
