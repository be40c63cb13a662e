"""The sync step of the External Secrets Operator, played by the test (the operator itself does not run here).

It does what external-secrets v2.9.0 does for an ExternalSecret with creationPolicy Owner and a SecretStore of the
gcpsm provider (pkg/controllers/externalsecret/externalsecret_controller.go, *_template.go, applyOwnership):
  - an existing target Secret without the "managed" label first gets that label (and is adopted, not replaced);
  - the Secret's data is cleared (creationPolicy is not Merge), the fetched keys are inserted (template mergePolicy
    Merge), then the template's data (rendered; here only literals, which the Go engine returns unchanged) and
    the template's labels are merged in;
  - the ExternalSecret becomes the Secret's controller owner, the created-by and managed labels and the data-hash
    annotation are set;
  - the status gets Ready=True (SecretSynced), refreshTime and syncedResourceVersion "<generation>-<hash of meta>".
Values are read from the GCP fake's Secret Manager state (latest enabled version), in process.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import threading
import time
import typing as t

from kubernetes import client, config
from kubernetes.client.rest import ApiException

GROUP, VERSION = "external-secrets.io", "v1"
LABEL_MANAGED = "reconcile.external-secrets.io/managed"
LABEL_OWNER = "reconcile.external-secrets.io/created-by"
ANNOTATION_DATA_HASH = "reconcile.external-secrets.io/data-hash"


def go_format(value: t.Any) -> str:
    """Go's fmt %+v for the shapes ESO hashes: strings, maps (keys sorted, as fmt sorts them) and []byte."""
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def object_hash(text: str) -> str:
    """esutils.ObjectHash: sha3-224 of the %+v text."""
    return hashlib.sha3_224(text.encode()).hexdigest()


def resource_version(meta: dict) -> str:
    """ctrlutil.GetResourceVersion: "<generation>-<ObjectHash(struct{annotations, labels})>"."""
    text = (f"{{annotations:{go_format(meta.get('annotations') or {})} "
            f"labels:{go_format(meta.get('labels') or {})}}}")
    return f"{meta.get('generation', 0)}-{object_hash(text)}"


class FakeExternalSecretsOperator:
    def __init__(self, kubeconfig: str, read_secret: t.Callable[[str, str], bytes]) -> None:
        """read_secret(project, secret_id) returns the latest enabled version's bytes (KeyError when absent)."""
        api = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.read_secret = read_secret
        self.synced: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- one reconcile
    def reconcile(self, namespace: str, name: str) -> bool:
        """Sync one ExternalSecret if its generation or metadata changed since the last sync; True if it synced."""
        es = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "externalsecrets", name)
        wanted_version = resource_version(es["metadata"])
        secret_name = es["spec"]["target"].get("name") or name
        try:
            existing = self.core.read_namespaced_secret(secret_name, namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            existing = None
        if es.get("status", {}).get("syncedResourceVersion") == wanted_version and existing is not None:
            return False
        assert es["spec"]["target"].get("creationPolicy", "Owner") == "Owner", "only creationPolicy Owner is played"

        store_ref = es["spec"]["secretStoreRef"]
        if store_ref.get("kind", "SecretStore") == "SecretStore":
            store = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "secretstores",
                                                             store_ref["name"])
        else:
            store = self.custom.get_cluster_custom_object(GROUP, VERSION, "clustersecretstores", store_ref["name"])
        project = store["spec"]["provider"]["gcpsm"]["projectID"]
        data_map = {item["secretKey"]: self.read_secret(project, item["remoteRef"]["key"])
                    for item in es["spec"].get("data", [])}

        if existing is not None and (existing.metadata.labels or {}).get(LABEL_MANAGED) != "true":
            # First pass on an unmanaged Secret: label it, then reconcile again (ESO requeues).
            self.core.patch_namespaced_secret(secret_name, namespace, {"metadata": {"labels": {LABEL_MANAGED: "true"}}})
            existing = self.core.read_namespaced_secret(secret_name, namespace)

        template = es["spec"]["target"].get("template")
        data: dict[str, bytes] = dict(data_map) if not template or template.get("mergePolicy") == "Merge" else {}
        labels = dict(existing.metadata.labels or {}) if existing is not None else {}
        annotations = dict(existing.metadata.annotations or {}) if existing is not None else {}
        secret_type = existing.type if existing is not None else "Opaque"
        if template:
            for key, value in (template.get("data") or {}).items():
                assert "{{" not in value, f"template key {key} is not a literal; this fake renders literals only"
                data[key] = value.encode()
            labels.update((template.get("metadata") or {}).get("labels") or {})
            annotations.update((template.get("metadata") or {}).get("annotations") or {})
            secret_type = template.get("type") or secret_type
        else:
            labels.update(es["metadata"].get("labels") or {})
            annotations.update(es["metadata"].get("annotations") or {})
        owners = list(existing.metadata.owner_references or []) if existing is not None else []
        controller = [o for o in owners if o.controller]
        if controller and not (controller[0].kind == "ExternalSecret" and controller[0].name == name):
            raise AssertionError(f"Secret {secret_name} is controlled by {controller[0].kind}/{controller[0].name}")
        owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ExternalSecret", "name": name,
                 "uid": es["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
        labels[LABEL_OWNER] = object_hash(f"{namespace}/{name}")
        labels[LABEL_MANAGED] = "true"
        annotations[ANNOTATION_DATA_HASH] = object_hash(go_format(data))
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": namespace, "labels": labels, "annotations": annotations,
                         "ownerReferences": [owner]},
            "type": secret_type,
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        manager = f"externalsecrets.external-secrets.io/{name}"
        if existing is None:
            self.core.create_namespaced_secret(namespace, body, field_manager=manager)
        else:
            body["metadata"]["resourceVersion"] = existing.metadata.resource_version
            self.core.replace_namespaced_secret(secret_name, namespace, body, field_manager=manager)

        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced",
                            "message": "secret synced", "lastTransitionTime": now}],
            "refreshTime": now,
            "syncedResourceVersion": wanted_version,
            "binding": {"name": secret_name},
        }}
        self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "externalsecrets", name, status)
        self.synced.append(f"{namespace}/{name}@{wanted_version.split('-', maxsplit=1)[0]}")
        return True

    # ---- the controller loop
    def _loop(self, namespace: str) -> None:
        while not self._stop.is_set():
            try:
                listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "externalsecrets")
                for item in listing.get("items", []):
                    self.reconcile(namespace, item["metadata"]["name"])
            except Exception as err:  # noqa: BLE001 - reported to the test, which asserts there were none
                self.errors.append(repr(err))
            self._stop.wait(0.5)

    def __call__(self, namespace: str) -> FakeExternalSecretsOperator:
        self._namespace = namespace
        return self

    def __enter__(self) -> FakeExternalSecretsOperator:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(self._namespace,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        time.sleep(0)
