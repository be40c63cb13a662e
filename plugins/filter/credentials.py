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


class FilterModule:
    def filters(self):
        return {"service_account_key_problem": service_account_key_problem}
