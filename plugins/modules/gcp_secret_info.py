#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_secret_info
short_description: Tell whether Secret Manager secrets exist and have an enabled version, never reading values
version_added: 0.1.0
description:
  - Reads each named secret and the list of its enabled versions (no value is accessed).
  - Read-only twin of M(mlplatform.mlflow.gcp_secret); used by the mlflow_server role to check, before it renders an
    ExternalSecret, that every secret the External Secrets Operator will read is there.
options:
  names:
    description: Secret IDs (letters, digits, C(-) and C(_)).
    type: list
    elements: str
    required: true
extends_documentation_fragment:
  - mlplatform.mlflow.google
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
    details: Read-only; there is never a difference to show.
author:
  - mlplatform team (@mlplatform)
"""

EXAMPLES = r"""
- name: Check the secrets an ExternalSecret reads
  mlplatform.mlflow.gcp_secret_info:
    project: my-project
    names: [mlflow-db-password, mlflow-admin-password, mlflow-flask-secret-key]
  register: found

- name: Refuse when one is missing or empty
  ansible.builtin.assert:
    that: found.missing | length == 0 and found.without_version | length == 0
"""

RETURN = r"""
secrets:
  description: One entry per name, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Secret ID as given.
      type: str
    resource:
      description: Full resource name (carries the project number); empty when the secret does not exist.
      type: str
    exists:
      description: Whether the secret exists.
      type: bool
    enabled_versions:
      description: Number of enabled versions (0 when the secret does not exist).
      type: int
missing:
  description: IDs of the secrets that do not exist.
  returned: always
  type: list
  elements: str
without_version:
  description: IDs of the secrets that exist but have no enabled version (nothing to read).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import GoogleModule, check_secret_id


def summarize(secrets: list[dict]) -> dict:
    """The module's result from the per-secret facts (pure: the unit tests call it)."""
    return {
        "changed": False,
        "secrets": secrets,
        "missing": [s["name"] for s in secrets if not s["exists"]],
        "without_version": [s["name"] for s in secrets if s["exists"] and s["enabled_versions"] == 0],
    }


def run(module: GoogleModule) -> dict:
    project = module.require_project()
    names = module.params["names"]
    module.validate([(f"names[{i}]", check_secret_id(name)) for i, name in enumerate(names)])
    client = module.client
    found = []
    for secret_id in names:
        name = f"projects/{project}/secrets/{secret_id}"
        current = client.get("secretmanager", f"v1/{name}", resource=f"secret {name}")
        enabled = 0
        if current is not None:
            listing = client.request(
                "GET", "secretmanager", f"v1/{name}/versions", params={"filter": "state:ENABLED"},
                resource=f"secret {name}",
            )
            enabled = len(listing.get("versions") or [])
        found.append({
            "name": secret_id,
            "resource": (current or {}).get("name", ""),
            "exists": current is not None,
            "enabled_versions": enabled,
        })
    return summarize(found)


def main() -> None:
    module = GoogleModule(argument_spec={"names": {"type": "list", "elements": "str", "required": True}})
    module.run(run)


if __name__ == "__main__":
    main()
