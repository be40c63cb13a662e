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
  - On the control node (C(ansible_connection=local)) the module's code runs inside Ansible's worker process, without
    starting a Python process of its own.
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
  later_definitions:
    description:
      - Objects of the sets a play applies after this one, checked here and never written. When this set is about
        to write or delete anything, each of them is server-side dry-run first (in O(namespace) unless it names its
        own; in C(default) when that does not exist yet), so an object the API server would refuse stops the run
        before anything changes.
      - Skipped when this set changes nothing (the later set then checks its own objects before it writes) and in
        check mode (the later tasks dry-run their own).
    type: list
    elements: dict
    default: []
  field_variables:
    description:
      - Which variable of the caller sets which field, as C("Kind field"), the field as the API server names it in a
        refusal (C(spec.replicas), C(spec.ports[0].nodePort)) or a prefix of it
        (C(spec.template.spec.containers[0].resources)).
      - When the API server refuses an object (in a dry run or an apply), the message ends with the variables behind
        the refused fields.
    type: dict
    default: {}
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
  wait:
    description:
      - Wait until every Deployment, StatefulSet and DaemonSet of the set runs its newest spec on every replica, all
        available, every Job has succeeded, and every Gateway API HTTPRoute is accepted by its Gateways at its
        newest spec (so new route weights hold when the task returns). A Job that fails, a Deployment past its
        progress deadline or a route its Gateway refuses fails the task at once, with the reason.
      - A workload that did not change and whose status already says so is not waited for, so a run that changes
        nothing returns without waiting. Not done in check mode.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for all workloads together.
    type: int
    default: 300
extends_documentation_fragment:
  - mlplatform.mlflow.kubernetes
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s


def main():
    module = AnsibleModule(argument_spec=k8s.OBJECT_SET_SPEC, supports_check_mode=True)
    try:
        client = k8s.module_client(module)
        result = k8s.object_set(client, module.params, module.check_mode)
    except k8s.K8sError as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
