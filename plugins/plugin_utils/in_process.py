# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module of the collection inside the controller's worker process.

Every play of the collection runs on the control node (ansible_connection=local). There, shipping a module to a
new Python process costs more than its work (about 0.5 s of start-up against milliseconds of API requests), so
the action runs the module's own code (its module_utils) in place, validated against the module's argument spec.
On any other connection it runs the module as usual.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, ClassVar

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase


def run_command(argv: list, env: dict) -> tuple:
    """Start a command on the control node (an exec credential plugin of the kubeconfig): (rc, stdout, stderr)."""
    try:
        done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired as exc:
        return 124, "", f"no answer within {exc.timeout} s"
    return done.returncode, done.stdout, done.stderr


class InProcessAction(ActionBase):
    """Subclasses set ARGUMENT_SPEC (the module's), ERRORS (what work() raises for a failure) and implement work()."""

    _supports_check_mode = True
    _supports_async = False
    ARGUMENT_SPEC: ClassVar[dict[str, Any]] = {}
    REQUIRED_TOGETHER: ClassVar[list[list[str]]] = []
    ERRORS: ClassVar[tuple[type[Exception], ...]] = ()

    def work(self, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if self._connection.transport != "local":
            result.update(self._execute_module(task_vars=task_vars))
            return result
        # Plain JSON types, as a module receives them: templated values are tagged subclasses that YAML diffs refuse,
        # and that the validator's deep copy copies slowly (80 ms a no-op converge, for the Kubernetes manifests).
        arguments = json.loads(json.dumps(self._task.args))
        validated = ArgumentSpecValidator(self.ARGUMENT_SPEC, required_together=self.REQUIRED_TOGETHER).validate(
            arguments)
        if validated.error_messages:
            result.update(failed=True, msg="; ".join(validated.error_messages))
            return result
        params = validated.validated_parameters
        try:
            outcome = self.work(params, bool(self._task.check_mode))
        except self.ERRORS as exc:
            details = exc.details() if hasattr(exc, "details") else {}
            result.update(failed=True, msg=str(exc), **details)
            return result
        if not self._task.diff:
            outcome.pop("diff", None)
        result.update(outcome)
        return result
