# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a converge's seconds go: every task's wall time, what kind of work it is, written as JSON.

Enabled by benchmarks/bench_converge.py (ANSIBLE_CALLBACKS_ENABLED=converge_profile, CONVERGE_PROFILE=<file>).
A task's time runs from its start to the start of the next task (or the end of the play), so it includes
Ansible's own work for it: templating its arguments, forking the worker, starting a module's Python process.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import action_loader

DOCUMENTATION = """
name: converge_profile
type: aggregate
short_description: per-task wall time and kind of work, as JSON (benchmarks only)
description: Writes the profile of a playbook run to the file named by CONVERGE_PROFILE.
"""


def kind_of(action: str, raw_args: str) -> str:
    """What a task costs, judged from its action and its (untemplated) arguments. A collection module with an
    action plugin of its name runs inside the worker (plugins/action/, in the checkout being profiled)."""
    if action.startswith("mlplatform.mlflow.") and action_loader.has_plugin(action):
        return "collection action, in process (Kubernetes / MLflow API)"
    if action.startswith("kubernetes.core."):
        return "kubernetes.core module (own Python process)"
    if action.startswith("mlplatform.mlflow."):
        return "collection module (own Python process)"
    if "kubernetes.core.k8s" in raw_args:
        return "kubernetes.core lookup (in the worker)"
    if action in ("ansible.builtin.include_tasks", "ansible.builtin.include_role", "ansible.builtin.import_tasks"):
        return "include"
    return "controller only (set_fact, assert, ...)"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "converge_profile"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._loaded = time.monotonic()
        self._tasks: list[dict] = []
        self._first_task = None

    def _close_last(self, now: float) -> None:
        if self._tasks and "seconds" not in self._tasks[-1]:
            self._tasks[-1]["seconds"] = round(now - self._tasks[-1].pop("_start"), 4)

    def v2_playbook_on_task_start(self, task, is_conditional):
        now = time.monotonic()
        self._close_last(now)
        if self._first_task is None:
            self._first_task = now
        action = task.resolved_action or task.action
        self._tasks.append({"name": task.get_name(), "role": task._role.get_name() if task._role else "",
                            "action": action, "kind": kind_of(action, json.dumps(task.args, default=str)),
                            "_start": now})

    def v2_playbook_on_stats(self, stats):
        now = time.monotonic()
        self._close_last(now)
        first = self._first_task or now
        profile = {"callback_loaded_to_first_task_s": round(first - self._loaded, 3),
                   "first_task_to_end_s": round(now - first, 3), "tasks": self._tasks}
        path = os.environ.get("CONVERGE_PROFILE")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(profile, handle, indent=1)
