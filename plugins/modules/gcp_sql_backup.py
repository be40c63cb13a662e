#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_sql_backup
short_description: Take an on-demand Cloud SQL backup, once per description
version_added: 0.1.0
description:
  - Makes sure a successful on-demand backup with the given O(description) exists on a Cloud SQL instance,
    taking one (and waiting for it) when there is none. Use a description that names the occasion, for example
    V(before-mlflow-3.17.2-migration), so that a rerun of the same upgrade does not take a second backup.
  - A backup with that description still running is waited for; a failed one is retried with a new backup.
options:
  instance:
    description: Name of the Cloud SQL instance.
    type: str
    required: true
  description:
    description: Description of the backup; it identifies the backup between runs.
    type: str
    required: true
  lookback:
    description: How many of the most recent backup runs to search for one with O(description).
    type: int
    default: 100
extends_documentation_fragment:
  - mlplatform.mlflow.google
attributes:
  check_mode:
    support: full
    description: Lists the backup runs and reports whether a backup would be taken, taking none.
  diff_mode:
    support: full
    description: Shows the matching backup run (id, status, description) before and after.
author:
  - mlplatform team (@mlplatform)
"""

EXAMPLES = r"""
- name: Back up the MLflow database before running schema migrations
  mlplatform.mlflow.gcp_sql_backup:
    project: my-project
    instance: mlflow
    description: before-mlflow-3.17.2-migration
"""

RETURN = r"""
backup_run:
  description: The backup run (id, status, description, times); empty in check mode when one would be taken.
  returned: always
  type: dict
  sample: {id: "1700000000001", status: SUCCESSFUL, description: before-mlflow-3.17.2-migration}
operations:
  description: Long-running operations waited for.
  returned: when there were any
  type: list
  elements: dict
retries:
  description: Requests that were retried after a transient error or a busy instance.
  returned: when there were any
  type: list
  elements: str
"""

from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import (
    GoogleModule,
    OperationError,
    check_sql_instance_name,
    is_sql_busy,
)

PENDING = ("ENQUEUED", "RUNNING", "SQL_BACKUP_RUN_STATUS_UNSPECIFIED")
VIEW_KEYS = ("id", "status", "description", "type", "endTime")


def pick_backup(runs: list[dict], description: str) -> dict | None:
    """The newest on-demand run with this description that succeeded or may still succeed (None: take one)."""
    usable = ("SUCCESSFUL", *PENDING)
    for item in runs:
        if item.get("type") == "ON_DEMAND" and item.get("description") == description and item.get("status") in usable:
            return item
    return None


def view(run: dict | None) -> dict:
    return {k: run[k] for k in VIEW_KEYS if run and k in run}


def run(module: GoogleModule) -> dict:
    p = module.params
    project = module.require_project()
    module.validate([("instance", check_sql_instance_name(p["instance"]))])
    client = module.client
    base = f"v1/projects/{project}/instances/{p['instance']}/backupRuns"
    resource = f"backup '{p['description']}' of Cloud SQL instance {project}:{p['instance']}"

    def listing() -> list[dict]:
        return (
            client.request("GET", "sqladmin", base, params={"maxResults": p["lookback"]}, resource=resource).get(
                "items"
            )
            or []
        )

    existing = pick_backup(listing(), p["description"])
    if existing and existing.get("status") == "SUCCESSFUL":
        return {"changed": False, "backup_run": existing, "diff": {"before": view(existing), "after": view(existing)}}
    if module.check_mode:
        return {
            "changed": existing is None,
            "backup_run": existing or {},
            "diff": {"before": view(existing), "after": {"description": p["description"]}},
        }
    if existing is None:
        op = client.request(
            "POST", "sqladmin", base, body={"description": p["description"]}, resource=resource, retry_if=is_sql_busy
        )
        client.wait_sql_operation(project, op, resource=resource)
    done = client.poll(
        resource, "sqladmin backup run", p["description"],
        lambda: pick_backup(listing(), p["description"]) or {"status": "MISSING"},
        lambda r: r.get("status") not in PENDING,
    )  # fmt: skip
    if done.get("status") != "SUCCESSFUL":
        raise OperationError(f"{resource} ended with status {done.get('status')}: {done.get('error', {})}")
    return {"changed": existing is None, "backup_run": done, "diff": {"before": view(existing), "after": view(done)}}


def main() -> None:
    module = GoogleModule(
        argument_spec={
            "instance": {"type": "str", "required": True},
            "description": {"type": "str", "required": True},
            "lookback": {"type": "int", "default": 100},
        }
    )
    module.run(run)


if __name__ == "__main__":
    main()
