# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that check credentials given in an inventory without ever putting them in a message."""

from __future__ import annotations

import json

SERVICE_ACCOUNT_KEY_FIELDS = ("client_email", "private_key", "token_uri")


def service_account_key_problem(content: object) -> str:
    """What keeps `content` from being a Google service-account key JSON, or '' when it is one.

    The answer names fields only, never a value: it goes into error messages.
    """
    if isinstance(content, dict):
        key = content
    else:
        text = str(content or "").strip()
        if not text:
            return "it is empty"
        try:
            key = json.loads(text)
        except ValueError:
            return "it is not JSON"
    if not isinstance(key, dict):
        return "it is not a JSON object"
    if key.get("type") != "service_account":
        return ('its "type" is not "service_account" (a user or external-account credential cannot be given to '
                "the Auth Proxy here)")
    missing = [name for name in SERVICE_ACCOUNT_KEY_FIELDS if not isinstance(key.get(name), str) or not key[name]]
    if missing:
        return "it has no " + ", ".join(f'"{name}"' for name in missing)
    if "PRIVATE KEY-----" not in key["private_key"]:
        return 'its "private_key" is not a PEM private key'
    return ""


USER_PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS")
USER_RESOURCES = ("experiment", "registered_model")
USER_FIELDS = {"name", "password", "password_secret", "admin", "permissions", "state"}


def users_problems(users: object, variable: str, admin_username: str) -> list[str]:
    """What is wrong with a list of MLflow users as code, each problem naming the variable and entry; never a
    password."""
    if not isinstance(users, list):
        return [f"{variable} must be a list of users"]
    problems, names = [], []
    for index, user in enumerate(users):
        where = f"{variable}[{index}]"
        if not isinstance(user, dict) or not isinstance(user.get("name"), str) or not user.get("name"):
            problems.append(f"{where} must be a mapping with a name")
            continue
        name = user["name"]
        names.append(name)
        unknown = sorted(set(user) - USER_FIELDS)
        state = user.get("state", "present")
        sources = [key for key in ("password", "password_secret") if key in user]
        secret = user.get("password_secret")
        if unknown:
            problems.append(f"{where} ({name}) has unknown fields {unknown}; known: {sorted(USER_FIELDS)}")
        if name == admin_username:
            problems.append(f"{where} is the admin ({name}), which the role keeps itself")
        if state not in ("present", "absent"):
            problems.append(f"{where} ({name}) state must be present or absent")
        if state == "present" and len(sources) != 1:
            problems.append(f"{where} ({name}) needs exactly one of password (a vault value) or password_secret "
                            "({name: SECRET, key: KEY}, a Secret of the server's namespace)")
        if secret is not None and not (isinstance(secret, dict) and secret.get("name") and secret.get("key")):
            problems.append(f"{where} ({name}) password_secret must be {{name: SECRET, key: KEY}}")
        if "password" in user and not (isinstance(user["password"], str) and len(user["password"]) >= 8):
            problems.append(f"{where} ({name}) password must be a string of at least 8 characters")
        for number, grant in enumerate(user.get("permissions") or []):
            if not (isinstance(grant, dict) and grant.get("resource_type") in USER_RESOURCES
                    and grant.get("resource_id") and grant.get("permission", "READ") in USER_PERMISSIONS):
                problems.append(f"{where}.permissions[{number}] ({name}) must be {{resource_type: experiment or "
                                f"registered_model, resource_id: ID or NAME or *, permission: one of "
                                f"{', '.join(USER_PERMISSIONS)}}}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"{variable} names users more than once: {duplicates}")
    return problems


class FilterModule:
    def filters(self):
        return {"service_account_key_problem": service_account_key_problem, "users_problems": users_problems}
