# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a Kubernetes module of the collection inside the controller's worker process.

Every play of the collection runs on the control node (ansible_connection=local). There, shipping the module to a
new Python process costs more than its work (about 0.7 s of start-up against a few milliseconds of API requests),
so the action runs the module's own code (module_utils/k8s.py) in place, with the module's argument spec. On any
other connection it runs the module as usual.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s


class KubernetesAction(ActionBase):
    """Subclasses set ARGUMENT_SPEC (the module's) and implement work()."""

    _supports_check_mode = True
    _supports_async = False
    ARGUMENT_SPEC: ClassVar[dict[str, Any]] = {}

    def work(self, client: k8s.Client, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if self._connection.transport != "local":
            result.update(self._execute_module(task_vars=task_vars))
            return result
        validated = ArgumentSpecValidator(self.ARGUMENT_SPEC).validate(self._task.args)
        if validated.error_messages:
            result.update(failed=True, msg="; ".join(validated.error_messages))
            return result
        params = validated.validated_parameters
        try:
            client = k8s.connect(params.get("kubeconfig"), params.get("context"))
            outcome = self.work(client, params, bool(self._task.check_mode))
        except k8s.K8sError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        if not self._task.diff:
            outcome.pop("diff", None)
        result.update(outcome)
        return result
