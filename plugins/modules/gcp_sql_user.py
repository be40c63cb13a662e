#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_sql_user
short_description: Manage a Cloud SQL user - built-in with a password, or an IAM service account
version_added: 0.1.0
description:
  - Creates a Cloud SQL user and waits for the operation.
  - V(BUILT_IN) users get a password from O(password) or, better, from a Secret Manager secret named in
    O(password_secret) (read by the module, so the value never passes through Ansible variables).
  - V(CLOUD_IAM_SERVICE_ACCOUNT) users log in with IAM (Cloud SQL Auth Proxy C(--auto-iam-authn)). Give the
    service account e-mail as O(name); the module derives the name the engine uses (PostgreSQL drops
    C(.gserviceaccount.com); MySQL keeps the e-mail). The instance needs the flag
    C(cloudsql.iam_authentication) (PostgreSQL) or C(cloudsql_iam_authentication) (MySQL) set to C(on).
  - Passwords cannot be read back, so an existing user's password is only pushed with O(update_password=always),
    which then reports a change on every run.
options:
  instance:
    description: Name of the Cloud SQL instance.
    type: str
    required: true
  name:
    description: User name, or the service account e-mail for O(type=CLOUD_IAM_SERVICE_ACCOUNT).
    type: str
    required: true
  type:
    description: Kind of user.
    type: str
    choices: [BUILT_IN, CLOUD_IAM_SERVICE_ACCOUNT]
    default: BUILT_IN
  host:
    description: MySQL only - host the user may connect from (V(%) for any). Ignored on PostgreSQL.
    type: str
    default: "%"
  password:
    description: Password of a V(BUILT_IN) user.
    type: str
  password_secret:
    description:
      - Secret Manager secret holding the password of a V(BUILT_IN) user - a secret ID in O(project), or
        V(projects/P/secrets/S) or V(projects/P/secrets/S/versions/V). The latest version is used when none is named.
    type: str
  database_roles:
    description:
      - Database roles the user is made a member of when it is created (the API's C(databaseRoles)), for example
        V(cloudsqlsuperuser), which owns the databases C(gcp_sql_database) creates. An IAM user gets no privilege
        on any database without one. An existing user's memberships are left as they are.
    type: list
    elements: str
    default: []
  update_password:
    description:
      - V(on_create) sets the password only when the user is created.
      - V(always) also pushes it to an existing user (reported as changed every time, since it cannot be compared).
    type: str
    choices: [on_create, always]
    default: on_create
  state:
    description: V(present) creates the user; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - mlplatform.mlflow.google
attributes:
  check_mode:
    support: full
    description: Lists the users and reports the create, update or delete it would send, sending none.
  diff_mode:
    support: full
    description: Shows the user's name, host and type before and after (never the password).
author:
  - mlplatform team (@mlplatform)
"""

EXAMPLES = r"""
- name: Create the MLflow database user with its password from Secret Manager
  mlplatform.mlflow.gcp_sql_user:
    project: my-project
    instance: mlflow
    name: mlflow
    password_secret: mlflow-db-password

- name: Let the MLflow server's Google service account log in with IAM
  mlplatform.mlflow.gcp_sql_user:
    project: my-project
    instance: mlflow
    type: CLOUD_IAM_SERVICE_ACCOUNT
    name: mlflow-server@my-project.iam.gserviceaccount.com
    database_roles: [cloudsqlsuperuser]  # PostgreSQL: may create tables in the databases the Admin API made
"""

RETURN = r"""
db_user:
  description:
    - The user name as the database knows it (what goes into a connection URI).
    - Empty in check mode when the instance does not exist yet (its engine decides the name).
  returned: always
  type: str
  sample: mlflow-server@my-project.iam
user:
  description: The user as the API lists it (no password).
  returned: when state is present
  type: dict
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

import base64

from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import (
    GoogleApiError,
    GoogleModule,
    adopt_on_conflict,
    check_sql_instance_name,
    is_sql_busy,
)

VIEW_KEYS = ("name", "host", "type", "databaseRoles")


def db_user_name(name: str, user_type: str, engine: str) -> str:
    """The name Cloud SQL uses: IAM service accounts lose .gserviceaccount.com on PostgreSQL."""
    if user_type == "CLOUD_IAM_SERVICE_ACCOUNT" and engine == "POSTGRES":
        return name.removesuffix(".gserviceaccount.com")
    return name


def find_user(users: list[dict], name: str, host: str | None) -> dict | None:
    for user in users:
        if user.get("name") == name and (host is None or user.get("host", "") == host):
            return user
    return None


def secret_version_path(ref: str, project: str) -> str:
    if ref.startswith("projects/"):
        return ref if "/versions/" in ref else f"{ref}/versions/latest"
    return f"projects/{project}/secrets/{ref}/versions/latest"


def view(user: dict | None) -> dict:
    return {k: user[k] for k in VIEW_KEYS if user and k in user}


def check_options(p: dict) -> list[tuple[str, str | None]]:
    problems: list[tuple[str, str | None]] = [("instance", check_sql_instance_name(p["instance"]))]
    if p["type"] == "CLOUD_IAM_SERVICE_ACCOUNT":
        if not p["name"].endswith(".iam.gserviceaccount.com"):
            problems.append(
                ("name", f"'{p['name']}' is not a service account e-mail (ACCOUNT@PROJECT.iam.gserviceaccount.com)")
            )
        if p["password"] or p["password_secret"]:
            problems.append(("password", "IAM users have no password; drop password and password_secret"))
    elif p["state"] == "present" and not (p["password"] or p["password_secret"]):
        problems.append(("password", "a BUILT_IN user needs password or password_secret"))
    return problems


def run(module: GoogleModule) -> dict:
    p = module.params
    project = module.require_project()
    module.validate(check_options(p))
    client = module.client
    inst_path = f"v1/projects/{project}/instances/{p['instance']}"
    inst_resource = f"Cloud SQL instance {project}:{p['instance']}"
    instance = client.get("sqladmin", inst_path, resource=inst_resource)
    if instance is None:
        if not module.check_mode:
            module.fail(f"{inst_resource} does not exist; create it first (gcp_sql_instance)")
        planned = {"name": p["name"], "type": p["type"]}
        return {
            "changed": p["state"] == "present",
            "db_user": "",
            "user": planned,
            "diff": {"before": {}, "after": planned},
        }
    engine = "MYSQL" if instance.get("databaseVersion", "").startswith("MYSQL") else "POSTGRES"
    name = db_user_name(p["name"], p["type"], engine)
    host = p["host"] if engine == "MYSQL" and p["type"] == "BUILT_IN" else None
    resource = f"user {name} in {inst_resource}"

    def list_users() -> list[dict]:
        return client.request("GET", "sqladmin", f"{inst_path}/users", resource=inst_resource).get("items") or []

    current = find_user(list_users(), name, host)
    query = {"name": name, **({"host": host} if host is not None else {})}

    if p["state"] == "absent":
        if current and not module.check_mode:
            op = client.request(
                "DELETE", "sqladmin", f"{inst_path}/users", params=query, resource=resource, retry_if=is_sql_busy
            )
            client.wait_sql_operation(project, op, resource=resource)
        return {"changed": bool(current), "db_user": name, "diff": {"before": view(current), "after": {}}}

    if current is not None and current.get("type", "BUILT_IN") != p["type"]:
        module.fail(
            f"{resource} exists with type {current.get('type', 'BUILT_IN')}; delete it first to change its type"
        )
    push_password = p["type"] == "BUILT_IN" and (current is None or p["update_password"] == "always")
    body: dict = {"name": name, "type": p["type"], **({"host": host} if host is not None else {})}
    if current is None and p["database_roles"]:
        body["databaseRoles"] = p["database_roles"]
    if push_password and not module.check_mode:
        body["password"] = (
            p["password"] if p["password"] else read_secret(module, secret_version_path(p["password_secret"], project))
        )
    changed = current is None or push_password
    if changed and not module.check_mode:
        if current is None:
            try:
                op = client.request(
                    "POST", "sqladmin", f"{inst_path}/users", body=body, resource=resource, retry_if=is_sql_busy
                )
            except GoogleApiError as err:  # created meanwhile: adopt it; its password is not ours to reset
                current = adopt_on_conflict(err, lambda: find_user(list_users(), name, host))
                changed = p["update_password"] == "always"
                op = None
                if changed:
                    op = client.request(
                        "PUT",
                        "sqladmin",
                        f"{inst_path}/users",
                        params=query,
                        body=body,
                        resource=resource,
                        retry_if=is_sql_busy,
                    )
        else:
            op = client.request(
                "PUT",
                "sqladmin",
                f"{inst_path}/users",
                params=query,
                body=body,
                resource=resource,
                retry_if=is_sql_busy,
            )
        if op is not None:
            client.wait_sql_operation(project, op, resource=resource)
    after = current or {k: v for k, v in body.items() if k != "password"}
    return {"changed": changed, "db_user": name, "user": after, "diff": {"before": view(current), "after": view(after)}}


def read_secret(module: GoogleModule, path: str) -> str:
    access = module.client.request("GET", "secretmanager", f"v1/{path}:access", resource=f"secret version {path}")
    return base64.b64decode((access.get("payload") or {}).get("data") or "").decode()


def main() -> None:
    module = GoogleModule(
        argument_spec={
            "instance": {"type": "str", "required": True},
            "name": {"type": "str", "required": True},
            "type": {"type": "str", "choices": ["BUILT_IN", "CLOUD_IAM_SERVICE_ACCOUNT"], "default": "BUILT_IN"},
            "host": {"type": "str", "default": "%"},
            "password": {"type": "str", "no_log": True},
            "password_secret": {"type": "str", "no_log": False},
            "database_roles": {"type": "list", "elements": "str", "default": []},
            "update_password": {
                "type": "str",
                "choices": ["on_create", "always"],
                "default": "on_create",
                "no_log": False,
            },
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        mutually_exclusive=[["password", "password_secret"]],
    )
    module.run(run)


if __name__ == "__main__":
    main()
