#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_object_set
short_description: Apply a named set of Kubernetes objects and prune what the set no longer holds
version_added: 0.1.0
description:
  - Applies every object of O(definitions) with server-side apply under one field manager, in dependency order
    (Namespace, ServiceAccount, Secret, ConfigMap, Service, then workloads).
  - Every object is labelled C(mlplatform.mlflow/object-set=<name>); objects of the O(prune_kinds) that carry the
    label but are no longer in O(definitions) are deleted, so turning a feature off removes its objects.
  - What would change is decided with a server-side dry run against the live objects, so C(changed) and the diff
    are exact in check mode too, and check mode sends no write.
  - Secret values never appear in the diff or the result; a digest shows that a value changed.
author:
  - mlplatform team (@mlplatform)
options:
  name:
    description: Name of the set; the value of the C(mlplatform.mlflow/object-set) label.
    type: str
    required: true
  namespace:
    description: Namespace for namespaced objects that name none, and where pruning looks.
    type: str
  definitions:
    description: The objects of the set (each a full Kubernetes object). Required when O(state=present).
    type: list
    elements: dict
    default: []
  state:
    description: C(present) applies the set and prunes; C(absent) deletes every object of the set.
    type: str
    choices: [present, absent]
    default: present
  prune:
    description: Delete objects of the set that O(definitions) no longer holds.
    type: bool
    default: true
  prune_kinds:
    description:
      - Kinds, as C(apiVersion/Kind), searched for objects to prune. Kinds the cluster does not serve are skipped.
      - PersistentVolumeClaims are deliberately absent from the default, because they hold data.
    type: list
    elements: str
  field_manager:
    description: Server-side apply field manager.
    type: str
    default: mlplatform.mlflow
  kubeconfig:
    description: Path to the kubeconfig; defaults to C(K8S_AUTH_KUBECONFIG), then C(KUBECONFIG), then C(~/.kube/config).
    type: path
  context:
    description: Kubeconfig context; defaults to C(K8S_AUTH_CONTEXT), then the current context.
    type: str
requirements:
  - kubernetes >= 24.2.0 (Python client)
attributes:
  check_mode:
    support: full
    description: Decided with a server-side dry run; nothing is written.
  diff_mode:
    support: full
    description: One diff per object that would change, Secret values masked.
"""

EXAMPLES = r"""
- name: Apply the tracking server's objects and prune the rest
  mlplatform.mlflow.k8s_object_set:
    name: mlflow-server
    namespace: mlflow
    definitions: "{{ lookup('ansible.builtin.template', 'objects.yaml.j2') | ansible.builtin.from_yaml_all }}"

- name: Delete everything the set holds
  mlplatform.mlflow.k8s_object_set:
    name: mlflow-server
    namespace: mlflow
    state: absent
"""

RETURN = r"""
objects:
  description: One entry per object applied or deleted, with what happened to it.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "Deployment", "namespace": "mlflow", "name": "mlflow", "action": "updated"}]
changed_objects:
  description: C(Kind namespace/name) of every object that changed (or would change in check mode).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None


def _yaml(obj):
    return yaml.safe_dump(k8s.mask_secret(obj), default_flow_style=False, sort_keys=True) if obj else ""


def _entry(obj, action):
    meta = obj.get("metadata", {})
    return {"kind": obj.get("kind"), "namespace": meta.get("namespace"), "name": meta.get("name"), "action": action}


def _plan(client, obj, field_manager, check_mode, new_namespaces):
    """(before, after) of one object; in check mode `after` comes from a dry run."""
    before = k8s.normalize(k8s.get(client, obj)) if obj["metadata"].get("namespace") not in new_namespaces else None
    if check_mode and obj["metadata"].get("namespace") in new_namespaces:
        return before, k8s.normalize(obj)  # its namespace does not exist yet: a dry run cannot be sent
    planned = k8s.normalize(k8s.apply(client, obj, field_manager, dry_run=True))
    if planned == before:
        return before, before
    if check_mode:
        return before, planned
    return before, k8s.normalize(k8s.apply(client, obj, field_manager, dry_run=False))


def run(module, client):
    p = module.params
    objects, diffs, changed = [], [], []
    desired = []
    if p["state"] == "present":
        desired = k8s.apply_order([k8s.with_set_label(d, p["name"], p["namespace"]) for d in p["definitions"]])
        new_namespaces = set()
        for obj in desired:
            ref = k8s.object_ref(obj)
            before, after = _plan(client, obj, p["field_manager"], module.check_mode, new_namespaces)
            if obj["kind"] == "Namespace" and before is None:
                new_namespaces.add(obj["metadata"]["name"])
            if before == after:
                objects.append(_entry(obj, "unchanged"))
                continue
            objects.append(_entry(obj, "created" if before is None else "updated"))
            changed.append(ref)
            diffs.append({"before_header": ref, "after_header": ref, "before": _yaml(before), "after": _yaml(after)})
    if p["state"] == "absent" or p["prune"]:
        kinds = p["prune_kinds"] or k8s.DEFAULT_PRUNE_KINDS
        deleted = []
        for obj in k8s.list_set(client, p["name"], p["namespace"], kinds):
            if any(k8s.same_identity(obj, d) for d in desired):
                continue
            k8s.delete(client, obj, dry_run=module.check_mode)
            deleted.append(obj)
            ref = k8s.object_ref(obj)
            objects.append(_entry(obj, "deleted"))
            changed.append(ref)
            diffs.append({"before_header": ref, "after_header": ref,
                          "before": _yaml(k8s.normalize(obj)), "after": ""})
        if not module.check_mode:
            k8s.wait_until_gone(client, deleted)
    return objects, changed, diffs


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            namespace=dict(type="str"),
            definitions=dict(type="list", elements="dict", default=[]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            prune=dict(type="bool", default=True),
            prune_kinds=dict(type="list", elements="str"),
            field_manager=dict(type="str", default="mlplatform.mlflow"),
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    if not k8s.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(k8s.KUBERNETES_IMPORT_ERROR))
    for index, definition in enumerate(module.params["definitions"]):
        missing = [f for f in ("apiVersion", "kind") if not definition.get(f)]
        if missing or not (definition.get("metadata") or {}).get("name"):
            module.fail_json(msg=f"definitions[{index}] lacks {', '.join(missing) or 'metadata.name'}: "
                                 "every object needs apiVersion, kind and metadata.name")
    kubeconfig = module.params["kubeconfig"] or os.environ.get("K8S_AUTH_KUBECONFIG") or os.environ.get("KUBECONFIG")
    context = module.params["context"] or os.environ.get("K8S_AUTH_CONTEXT")
    try:
        client = k8s.connect(kubeconfig, context)
        objects, changed, diffs = run(module, client)
    except k8s.K8sError as exc:
        module.fail_json(msg=str(exc))
    result = {"changed": bool(changed), "objects": objects, "changed_objects": changed}
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
