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
import re
import time
from typing import Any

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s_client
from ansible_collections.mlplatform.mlflow.plugins.module_utils.k8s_client import Client, K8sError

connect = k8s_client.connect  # what actions call


def module_client(module: Any) -> Client:
    """The client of a module run as a module (off the control node): exec credential plugins through its
    run_command."""
    return connect(module.params["kubeconfig"], module.params["context"],
                   lambda argv, env: module.run_command(argv, environ_update=env, handle_exceptions=False))


SET_LABEL = "mlplatform.mlflow/object-set"
MANAGED_BY = "mlplatform.mlflow"

# Kinds a set may prune, in deletion order. PersistentVolumeClaims are never pruned: they hold data.
DEFAULT_PRUNE_KINDS = [
    "networking.k8s.io/v1/Ingress",
    "gateway.networking.k8s.io/v1/HTTPRoute",
    "gateway.networking.k8s.io/v1/Gateway",
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
    "monitoring.coreos.com/v1/PrometheusRule",
    "networking.gke.io/v1/ManagedCertificate",
    "networking.gke.io/v1/HealthCheckPolicy",
    "networking.gke.io/v1/GCPBackendPolicy",
    "cloud.google.com/v1/BackendConfig",
]

# Applied first so that what depends on them (pods on ServiceAccounts, Secrets, ConfigMaps) finds them.
APPLY_ORDER = ["Namespace", "ServiceAccount", "Role", "RoleBinding", "Secret", "ConfigMap",
               "PersistentVolumeClaim", "Service", "StatefulSet", "Deployment"]

VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid",
                     "selfLink", "deletionGracePeriodSeconds", "deletionTimestamp")


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


def _api_error(exc: K8sError, action: str, ref: str) -> K8sError:
    return K8sError(f"{action} {ref} failed: {exc}", status=exc.status, reason=exc.reason)


def get(client: Client, obj: dict[str, Any]) -> dict[str, Any] | None:
    meta = obj["metadata"]
    try:
        return client.request("GET", client.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]))
    except K8sError as exc:
        if exc.status == 404 and exc.reason != "NotServed":
            return None
        raise _api_error(exc, "reading", object_ref(obj)) from exc


def apply(client: Client, obj: dict[str, Any], field_manager: str, dry_run: bool) -> dict[str, Any]:
    meta = obj["metadata"]
    query = {"fieldManager": field_manager, "force": "true"}
    if dry_run:
        query["dryRun"] = "All"
    try:
        path = client.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        # Server-side apply takes YAML, and JSON is YAML.
        return client.request("PATCH", path, obj, query, content_type="application/apply-patch+yaml")
    except K8sError as exc:
        raise _api_error(exc, "applying (dry run)" if dry_run else "applying", object_ref(obj)) from exc


def list_objects(client: Client, api_version: str, kind: str, namespace: str | None,
                 label_selector: str = "") -> list[dict[str, Any]]:
    """Objects of a kind (in the namespace, when the kind is namespaced); [] when the cluster does not serve it."""
    if client.resource(api_version, kind) is None:
        return []
    path = client.path(api_version, kind, namespace if client.namespaced(api_version, kind) else None)
    try:
        items = client.request("GET", path, query={"labelSelector": label_selector} if label_selector else None)
    except K8sError as exc:
        raise _api_error(exc, "listing", f"{kind} {label_selector}".strip()) from exc
    for item in items.get("items", []):
        item.setdefault("apiVersion", api_version)
        item.setdefault("kind", kind)
    return items.get("items", [])


def list_set(client: Client, set_name: str, namespace: str | None, kinds: list[str]) -> list[dict[str, Any]]:
    """Every object of the given kinds that carries the set label (kinds the cluster lacks are skipped)."""
    found = []
    for kind_ref in kinds:
        api_version, _sep, kind = kind_ref.rpartition("/")
        found.extend(list_objects(client, api_version, kind, namespace, f"{SET_LABEL}={set_name}"))
    return found


def delete(client: Client, obj: dict[str, Any], dry_run: bool) -> None:
    """Ask for a deletion with foreground propagation; wait_until_gone() waits for it to finish."""
    meta = obj["metadata"]
    body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"}
    if dry_run:
        body["dryRun"] = ["All"]
    try:
        client.request("DELETE", client.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]), body)
    except K8sError as exc:
        if exc.status == 404 and exc.reason != "NotServed":
            return
        raise _api_error(exc, "deleting", object_ref(obj)) from exc


# How often a wait reads the object again: a GET over the kept-alive connection costs about 2 ms, and every poll
# period is, on average, half a period added to each wait of a converge.
POLL_SECONDS = 0.25
# A Gateway re-evaluates its routes when its own listeners change (their certificate Secret replaced, say): a
# route's refusal may still turn into acceptance this long after the wait begins; one that lasts is final.
ROUTE_REFUSAL_GRACE_SECONDS = 20.0


def wait_until_gone(client: Client, objs: list[dict[str, Any]], timeout: float = 180) -> None:
    """Wait until every object is gone (deletions asked for together terminate together).

    Returning earlier would let a following apply of the same name land on the terminating object, which then
    disappears (seen with serving candidates recreated right after their predecessor's removal).
    """
    deadline = time.monotonic() + timeout
    for obj in objs:
        while get(client, obj) is not None:
            if time.monotonic() > deadline:
                raise K8sError(f"{object_ref(obj)} was still terminating {timeout:.0f} s after its deletion")
            time.sleep(POLL_SECONDS)


# Workloads a set waits for, and what "ready" means for each.
WAITED_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "HTTPRoute")


def workload_state(obj: dict[str, Any]) -> tuple[str, str]:
    """("ready" | "progressing" | "failed", why) of a Deployment, StatefulSet, DaemonSet or Job from its status.

    Ready means the controller has seen the newest spec (observedGeneration) and every replica runs it and is
    available, with no old replica left; a Job is ready once it succeeded. Other kinds are always ready.
    """
    kind, meta = obj.get("kind"), obj.get("metadata", {})
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    if kind == "Job":
        if status.get("succeeded", 0) > 0 or conditions.get("Complete", {}).get("status") == "True":
            return "ready", "succeeded"
        failed = conditions.get("Failed", {})
        if failed.get("status") == "True":
            return "failed", f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".rstrip(": ")
        return "progressing", f"{status.get('active', 0)} active pod(s)"
    if kind == "HTTPRoute":  # ready once every Gateway it names has accepted its newest spec
        generation = meta.get("generation", 1)
        accepted = [c for parent in status.get("parents") or [] for c in parent.get("conditions") or []
                    if c.get("type") == "Accepted" and c.get("observedGeneration", 0) >= generation]
        refused = [c for c in accepted if c.get("status") != "True"]
        if refused:
            return "failed", f"its Gateway refused it: {refused[0].get('reason')}: {refused[0].get('message', '')}"
        if accepted and len(accepted) >= len(spec.get("parentRefs") or []):
            return "ready", "accepted"
        return "progressing", f"no Gateway has accepted generation {generation} yet"
    if kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        return "ready", ""
    if status.get("observedGeneration", 0) < meta.get("generation", 1):
        return "progressing", "the controller has not seen the newest spec yet"
    if kind == "Deployment":
        progressing = conditions.get("Progressing", {})
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            return "failed", f"exceeded its progress deadline: {progressing.get('message', '')}"
        wanted = spec.get("replicas", 1)
        counts = (status.get("updatedReplicas", 0), status.get("availableReplicas", 0), status.get("replicas", 0))
        done = counts == (wanted, wanted, wanted)
        why = f"{counts[0]} of {wanted} updated, {counts[1]} available, {counts[2]} in all"
    elif kind == "StatefulSet":
        wanted = spec.get("replicas", 1)
        done = (status.get("readyReplicas", 0) == wanted and status.get("updatedReplicas", wanted) == wanted
                and status.get("currentRevision") == status.get("updateRevision"))
        why = f"{status.get('readyReplicas', 0)} of {wanted} ready, revision {status.get('currentRevision')}"
    else:
        wanted = status.get("desiredNumberScheduled", 0)
        done = status.get("updatedNumberScheduled", 0) == wanted and status.get("numberAvailable", 0) == wanted
        why = f"{status.get('numberAvailable', 0)} of {wanted} available"
    return ("ready" if done else "progressing"), why


def job_messages(client: Client, job: dict[str, Any]) -> list[str]:
    """The termination messages the Job's pods wrote (a failed migration says why there)."""
    meta = job["metadata"]
    pods = list_objects(client, "v1", "Pod", meta.get("namespace"), f"job-name={meta['name']}")
    return [status["state"]["terminated"]["message"].strip()
            for pod in pods for status in (pod.get("status") or {}).get("containerStatuses") or []
            if ((status.get("state") or {}).get("terminated") or {}).get("message")]


def wait_ready(client: Client, objs: list[dict[str, Any]], timeout: float) -> None:
    """Wait until every workload among the objects is ready; raise with its state when one fails or time runs out."""
    started = time.monotonic()
    deadline = started + timeout
    for obj in objs:
        if obj.get("kind") not in WAITED_KINDS:
            continue
        while True:
            state, why = workload_state(obj)
            if state == "ready":
                break
            if state == "failed" and obj["kind"] == "HTTPRoute" \
                    and time.monotonic() - started < min(ROUTE_REFUSAL_GRACE_SECONDS, timeout):
                state = "progressing"
            if state == "failed":
                messages = job_messages(client, obj) if obj["kind"] == "Job" else []
                reported = f"; it reported: {messages[-1]}" if messages else ""
                raise K8sError(f"{object_ref(obj)} failed: {why}{reported}")
            if time.monotonic() > deadline:
                raise K8sError(f"{object_ref(obj)} was not ready within {timeout:.0f} s ({why})")
            time.sleep(POLL_SECONDS)
            obj = get(client, obj) or obj


def same_identity(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def key(o: dict[str, Any]) -> tuple:
        meta = o.get("metadata", {})
        return (o.get("apiVersion", "").split("/")[0] if "/" in o.get("apiVersion", "") else "",
                o.get("kind"), meta.get("namespace"), meta.get("name"))

    return key(a) == key(b)


# The options every Kubernetes module of the collection takes; module_defaults set them once per play through the
# action group mlplatform.mlflow.kubernetes.
CONNECTION_SPEC = {
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
}

OBJECT_SET_SPEC = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str"},
    "definitions": {"type": "list", "elements": "dict", "default": []},
    "later_definitions": {"type": "list", "elements": "dict", "default": []},
    "field_variables": {"type": "dict", "default": {}},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "prune": {"type": "bool", "default": True},
    "prune_kinds": {"type": "list", "elements": "str"},
    "field_manager": {"type": "str", "default": MANAGED_BY},
    "wait": {"type": "bool", "default": False},
    "wait_timeout": {"type": "int", "default": 300},
    **CONNECTION_SPEC,
}

OBJECT_INFO_SPEC = {
    "objects": {"type": "dict", "required": True},
    **CONNECTION_SPEC,
}


def definition_problem(definitions: list[dict[str, Any]], option: str = "") -> str:
    for index, definition in enumerate(definitions):
        missing = [f for f in ("apiVersion", "kind") if not definition.get(f)]
        if missing or not (definition.get("metadata") or {}).get("name"):
            return (f"{option}definitions[{index}] lacks {', '.join(missing) or 'metadata.name'}: "
                    "every object needs apiVersion, kind and metadata.name")
    return ""


def _entry(obj: dict[str, Any], action: str) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    return {"kind": obj.get("kind"), "namespace": meta.get("namespace"), "name": meta.get("name"), "action": action}


def _diff(ref: str, before: dict | None, after: dict | None) -> dict[str, str]:
    def text(obj: dict | None) -> str:
        return yaml.safe_dump(mask_secret(obj), default_flow_style=False, sort_keys=True) if obj else ""

    return {"before_header": ref, "after_header": ref, "before": text(before), "after": text(after)}


def _stand_in_dry_run(client: Client, obj: dict[str, Any], field_manager: str) -> None:
    """Validate an object whose namespace does not exist yet: a dry run in the namespace `default` checks its schema
    and field values (the API server rejects a dry run into a missing namespace)."""
    stand_in = copy.deepcopy(obj)
    stand_in["metadata"]["namespace"] = "default"
    try:
        apply(client, stand_in, field_manager, dry_run=True)
    except K8sError as exc:
        raise K8sError(str(exc).replace(object_ref(stand_in), object_ref(obj)), exc.status, exc.reason) from exc


def plan_set(client: Client, desired: list[dict[str, Any]], field_manager: str) -> list[tuple]:
    """(object, live object or None, what the apply would make of it) for every object, from reads and server-side
    dry runs only, so that a rejected object stops the run before any object of the set is written."""
    namespaces: dict[str, bool] = {}

    def namespace_exists(name: str) -> bool:
        if name not in namespaces:
            namespaces[name] = get(client, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}) \
                is not None
        return namespaces[name]

    plans = []
    for obj in desired:
        namespace = obj["metadata"].get("namespace")
        if namespace and client.namespaced(obj["apiVersion"], obj["kind"]) and not namespace_exists(namespace):
            _stand_in_dry_run(client, obj, field_manager)
            plans.append((obj, None, obj))
            continue
        current = get(client, obj)
        plans.append((obj, current, apply(client, obj, field_manager, dry_run=True)))
    return plans


# A field the API server refuses, as its Status message names it: "spec.ports[0].nodePort: Invalid value: ...".
_REFUSED_FIELD = re.compile(r"([A-Za-z0-9_.\[\]-]+): (?:Invalid|Required|Unsupported|Duplicate|Forbidden|Too long|"
                            r"Too many|Not found)")


def refused_variables(message: str, field_variables: dict[str, str]) -> list[str]:
    """The variables behind the fields an API refusal names. field_variables maps "Kind field" (a field path or a
    prefix of one, as the API reports it: "Deployment spec.replicas") to the variable a role sets that field from."""
    kind = re.search(r"\b(?:applying \(dry run\)|applying) (\w+) ", message)
    fields = _REFUSED_FIELD.findall(message)
    named = []
    for key, variable in field_variables.items():
        key_kind, _sep, prefix = key.partition(" ")
        refused = any(f == prefix or f.startswith((prefix + ".", prefix + "[")) for f in fields)
        if kind and kind.group(1) == key_kind and refused:
            named.append(variable)
    return sorted(set(named))


def object_set(client: Client, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Apply a set (server-side, one field manager), prune what it no longer holds, optionally wait for its workloads.

    A refusal by the API server names the variables behind the refused fields (params field_variables).
    """
    try:
        return _object_set(client, params, check_mode)
    except K8sError as exc:
        named = refused_variables(str(exc), params.get("field_variables") or {})
        if not named:
            raise
        raise K8sError(f"{exc} (set by {', '.join(named)})", exc.status, exc.reason) from exc


def _object_set(client: Client, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Apply a set (server-side, one field manager), prune what it no longer holds, optionally wait for its workloads.

    Every object is read and applied as a dry run first, and so are the later sets' objects (later_definitions) when
    this set is about to write; only then are the objects whose dry run differs from what the cluster holds applied,
    in dependency order. The live objects' status tells whether a workload is ready, so a set where nothing changed
    and every workload is ready returns without waiting.
    """
    problem = definition_problem(params["definitions"]) or definition_problem(params["later_definitions"], "later_")
    if problem:
        raise K8sError(problem)
    objects, diffs, changed, desired, live, plans, unwanted = [], [], [], [], [], [], []
    if params["state"] == "present":
        desired = apply_order([with_set_label(d, params["name"], params["namespace"]) for d in params["definitions"]])
        plans = [(obj, current, planned, normalize(current), normalize(planned))
                 for obj, current, planned in plan_set(client, desired, params["field_manager"])]
    if params["state"] == "absent" or params["prune"]:
        unwanted = [obj for obj in list_set(client, params["name"], params["namespace"],
                                            params["prune_kinds"] or DEFAULT_PRUNE_KINDS)
                    if not any(same_identity(obj, d) for d in desired)]
    writes = unwanted or any(plan[3] != plan[4] for plan in plans)  # (object, live, planned, before, after)
    if writes and params["later_definitions"] and not check_mode:
        # Dry runs only: the namespace defaults as for this set's objects; the label is never written.
        later = [with_set_label(d, params["name"], params["namespace"]) for d in params["later_definitions"]]
        plan_set(client, apply_order(later), params["field_manager"])
    for obj, current, _planned, before, after in plans:
        ref = object_ref(obj)
        if before == after:
            objects.append(_entry(obj, "unchanged"))
            live.append(current)
            continue
        if not check_mode:
            applied = apply(client, obj, params["field_manager"], dry_run=False)
            after = normalize(applied)
            live.append(applied)
        objects.append(_entry(obj, "created" if current is None else "updated"))
        changed.append(ref)
        diffs.append(_diff(ref, before, after))
    for obj in unwanted:
        delete(client, obj, dry_run=check_mode)
        ref = object_ref(obj)
        objects.append(_entry(obj, "deleted"))
        changed.append(ref)
        diffs.append(_diff(ref, normalize(obj), None))
    if not check_mode:
        wait_until_gone(client, unwanted)
    if params["wait"] and not check_mode:
        wait_ready(client, live, params["wait_timeout"])
    return {"changed": bool(changed), "objects": objects, "changed_objects": changed, "diff": diffs}


def object_info(client: Client, objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Several reads in one call: each key names an object (name: the object or None) or a list (label_selector)."""
    found: dict[str, Any] = {}
    for key, ref in objects.items():
        api_version, kind = ref.get("api_version", "v1"), ref.get("kind")
        if not kind:
            raise K8sError(f"objects.{key}: give kind (and api_version unless it is v1)")
        if ref.get("name"):
            obj = {"apiVersion": api_version, "kind": kind,
                   "metadata": {"name": ref["name"], "namespace": ref.get("namespace")}}
            if client.resource(api_version, kind) is None:
                found[key] = None  # the cluster does not serve the kind (an optional CRD): nothing to find
            else:
                found[key] = get(client, obj)
        else:
            found[key] = list_objects(client, api_version, kind, ref.get("namespace"), ref.get("label_selector", ""))
    return found
