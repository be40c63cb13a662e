#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_sql_database
short_description: Manage a database in a Cloud SQL instance
version_added: 0.1.0
description:
  - Creates (or deletes) a database in an existing Cloud SQL instance and waits for the operation.
  - The character set and collation are fixed at creation; a difference on an existing database is an error.
  - A request answered with 409 C(operationInProgress) (another operation runs on the instance) is retried.
options:
  instance:
    description: Name of the Cloud SQL instance.
    type: str
    required: true
  name:
    description: Database name.
    type: str
    required: true
  charset:
    description: Character set (the engine's default when not set - V(UTF8) on PostgreSQL, V(utf8mb4) on MySQL).
    type: str
  collation:
    description: Collation (the engine's default when not set).
    type: str
  state:
    description: V(present) creates the database; V(absent) drops it with all its data.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - mlplatform.mlflow.google
attributes:
  check_mode:
    support: full
    description: Reads the database and reports the create or delete it would send, sending none.
  diff_mode:
    support: full
    description: Shows name, charset and collation before and after.
author:
  - mlplatform team (@mlplatform)
"""

EXAMPLES = r"""
- name: Create the MLflow database
  mlplatform.mlflow.gcp_sql_database:
    project: my-project
    instance: mlflow
    name: mlflow
"""

RETURN = r"""
database:
  description: The database as the API returned it (the planned state in check mode).
  returned: when state is present
  type: dict
  sample: {name: mlflow, charset: UTF8, collation: en_US.UTF8}
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

import re

from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import (
    GoogleApiError,
    GoogleModule,
    adopt_on_conflict,
    check_sql_instance_name,
    is_sql_busy,
)

VIEW_KEYS = ("name", "charset", "collation")


def mismatches(current: dict, p: dict) -> list[str]:
    """Options set that differ from the existing database (they cannot be changed in place)."""
    return [
        f"{option} is {current.get(option)}, not {p[option]}"
        for option in ("charset", "collation")
        if p[option] is not None and p[option].lower() != str(current.get(option, "")).lower()
    ]


def view(db: dict | None) -> dict:
    return {k: db[k] for k in VIEW_KEYS if db and k in db}


def run(module: GoogleModule) -> dict:
    p = module.params
    project = module.require_project()
    name_problem = (
        None
        if re.match(r"^[A-Za-z0-9_][A-Za-z0-9_$-]{0,62}$", p["name"])
        else f"'{p['name']}' is not a valid database name"
    )
    module.validate([("instance", check_sql_instance_name(p["instance"])), ("name", name_problem)])
    client = module.client
    base = f"v1/projects/{project}/instances/{p['instance']}/databases"
    resource = f"database {p['name']} in Cloud SQL instance {project}:{p['instance']}"
    current = client.get("sqladmin", f"{base}/{p['name']}", resource=resource)

    if p["state"] == "absent":
        if current and not module.check_mode:
            op = client.request("DELETE", "sqladmin", f"{base}/{p['name']}", resource=resource, retry_if=is_sql_busy)
            client.wait_sql_operation(project, op, resource=resource)
        return {"changed": bool(current), "diff": {"before": view(current), "after": {}}}

    if current is None:
        body = {k: p[k] for k in VIEW_KEYS if p[k] is not None}
        if module.check_mode:
            return {"changed": True, "database": body, "diff": {"before": {}, "after": view(body)}}
        try:
            op = client.request("POST", "sqladmin", base, body=body, resource=resource, retry_if=is_sql_busy)
        except GoogleApiError as err:
            current = adopt_on_conflict(err, lambda: client.get("sqladmin", f"{base}/{p['name']}", resource=resource))
        else:
            client.wait_sql_operation(project, op, resource=resource)
            created = client.request("GET", "sqladmin", f"{base}/{p['name']}", resource=resource)
            return {"changed": True, "database": created, "diff": {"before": {}, "after": view(created)}}

    problems = mismatches(current, p)
    if problems:
        module.fail(f"{resource} cannot be changed in place: {'; '.join(problems)}")
    return {"changed": False, "database": current, "diff": {"before": view(current), "after": view(current)}}


def main() -> None:
    module = GoogleModule(
        argument_spec={
            "instance": {"type": "str", "required": True},
            "name": {"type": "str", "required": True},
            "charset": {"type": "str"},
            "collation": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        }
    )
    module.run(run)


if __name__ == "__main__":
    main()
