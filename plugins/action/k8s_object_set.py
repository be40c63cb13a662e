# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""k8s_object_set runs in the controller's process (see plugin_utils/in_process.py)."""

from __future__ import annotations

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s
from ansible_collections.mlplatform.mlflow.plugins.plugin_utils.in_process import InProcessAction, run_command


class ActionModule(InProcessAction):
    ARGUMENT_SPEC = k8s.OBJECT_SET_SPEC
    ERRORS = (k8s.K8sError,)

    def work(self, params, check_mode):
        return k8s.object_set(k8s.connect(params["kubeconfig"], params["context"], run_command), params, check_mode)
