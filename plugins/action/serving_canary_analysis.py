# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""serving_canary_analysis runs in the controller's process (see plugin_utils/in_process.py)."""

from __future__ import annotations

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s, serving_analysis
from ansible_collections.mlplatform.mlflow.plugins.plugin_utils.in_process import InProcessAction, run_command


class ActionModule(InProcessAction):
    ARGUMENT_SPEC = serving_analysis.ANALYSIS_SPEC
    ERRORS = (k8s.K8sError, serving_analysis.AnalysisError)

    def work(self, params, check_mode):
        return serving_analysis.run(k8s.connect(params["kubeconfig"], params["context"], run_command), params,
                                    check_mode)
