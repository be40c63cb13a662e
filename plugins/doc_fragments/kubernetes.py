# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the k8s_* modules (plugins/module_utils/k8s.py holds the spec)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to the kubeconfig; defaults to E(K8S_AUTH_KUBECONFIG), then E(KUBECONFIG) (a colon-separated list, merged
        as kubectl merges it), then C(~/.kube/config); with none of them, the pod's service account when running in
        a pod.
      - Set it once per play with C(module_defaults) on the action group C(group/mlplatform.mlflow.kubernetes).
      - Supported in a kubeconfig are certificate authorities, client certificates, bearer tokens and token files,
        basic auth and exec credential plugins (such as C(gke-gcloud-auth-plugin)).
    type: path
  context:
    description: Kubeconfig context; defaults to the current context.
    type: str
notes:
  - The modules talk to the API server with a small client of their own (plugins/module_utils/k8s_client.py), not the
    C(kubernetes) Python package, whose import alone costs about half a second per task.
"""
