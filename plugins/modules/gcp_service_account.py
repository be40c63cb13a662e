#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_service_account
short_description: Manage a Google service account
version_added: 0.1.0
description:
  - Creates a Google service account from its account ID, or updates its display name and description with a
    PATCH and an update mask.
  - IAM is eventually consistent. After a create the module waits (at most O(visibility_timeout) seconds)
    until the new account answers several GETs in a row, so the next task can bind roles to it.
  - A create answered with 409 (the account exists but the GET did not see it yet) is treated as success.
options:
  name:
    description: Account ID (6-30 characters, the part before C(@)) or the full e-mail.
    type: str
    required: true
  display_name:
    description: Display name. Left as it is when not set.
    type: str
  description:
    description: Description. Left as it is when not set.
    type: str
  state:
    description: V(present) creates or updates; V(absent) deletes the account.
    type: str
    choices: [present, absent]
    default: present
  visibility_timeout:
    description: Seconds to wait, after a create, for the new account to be visible to IAM.
    type: int
    default: 60
extends_documentation_fragment:
  - mlplatform.mlflow.google
attributes:
  check_mode:
    support: full
    description: Reads the account and reports the create, PATCH or delete it would send, sending none.
  diff_mode:
    support: full
    description: Shows e-mail, display name and description before and after.
author:
  - mlplatform team (@mlplatform)
"""

EXAMPLES = r"""
- name: Create the service account of the MLflow server
  mlplatform.mlflow.gcp_service_account:
    project: my-project
    name: mlflow-server
    display_name: MLflow tracking server
"""

RETURN = r"""
email:
  description: The account's e-mail.
  returned: always
  type: str
  sample: mlflow-server@my-project.iam.gserviceaccount.com
service_account:
  description: The account as the API returned it (the planned state in check mode).
  returned: when state is present
  type: dict
retries:
  description: Requests that were retried after a transient error.
  returned: when there were any
  type: list
  elements: str
"""

from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import (
    GoogleApiError,
    GoogleError,
    GoogleModule,
    check_account_id,
)

VIEW_KEYS = ("email", "displayName", "description")


def update_fields(current: dict, p: dict) -> dict:
    """API field -> new value for each option set that differs from the account."""
    out = {}
    for option, field in (("display_name", "displayName"), ("description", "description")):
        if p[option] is not None and p[option] != current.get(field, ""):
            out[field] = p[option]
    return out


def view(sa: dict | None) -> dict:
    return {k: sa.get(k, "") for k in VIEW_KEYS} if sa else {}


def wait_visible(module: GoogleModule, path: str, resource: str, timeout: int, needed: int = 2) -> dict:
    """Poll GET until the account answers `needed` times in a row (IAM reads are eventually consistent)."""
    client = module.client
    start = client.clock()
    streak = 0
    sa: dict | None = None
    while streak < needed:
        found = client.get("iam", path, resource=resource)
        streak = streak + 1 if found else 0
        sa = found or sa
        if streak >= needed:
            break
        if client.clock() - start > timeout:
            raise GoogleError(f"{resource} was created but is still not visible to IAM after {timeout}s")
        client.sleep(1.0)
    return sa or {}


def run(module: GoogleModule) -> dict:
    p = module.params
    project = module.require_project()
    account_id = p["name"].split("@", 1)[0]
    module.validate([("name", check_account_id(account_id))])
    if "@" in p["name"] and p["name"].lower() != f"{account_id}@{project}.iam.gserviceaccount.com":
        module.fail(f"option name: {p['name']} is not an account of project {project}")
    email = f"{account_id}@{project}.iam.gserviceaccount.com"
    path = f"v1/projects/{project}/serviceAccounts/{email}"
    resource = f"service account {email}"
    client = module.client
    current = client.get("iam", path, resource=resource)

    if p["state"] == "absent":
        if current and not module.check_mode:
            client.request("DELETE", "iam", path, resource=resource)
        return {"changed": bool(current), "email": email, "diff": {"before": view(current), "after": {}}}

    if current is None:
        sa_body = {
            k: v for k, v in (("displayName", p["display_name"]), ("description", p["description"])) if v is not None
        }
        planned = dict(sa_body, email=email)
        if module.check_mode:
            return {
                "changed": True,
                "email": email,
                "service_account": planned,
                "diff": {"before": {}, "after": view(planned)},
            }
        created = True
        try:
            client.request(
                "POST", "iam", f"v1/projects/{project}/serviceAccounts",
                body={"accountId": account_id, "serviceAccount": sa_body}, resource=resource,
            )  # fmt: skip
        except GoogleApiError as err:
            if err.status != 409:  # 409: it exists, the GET above just did not see it yet
                raise
            created = False
        current = wait_visible(module, path, resource, p["visibility_timeout"])
    else:
        created = False

    changes = update_fields(current, p)
    after = {**current, **changes}
    if changes and not module.check_mode:
        after = client.request(
            "PATCH", "iam", path, resource=resource,
            body={"serviceAccount": changes, "updateMask": ",".join(sorted(changes))},
        )  # fmt: skip
    before = {} if created else view(current)
    return {
        "changed": created or bool(changes),
        "email": email,
        "service_account": after,
        "diff": {"before": before, "after": view(after)},
    }


def main() -> None:
    module = GoogleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "display_name": {"type": "str"},
            "description": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "visibility_timeout": {"type": "int", "default": 60},
        }
    )
    module.run(run)


if __name__ == "__main__":
    main()
