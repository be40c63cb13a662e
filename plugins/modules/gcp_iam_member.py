#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_iam_member
short_description: Grant or revoke one IAM role to one member on a project, bucket, service account or secret
version_added: 0.1.0
description:
  - Adds (or removes) one member in one role binding of a resource's IAM policy, leaving every other binding,
    member, condition and audit config as it is (non-authoritative, like C(gcloud add-iam-policy-binding)).
  - Read-modify-write with the policy etag. When another writer changed the policy in between (HTTP 409 or
    412), the policy is read again and the change re-applied, with backoff.
  - A service account created moments ago may not be visible to IAM yet; the 400/404 "does not exist" answers
    are retried for at most O(consistency_timeout) seconds.
  - Workload Identity members (C(serviceAccount:PROJECT.svc.id.goog[NAMESPACE/KSA])) need a GKE cluster with
    Workload Identity in the project; until then IAM answers "Identity Pool does not exist", reported as is.
options:
  resource_type:
    description: Kind of resource whose policy is changed.
    type: str
    choices: [project, bucket, service_account, secret]
    required: true
  resource:
    description:
      - The resource, by type - project ID; bucket name; service account e-mail (or account ID with
        O(project)); secret ID (with O(project)).
    type: str
    required: true
  role:
    description: Role, for example V(roles/storage.objectViewer) or V(projects/P/roles/custom).
    type: str
    required: true
  member:
    description:
      - Principal, for example V(serviceAccount:sa@p.iam.gserviceaccount.com), V(user:me@example.com),
        V(group:g@example.com) or V(serviceAccount:p.svc.id.goog[ns/ksa]).
    type: str
    required: true
  condition:
    description:
      - IAM condition of the binding (C(title), C(expression), optional C(description)).
      - Policy version 3 is used when a binding has a condition.
    type: dict
  state:
    description: V(present) grants; V(absent) revokes.
    type: str
    choices: [present, absent]
    default: present
  consistency_timeout:
    description: Seconds to keep retrying while IAM does not see a just-created service account yet.
    type: int
    default: 90
extends_documentation_fragment:
  - mlplatform.mlflow.google
attributes:
  check_mode:
    support: full
    description: Reads the policy and reports whether the binding would change, sending no setIamPolicy.
  diff_mode:
    support: full
    description: Shows the members of the (role, condition) binding before and after.
author:
  - mlplatform team (@mlplatform)
"""

EXAMPLES = r"""
- name: Let the MLflow server's Kubernetes service account act as its Google service account
  mlplatform.mlflow.gcp_iam_member:
    project: my-project
    resource_type: service_account
    resource: mlflow-server@my-project.iam.gserviceaccount.com
    role: roles/iam.workloadIdentityUser
    member: serviceAccount:my-project.svc.id.goog[mlflow/mlflow-server]

- name: Give the server read/write access to artifact objects in one bucket
  mlplatform.mlflow.gcp_iam_member:
    resource_type: bucket
    resource: my-project-mlflow-artifacts
    role: roles/storage.objectUser
    member: serviceAccount:mlflow-server@my-project.iam.gserviceaccount.com
"""

RETURN = r"""
members:
  description: Members of the (role, condition) binding after the change (planned, in check mode).
  returned: always
  type: list
  elements: str
  sample: [serviceAccount:mlflow-server@my-project.iam.gserviceaccount.com]
retries:
  description: Requests retried after a transient error, an etag conflict or an account not yet visible.
  returned: when there were any
  type: list
  elements: str
"""

from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import (
    GoogleModule,
    check_bucket_name,
    check_member,
    check_project_id,
    check_role,
    check_secret_id,
    iam_target,
)


def check_resource(kind: str, resource: str, project: str | None) -> str | None:
    """The resource must look like its type says (before any request is sent)."""
    if kind == "project":
        return check_project_id(resource)
    if kind == "bucket":
        return check_bucket_name(resource)
    if kind == "secret":
        return check_secret_id(resource) or (None if project else "a secret needs the project option")
    if "@" not in resource and not project:
        return f"'{resource}' is not an e-mail, so the project option is required"
    if "@" in resource and not resource.endswith(".gserviceaccount.com"):
        return f"'{resource}' is not a service account e-mail (ACCOUNT@PROJECT.iam.gserviceaccount.com)"
    return None


def check_condition(condition: dict | None) -> str | None:
    if condition is None:
        return None
    if not condition.get("title") or not condition.get("expression"):
        return "a condition needs a title and an expression"
    extra = set(condition) - {"title", "expression", "description"}
    return f"unknown condition keys {sorted(extra)}" if extra else None


def run(module: GoogleModule) -> dict:
    p = module.params
    project = p["project"]
    module.validate(
        [
            ("role", check_role(p["role"])),
            ("member", check_member(p["member"])),
            ("resource", check_resource(p["resource_type"], p["resource"], project)),
            ("condition", check_condition(p["condition"])),
        ]
    )
    convenience = p["member"].startswith(("projectOwner:", "projectEditor:", "projectViewer:"))
    if convenience and p["resource_type"] != "bucket":
        module.fail(f"option member: {p['member']} is a bucket-only convenience member")
    target = iam_target(p["resource_type"], p["resource"], project)
    result = module.client.iam_member(
        target,
        p["role"],
        p["member"],
        present=p["state"] == "present",
        condition=p["condition"],
        check_mode=module.check_mode,
        consistency_timeout=p["consistency_timeout"],
    )
    return {
        "changed": result["changed"],
        "members": result["after"],
        "diff": {
            "before": {"resource": target.describe, "role": p["role"], "members": result["before"]},
            "after": {"resource": target.describe, "role": p["role"], "members": result["after"]},
        },
    }


def main() -> None:
    module = GoogleModule(
        argument_spec={
            "resource_type": {
                "type": "str",
                "required": True,
                "choices": ["project", "bucket", "service_account", "secret"],
            },
            "resource": {"type": "str", "required": True},
            "role": {"type": "str", "required": True},
            "member": {"type": "str", "required": True},
            "condition": {"type": "dict"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "consistency_timeout": {"type": "int", "default": 90},
        }
    )
    module.run(run)


if __name__ == "__main__":
    main()
