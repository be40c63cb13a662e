#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_object_info
short_description: Read several Kubernetes objects in one call
version_added: 0.2.0
description:
  - Reads every object or list named in O(objects) and returns them under the same keys, so a role reads what its
    preflight needs in one task instead of one task per object.
  - An object that does not exist, or whose kind the cluster does not serve (an optional CRD), reads as V(null).
  - On the control node (C(ansible_connection=local)) the module's code runs inside Ansible's worker process.
author:
  - mlplatform team (@mlplatform)
options:
  objects:
    description:
      - What to read, by a key of your choice. Each value has C(kind), C(api_version) (default V(v1)), C(namespace)
        for namespaced kinds, and either C(name) (one object, or V(null)) or C(label_selector) (a list, maybe
        empty; without either, every object of the kind in the namespace).
    type: dict
    required: true
extends_documentation_fragment:
  - mlplatform.mlflow.kubernetes
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
"""

EXAMPLES = r"""
- name: Read what the preflight checks need
  mlplatform.mlflow.k8s_object_info:
    objects:
      credentials: {kind: Secret, namespace: mlflow, name: mlflow-credentials}
      server: {api_version: apps/v1, kind: Deployment, namespace: mlflow, name: mlflow}
      servicemonitors: {api_version: apiextensions.k8s.io/v1, kind: CustomResourceDefinition,
                        name: servicemonitors.monitoring.coreos.com}
      served: {api_version: apps/v1, kind: Deployment, namespace: mlflow-serving,
               label_selector: app.kubernetes.io/component=model-server}
  register: found
  no_log: true  # the credentials Secret's data
"""

RETURN = r"""
objects:
  description: The objects (or V(null)) and lists, under the keys of O(objects).
  returned: always
  type: dict
  sample: {"server": {"kind": "Deployment", "metadata": {"name": "mlflow"}}, "credentials": null, "served": []}
context:
  description: The kubeconfig context the objects were read through (empty in a pod, with its service account).
  returned: always
  type: str
  sample: gke_mlp-prod_europe-west4_main
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s


def main():
    module = AnsibleModule(argument_spec=k8s.OBJECT_INFO_SPEC, supports_check_mode=True)
    try:
        client = k8s.module_client(module)
        objects = k8s.object_info(client, module.params["objects"])
    except k8s.K8sError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, objects=objects, context=client.settings.context)


if __name__ == "__main__":
    main()
