#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_secret
short_description: Manage a Secret Manager secret and its value, never returning the value
version_added: 0.1.0
description:
  - Creates a Secret Manager secret (automatic replication) and makes sure it has an enabled version.
  - The first version's value is O(value) or, when O(value) is not set, a random string generated once. It is
    never rotated implicitly; later runs see an enabled version and change nothing.
  - With O(update_value=always) and O(value), the latest value is read and a new version is added only when it
    differs (bytes compared in memory; nothing is printed).
  - The value is never returned, logged or shown in a diff.
options:
  name:
    description: Secret ID (letters, digits, C(-) and C(_)).
    type: str
    required: true
  value:
    description: Value of the first version (or of a new one, see O(update_value)). Generated when not set.
    type: str
  update_value:
    description:
      - V(on_create) sets a value only when the secret has no enabled version.
      - V(always) also adds a version when the latest value differs from O(value) (requires O(value)).
    type: str
    choices: [on_create, always]
    default: on_create
  generate_length:
    description: Length of a generated value (URL-safe characters).
    type: int
    default: 32
  labels:
    description: Labels to set. Labels already there and not listed are kept unless O(purge_labels=true).
    type: dict
  purge_labels:
    description: Remove labels that are not in O(labels).
    type: bool
    default: false
  state:
    description: V(present) creates the secret and its value; V(absent) deletes the secret and all its versions.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - mlplatform.mlflow.google
attributes:
  check_mode:
    support: full
    description: Reads the secret (and, with O(update_value=always), its latest value) and reports what it would add.
  diff_mode:
    support: full
    description: Shows the secret's labels and number of enabled versions before and after, never the value.
author:
  - mlplatform team (@mlplatform)
"""

EXAMPLES = r"""
- name: Create the database password once (generated, never rotated implicitly)
  mlplatform.mlflow.gcp_secret:
    project: my-project
    name: mlflow-db-password
    labels:
      app: mlflow
"""

RETURN = r"""
secret:
  description: Full resource name of the secret (it carries the project number).
  returned: always
  type: str
  sample: projects/123456789012/secrets/mlflow-db-password
version:
  description: Resource name of the latest enabled version (empty in check mode when one would be created).
  returned: when state is present
  type: str
  sample: projects/123456789012/secrets/mlflow-db-password/versions/1
version_added:
  description: Whether this run added a version (would add, in check mode).
  returned: when state is present
  type: bool
retries:
  description: Requests that were retried after a transient error.
  returned: when there were any
  type: list
  elements: str
"""

import base64
import secrets as pysecrets

from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import (
    GoogleApiError,
    GoogleModule,
    adopt_on_conflict,
    check_labels,
    check_secret_id,
    crc32c,
    merge_labels,
)


def needs_version(enabled_versions: int, latest_value: bytes | None, value: str | None, update_value: str) -> bool:
    """Whether to add a version: none enabled yet, or update_value=always and the latest value differs."""
    if enabled_versions == 0:
        return True
    return update_value == "always" and value is not None and latest_value != value.encode()


def payload(value: str) -> dict:
    data = value.encode()
    return {"payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(crc32c(data))}}


def run(module: GoogleModule) -> dict:
    p = module.params
    project = module.require_project()
    module.validate([("name", check_secret_id(p["name"])), ("labels", check_labels(p["labels"]))])
    if p["update_value"] == "always" and p["value"] is None:
        module.fail("option update_value=always needs option value")
    client = module.client
    name = f"projects/{project}/secrets/{p['name']}"
    resource = f"secret {name}"
    current = client.get("secretmanager", f"v1/{name}", resource=resource)

    if p["state"] == "absent":
        if current and not module.check_mode:
            client.request("DELETE", "secretmanager", f"v1/{name}", resource=resource)
        return {
            "changed": bool(current),
            "secret": (current or {}).get("name", name),
            "diff": {"before": {"exists": bool(current)}, "after": {}},
        }

    changed = False
    existed = current is not None
    labels_before = (current or {}).get("labels") or {}
    if current is None:
        changed = True
        labels = {str(k): str(v) for k, v in (p["labels"] or {}).items()}
        body = {"replication": {"automatic": {}}, **({"labels": labels} if labels else {})}
        enabled: list[dict] = []
        labels_after = labels
        if not module.check_mode:
            try:
                current = client.request(
                    "POST",
                    "secretmanager",
                    f"v1/projects/{project}/secrets",
                    params={"secretId": p["name"]},
                    body=body,
                    resource=resource,
                )
            except GoogleApiError as err:  # created meanwhile: adopt it, with whatever versions it has
                current = adopt_on_conflict(err, lambda: client.get("secretmanager", f"v1/{name}", resource=resource))
                changed = False
                labels_before = labels_after = current.get("labels") or {}
                listing = client.request(
                    "GET", "secretmanager", f"v1/{name}/versions", params={"filter": "state:ENABLED"}, resource=resource
                )
                enabled = listing.get("versions") or []
    else:
        labels_after = labels_before
        if p["labels"] is not None:
            labels_after = merge_labels(labels_before, p["labels"], p["purge_labels"])
            if labels_after != labels_before:
                changed = True
                if not module.check_mode:
                    client.request(
                        "PATCH",
                        "secretmanager",
                        f"v1/{name}",
                        params={"updateMask": "labels"},
                        body={"labels": labels_after},
                        resource=resource,
                    )
        listing = client.request(
            "GET", "secretmanager", f"v1/{name}/versions", params={"filter": "state:ENABLED"}, resource=resource
        )
        enabled = listing.get("versions") or []

    latest: bytes | None = None
    if enabled and p["update_value"] == "always":
        access = client.request(
            "GET", "secretmanager", f"v1/{name}/versions/latest:access", resource=f"latest version of {name}"
        )
        latest = base64.b64decode((access.get("payload") or {}).get("data") or "")
    add = needs_version(len(enabled), latest, p["value"], p["update_value"])
    version = enabled[0]["name"] if enabled else ""
    if add:
        changed = True
        if not module.check_mode:
            value = (
                p["value"]
                if p["value"] is not None
                else pysecrets.token_urlsafe(p["generate_length"])[: p["generate_length"]]
            )
            added = client.request(
                "POST", "secretmanager", f"v1/{name}:addVersion", body=payload(value), resource=resource
            )
            version = added.get("name", "")
        else:
            version = ""
    count_after = len(enabled) + (1 if add else 0)
    return {
        "changed": changed,
        "secret": (current or {}).get("name", name),
        "version": version,
        "version_added": add,
        "diff": {
            "before": {"labels": labels_before, "enabled_versions": len(enabled)} if existed else {},
            "after": {"labels": labels_after, "enabled_versions": count_after},
        },
    }


def main() -> None:
    module = GoogleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "value": {"type": "str", "no_log": True},
            "update_value": {"type": "str", "choices": ["on_create", "always"], "default": "on_create"},
            "generate_length": {"type": "int", "default": 32, "no_log": False},
            "labels": {"type": "dict"},
            "purge_labels": {"type": "bool", "default": False},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        }
    )
    module.run(run)


if __name__ == "__main__":
    main()
