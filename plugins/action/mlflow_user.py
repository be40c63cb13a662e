# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mlflow_user runs in the controller's process (see plugin_utils/in_process.py)."""

from __future__ import annotations

from typing import Any, ClassVar

from ansible_collections.mlplatform.mlflow.plugins.module_utils import mlflow
from ansible_collections.mlplatform.mlflow.plugins.plugin_utils.in_process import InProcessAction


class ActionModule(InProcessAction):
    ARGUMENT_SPEC: ClassVar[dict[str, Any]] = {**mlflow.mlflow_argument_spec(), **mlflow.USER_SPEC}
    REQUIRED_TOGETHER = mlflow.MLFLOW_REQUIRED_TOGETHER
    ERRORS = (mlflow.MlflowError,)

    def work(self, params, check_mode):
        return mlflow.keep_user(mlflow.MlflowClient(mlflow.MlflowConnection.from_params(params)), params, check_mode)
