# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: k8s_secret
short_description: Read one value of a Kubernetes Secret, decoded
version_added: 0.2.0
description:
  - Returns the decoded value of O(key) in the Secret O(_terms[0]) (C(NAMESPACE/NAME)), for inventories that hand a
    generated credential to a client (the admin password mlflow_server generated, to model_serving).
  - Uses the collection's own Kubernetes client (a few milliseconds), not the C(kubernetes) package (about half a
    second to import, paid at every use of a variable that calls the lookup).
options:
  _terms:
    description: The Secret, as C(NAMESPACE/NAME).
    required: true
  key:
    description: The key of the Secret's data to return.
    type: str
    required: true
  kubeconfig:
    description: Path to the kubeconfig; defaults to E(K8S_AUTH_KUBECONFIG), then E(KUBECONFIG), then C(~/.kube/config).
    type: str
  context:
    description: Kubeconfig context; defaults to the current context.
    type: str
  default:
    description:
      - Returned when the Secret or the key does not exist, for example in a check-mode run on an empty cluster,
        before the role that creates the Secret has run. Without it, a missing Secret or key is an error.
    type: str
"""

EXAMPLES = r"""
model_serving_tracking_password: >-
  {{ lookup('mlplatform.mlflow.k8s_secret', 'mlflow/mlflow-credentials', key='admin-password',
     kubeconfig=mlplatform_kubeconfig) }}
"""

RETURN = r"""
_raw:
  description: The decoded value.
  type: list
  elements: str
"""

import base64

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s
from ansible_collections.mlplatform.mlflow.plugins.plugin_utils.in_process import run_command


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1 or terms[0].count("/") != 1:
            raise AnsibleLookupError("k8s_secret: give one Secret as NAMESPACE/NAME")
        namespace, name = terms[0].split("/")
        key = self.get_option("key")
        try:
            client = k8s.connect(self.get_option("kubeconfig") or None, self.get_option("context") or None,
                                 run_command)
            secret = k8s.get(client, {"apiVersion": "v1", "kind": "Secret",
                                      "metadata": {"name": name, "namespace": namespace}})
        except k8s.K8sError as exc:
            raise AnsibleLookupError(f"k8s_secret: {exc}") from exc
        if secret is None or key not in (secret.get("data") or {}):
            if self.get_option("default") is not None:
                return [self.get_option("default")]
            raise AnsibleLookupError(f"k8s_secret: Secret {namespace}/{name} has no key {key!r}"
                                     + ("" if secret else " (the Secret does not exist)"))
        return [base64.b64decode(secret["data"][key]).decode()]
