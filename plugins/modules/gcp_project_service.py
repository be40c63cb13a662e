#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_project_service
short_description: Enable or disable Google Cloud APIs on a project
version_added: 0.1.0
description:
  - Makes sure a set of Google APIs (services such as V(sqladmin.googleapis.com)) is enabled, or disabled,
    on a project, through the Service Usage API, waiting for each enable operation to finish.
  - Only the services listed are touched; services not listed are left as they are.
options:
  services:
    description:
      - Service names, for example V(sqladmin.googleapis.com).
    type: list
    elements: str
    required: true
  state:
    description:
      - V(present) enables the services, V(absent) disables them.
    type: str
    choices: [present, absent]
    default: present
  disable_dependent_services:
    description:
      - With O(state=absent), also disable services that depend on the ones listed (otherwise the API refuses).
    type: bool
    default: false
extends_documentation_fragment:
  - mlplatform.mlflow.google
attributes:
  check_mode:
    support: full
    description: Reads the service states and reports what would change without enabling anything.
  diff_mode:
    support: full
    description: Shows the state of each listed service before and after.
author:
  - mlplatform team (@mlplatform)
"""

EXAMPLES = r"""
- name: Enable the APIs the MLflow platform needs
  mlplatform.mlflow.gcp_project_service:
    project: my-project
    services:
      - sqladmin.googleapis.com
      - secretmanager.googleapis.com
"""

RETURN = r"""
enabled:
  description: Services this run enabled (or would enable in check mode).
  returned: always
  type: list
  elements: str
  sample: [sqladmin.googleapis.com]
disabled:
  description: Services this run disabled (or would disable in check mode).
  returned: always
  type: list
  elements: str
  sample: []
operations:
  description: Long-running operations waited for, with their status, polls and elapsed seconds.
  returned: when there were any
  type: list
  elements: dict
retries:
  description: Requests that were retried after a transient error.
  returned: when there were any
  type: list
  elements: str
"""

from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import (
    GoogleModule,
    check_service_name,
)


def services_to_change(current: dict[str, str], wanted: list[str], state: str) -> list[str]:
    """The services whose state differs from the wanted one (current maps service -> ENABLED/DISABLED)."""
    target = "ENABLED" if state == "present" else "DISABLED"
    return [name for name in wanted if current.get(name) != target]


def run(module: GoogleModule) -> dict:
    p = module.params
    project = module.require_project()
    wanted = list(dict.fromkeys(p["services"]))
    module.validate(("services", check_service_name(name)) for name in wanted)
    client = module.client
    current = {}
    for name in wanted:
        svc = client.request(
            "GET",
            "serviceusage",
            f"v1/projects/{project}/services/{name}",
            resource=f"service {name} on project {project}",
        )
        current[name] = svc.get("state", "DISABLED")
    change = services_to_change(current, wanted, p["state"])
    if not module.check_mode:
        for name in change:
            verb = "enable" if p["state"] == "present" else "disable"
            body = {} if verb == "enable" else {"disableDependentServices": p["disable_dependent_services"]}
            resource = f"service {name} on project {project}"
            op = client.request(
                "POST", "serviceusage", f"v1/projects/{project}/services/{name}:{verb}", body=body, resource=resource
            )
            client.wait_operation("serviceusage", op, resource=resource)
    target = "ENABLED" if p["state"] == "present" else "DISABLED"
    after = {name: (target if name in change else current[name]) for name in wanted}
    return {
        "changed": bool(change),
        "enabled": change if p["state"] == "present" else [],
        "disabled": change if p["state"] == "absent" else [],
        "diff": {"before": current, "after": after},
    }


def main() -> None:
    module = GoogleModule(
        argument_spec={
            "services": {"type": "list", "elements": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "disable_dependent_services": {"type": "bool", "default": False},
        }
    )
    module.run(run)


if __name__ == "__main__":
    main()
