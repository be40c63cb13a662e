# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over MLflow model references (the checks model_serving's preflight runs before any request)."""

from __future__ import annotations


def model_uri_problem(value: object) -> str:
    """'' when value is a model URI model_serving can serve, else the reason (the grammar of parse_model_uri)."""
    # Imported here, not at the top: Ansible loads every filter file of the collection to find any one filter, in
    # every task that uses one, and mlflow.py brings AnsibleModule and requests (about 0.1 s).
    from ansible_collections.mlplatform.mlflow.plugins.module_utils.mlflow import parse_model_uri

    parsed = parse_model_uri(value)
    return parsed if isinstance(parsed, str) else ""


class FilterModule:
    def filters(self):
        return {"model_uri_problem": model_uri_problem}
