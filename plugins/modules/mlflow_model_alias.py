#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mlflow_model_alias
short_description: Set, move or delete an alias of an MLflow registered model
version_added: 0.1.0
description:
  - Points alias O(alias) of registered model O(name) at model version O(version) (O(state=present)),
    creating or moving it, or deletes the alias (O(state=absent)).
  - Idempotent; no write request is sent when the alias is already as requested.
  - Returns the version the alias pointed at before (RV(previous_version)), so a runbook can roll back
    by setting it again.
  - The alias name and version are validated with MLflow's own rules before any request is sent.
author:
  - mlplatform team (@mlplatform)
options:
  name:
    description:
      - Name of the registered model.
    type: str
    required: true
  alias:
    description:
      - Name of the alias, for example V(champion).
      - As in MLflow, only alphanumerics, underscores and dashes, at most 255 characters; V(latest)
        (any case) and names of the form C(v<digits>) (V(v1), V(V12)) are reserved and rejected.
    type: str
    required: true
  version:
    description:
      - Model version the alias must point at; a positive integer. Required with O(state=present).
      - With O(state=absent), when given, the alias is deleted only if it still points at this version
        (a guarded delete); when omitted, the alias is deleted whatever it points at.
      - The version must exist in the registry; its registration status is not checked (use
        M(mlplatform.mlflow.mlflow_model_version_info) for that).
    type: int
  state:
    description:
      - V(present) sets or moves the alias, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - mlplatform.mlflow.mlflow
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reads the registry (so a missing model or version is still reported) but sends no write request.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: >-
      The diff is C({alias: version}) before and after; an absent alias is an empty dictionary.
seealso:
  - module: mlplatform.mlflow.mlflow_model_version_info
  - name: MLflow model registry aliases
    description: How aliases address model versions (C(models:/NAME@ALIAS)).
    link: https://mlflow.org/docs/latest/ml/model-registry/
"""

EXAMPLES = r"""
- name: Promote version 2 of the iris model to champion
  mlplatform.mlflow.mlflow_model_alias:
    tracking_uri: https://mlflow.example.com
    username: deployer
    password: "{{ vault_mlflow_password }}"
    name: iris
    alias: champion
    version: 2
  register: promotion

- name: Roll back to the version champion pointed at before
  mlplatform.mlflow.mlflow_model_alias:
    tracking_uri: https://mlflow.example.com
    username: deployer
    password: "{{ vault_mlflow_password }}"
    name: iris
    alias: champion
    version: "{{ promotion.previous_version }}"
  when: promotion.changed and promotion.previous_version is not none

- name: Set the connection once per play, then remove the challenger alias if it still points at version 3
  module_defaults:
    group/mlplatform.mlflow.mlflow:
      tracking_uri: http://mlflow.mlflow.svc:5000
      username: deployer
      password: "{{ vault_mlflow_password }}"
  block:
    - name: Delete the challenger alias (guarded by version)
      mlplatform.mlflow.mlflow_model_alias:
        name: iris
        alias: challenger
        version: 3
        state: absent
"""

RETURN = r"""
name:
  description: Name of the registered model.
  returned: always
  type: str
  sample: iris
alias:
  description: Name of the alias.
  returned: always
  type: str
  sample: champion
version:
  description:
    - The version the alias points at after the task (in check mode, would point at); V(null) when the
      alias does not exist afterwards.
  returned: always
  type: int
  sample: 2
previous_version:
  description: The version the alias pointed at before the task; V(null) if it did not exist.
  returned: always
  type: int
  sample: 1
diff:
  description: >-
    The alias before and after, as C({alias: version}) (empty when absent).
  returned: when diff mode is enabled
  type: dict
  contains:
    before:
      description: The alias before the task.
      type: dict
      sample: {champion: 1}
    after:
      description: The alias after the task.
      type: dict
      sample: {champion: 2}
    before_header:
      description: Names the registered model and alias, for the diff display.
      type: str
      sample: "registered model iris: alias champion"
    after_header:
      description: Same as RV(diff.before_header).
      type: str
      sample: "registered model iris: alias champion"
  sample: {before: {champion: 1}, after: {champion: 2}}
"""

import typing as t
from dataclasses import dataclass

from ansible_collections.mlplatform.mlflow.plugins.module_utils.mlflow import (
    MlflowError,
    MlflowModule,
    alias_name_problem,
    aliases_of,
    parse_version,
)

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "name": {"type": "str", "required": True},
    "alias": {"type": "str", "required": True},
    "version": {"type": "int"},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


@dataclass(frozen=True)
class AliasPlan:
    """What the task does to one alias; ``action`` is None when nothing changes."""

    alias: str
    previous_version: int | None
    version: int | None
    action: str | None  # "set", "delete" or None

    @property
    def changed(self) -> bool:
        return self.action is not None

    def diff(self, name: str) -> dict[str, t.Any]:
        return {
            "before": {}
            if self.previous_version is None
            else {self.alias: self.previous_version},
            "after": {} if self.version is None else {self.alias: self.version},
            "before_header": f"registered model {name}: alias {self.alias}",
            "after_header": f"registered model {name}: alias {self.alias}",
        }


def validate_params(alias: str, state: str, version: t.Any) -> str | None:
    """Why the task cannot run (checked before any request), or None. No I/O."""
    problem = alias_name_problem(alias)
    if problem:
        return problem
    if version is None:
        return "version is required with state=present" if state == "present" else None
    if parse_version(version) is None:
        return f"version must be a positive integer (a registered model version number), got {version!r}"
    return None


def plan_alias(
    current: t.Mapping[str, int], alias: str, state: str, version: int | None
) -> AliasPlan:
    """Decide what to do given the model's current ``{alias: version}``. No I/O."""
    previous = current.get(alias)
    if state == "present":
        if version is None:
            raise ValueError("state=present needs a version")
        return AliasPlan(
            alias, previous, version, None if previous == version else "set"
        )
    if previous is None or (version is not None and previous != version):
        return AliasPlan(alias, previous, previous, None)
    return AliasPlan(alias, previous, None, "delete")


def main() -> None:
    module = MlflowModule(
        ARGUMENT_SPEC,
        required_if=[["state", "present", ["version"]]],
        supports_check_mode=True,
    )
    name: str = module.params["name"]
    alias: str = module.params["alias"]
    state: str = module.params["state"]
    problem = validate_params(alias, state, module.params["version"])
    if problem:
        module.fail_json(
            msg=f"invalid alias request for registered model '{name}': {problem}"
        )
    version = parse_version(module.params["version"])

    client = module.client
    try:
        current = aliases_of(client.get_registered_model(name))
        plan = plan_alias(current, alias, state, version)
        if plan.action == "set":
            # A missing version fails in check mode too.
            client.get_model_version(name, plan.version)
        if plan.changed and not module.check_mode:
            if plan.action == "set":
                client.set_alias(name, alias, plan.version)
            else:
                client.delete_alias(name, alias)
    except MlflowError as exc:
        module.fail_from_error(exc)

    result: dict[str, t.Any] = {
        "changed": plan.changed,
        "name": name,
        "alias": alias,
        "version": plan.version,
        "previous_version": plan.previous_version,
    }
    if module.diff_mode:
        result["diff"] = plan.diff(name)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
