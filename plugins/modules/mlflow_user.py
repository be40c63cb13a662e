#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mlflow_user
short_description: Keep an MLflow user, its password, admin flag and permissions as declared
version_added: 0.2.0
description:
  - Creates, updates or deletes user O(name) of an MLflow tracking server with basic-auth, as an admin (the
    connection's O(username)/O(password)).
  - The password is checked by logging in as the user; it is changed only when that fails. It is never returned or
    shown in a diff.
  - O(permissions) are grants on experiments and registered models, MLflow 3.17's role-based permissions (the
    user's own role). With O(purge_permissions=true) the user's other own grants are revoked, so the list is the
    whole truth.
author:
  - mlplatform team (@mlplatform)
options:
  name:
    description: The user's name.
    type: str
    required: true
  user_password:
    description:
      - The user's password. Required to create the user; when the user exists and this password does not log in,
        it is set. Omit it to leave an existing user's password alone.
    type: str
  admin:
    description: Whether the user is an MLflow admin.
    type: bool
    default: false
  permissions:
    description: Grants the user holds.
    type: list
    elements: dict
    default: []
    suboptions:
      resource_type:
        description: What is granted on.
        type: str
        choices: [experiment, registered_model]
        required: true
      resource_id:
        description: The experiment's ID or the registered model's name; V(*) for all of that type.
        type: str
        required: true
      permission:
        description: The permission.
        type: str
        choices: [READ, USE, EDIT, MANAGE, NO_PERMISSIONS]
        default: READ
  purge_permissions:
    description: Revoke the user's own grants that O(permissions) does not list.
    type: bool
    default: false
  state:
    description: V(present) keeps the user as declared, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - mlplatform.mlflow.mlflow
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reads the user and its grants and checks the password by logging in; writes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: "The user's admin flag and grants before and after; a password change shows as C(password: changed)."
seealso:
  - module: mlplatform.mlflow.mlflow_model_alias
"""

EXAMPLES = r"""
- name: Keep the serving pods' read-only user
  mlplatform.mlflow.mlflow_user:
    tracking_uri: http://mlflow.mlflow.svc.cluster.local
    username: admin
    password: "{{ mlflow_admin_password }}"
    name: model-serving
    user_password: "{{ serving_password }}"
    permissions:
      - {resource_type: registered_model, resource_id: iris, permission: READ}
      - {resource_type: experiment, resource_id: "1", permission: READ}
    purge_permissions: true
"""

RETURN = r"""
name:
  description: The user's name.
  returned: always
  type: str
  sample: model-serving
actions:
  description: What was done (or would be, in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["create user", "grant READ on registered_model iris"]
"""

from ansible_collections.mlplatform.mlflow.plugins.module_utils.mlflow import (
    USER_SPEC,
    MlflowError,
    MlflowModule,
    keep_user,
)


def main() -> None:
    module = MlflowModule(USER_SPEC, supports_check_mode=True)
    try:
        result = keep_user(module.client, module.params, module.check_mode)
    except MlflowError as exc:
        module.fail_from_error(exc, name=module.params["name"])
    if not module.diff_mode:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
