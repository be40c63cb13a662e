#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mlflow_model_tag
short_description: Set tags of an MLflow registered model or of one of its versions
version_added: 0.4.0
description:
  - Sets each tag of O(tags) on registered model O(name), or on its version O(version) when given.
  - Idempotent; only tags whose value differs are written. Tags not listed are left as they are.
  - The promotion and rollback runbooks record what they did this way (who, when, from which version to which,
    and the result).
author:
  - mlplatform team (@mlplatform)
options:
  name:
    description: Name of the registered model.
    type: str
    required: true
  version:
    description: A version of the model, to tag that version instead of the registered model.
    type: int
  tags:
    description: Tag names and their values (strings, at most 5000 characters each, as MLflow allows).
    type: dict
    required: true
extends_documentation_fragment:
  - mlplatform.mlflow.mlflow
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
seealso:
  - module: mlplatform.mlflow.mlflow_model_alias
"""

EXAMPLES = r"""
- name: Record a promotion on the registered model
  mlplatform.mlflow.mlflow_model_tag:
    name: iris
    tags:
      mlplatform.last_promotion: '{"alias": "champion", "from": 3, "to": 4, "result": "promoted"}'
"""

RETURN = r"""
changed_tags:
  description: The names of the tags written.
  returned: always
  type: list
  elements: str
  sample: [mlplatform.last_promotion]
"""

import typing as t

from ansible_collections.mlplatform.mlflow.plugins.module_utils.mlflow import MlflowError, MlflowModule

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "name": {"type": "str", "required": True},
    "version": {"type": "int"},
    "tags": {"type": "dict", "required": True},
}


def tags_to_write(current: t.Mapping[str, str], wanted: t.Mapping[str, t.Any]) -> dict[str, str]:
    """The wanted tags whose value differs from the current one, as strings. No I/O."""
    return {key: str(value) for key, value in wanted.items() if current.get(key) != str(value)}


def main() -> None:
    module = MlflowModule(ARGUMENT_SPEC, supports_check_mode=True)
    name, version, wanted = module.params["name"], module.params["version"], module.params["tags"]
    too_long = sorted(key for key, value in wanted.items() if len(str(value)) > 5000)
    if too_long:
        module.fail_json(msg=f"tags of registered model '{name}': values longer than 5000 characters: {too_long}")
    client = module.client
    try:
        holder = client.get_registered_model(name) if version is None else client.get_model_version(name, version)
        current = {tag["key"]: tag.get("value", "") for tag in holder.get("tags") or []}
        writes = tags_to_write(current, wanted)
        if not module.check_mode:
            for key, value in writes.items():
                client.set_tag(name, version, key, value)
    except MlflowError as exc:
        module.fail_from_error(exc)
    result: dict[str, t.Any] = {"changed": bool(writes), "changed_tags": sorted(writes)}
    if module.diff_mode:
        where = f"registered model {name}" + (f" version {version}" if version is not None else "")
        result["diff"] = {"before": {key: current[key] for key in writes if key in current}, "after": writes,
                          "before_header": where, "after_header": where}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
