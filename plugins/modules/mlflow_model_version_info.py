#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mlflow_model_version_info
short_description: Resolve an MLflow registered model's alias, version or latest version
version_added: 0.1.0
description:
  - Resolves O(alias), an explicit O(version), or V(latest) of a registered model in MLflow's model
    registry to one concrete model version, and returns its version number, run ID, source, status,
    aliases and tags.
  - Fails with a clear message when the registered model, the alias or the version does not exist,
    or (with O(require_ready=true), the default) when the version is not C(READY).
  - Read-only; talks to the tracking server's REST API (C(/api/2.0/mlflow/registered-models/...) and
    C(/api/2.0/mlflow/model-versions/...)).
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
      - Alias to resolve, for example V(champion).
      - Exactly one of O(alias) and O(version) is required.
    type: str
  version:
    description:
      - A version number (V(3) or V("3")), or V(latest) for the highest version number (what
        C(models:/NAME/latest) means to MLflow).
      - Exactly one of O(alias) and O(version) is required.
    type: raw
  require_ready:
    description:
      - Fail unless the resolved version's status is C(READY).
      - Set to V(false) to inspect a version that is still registering or failed to register.
    type: bool
    default: true
  run_metrics:
    description:
      - Also return the latest value of each metric of the version's run (RV(run_metrics)), one more request.
    type: bool
    default: false
extends_documentation_fragment:
  - mlplatform.mlflow.mlflow
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The module never changes anything, so check mode behaves exactly as a normal run.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
    details: Read-only; there is never a difference to show.
seealso:
  - module: mlplatform.mlflow.mlflow_model_alias
  - name: MLflow model registry REST API
    description: The endpoints this module calls.
    link: https://mlflow.org/docs/latest/api_reference/rest-api.html
"""

EXAMPLES = r"""
- name: Resolve the champion alias of the iris model
  mlplatform.mlflow.mlflow_model_version_info:
    tracking_uri: https://mlflow.example.com
    username: deployer
    password: "{{ vault_mlflow_password }}"
    name: iris
    alias: champion
  register: champion

- name: Serve exactly that version
  ansible.builtin.debug:
    msg: "Deploy {{ champion.model_uri }} (run {{ champion.run_id }})"

- name: Set the connection once per play, then read the latest version
  module_defaults:
    group/mlplatform.mlflow.mlflow:
      tracking_uri: http://mlflow.mlflow.svc:5000
      username: deployer
      password: "{{ vault_mlflow_password }}"
  block:
    - name: Resolve the latest version, even if it is still registering
      mlplatform.mlflow.mlflow_model_version_info:
        name: iris
        version: latest
        require_ready: false
      register: latest
"""

RETURN = r"""
run_metrics:
  description: The latest value of each metric of the version's run (empty without a run).
  returned: with O(run_metrics=true)
  type: dict
  sample: {"accuracy": 0.97}
name:
  description: Name of the registered model.
  returned: success
  type: str
  sample: iris
version:
  description: The resolved version number.
  returned: success
  type: int
  sample: 2
model_uri:
  description: URI of the pinned version, for C(mlflow models serve -m).
  returned: success
  type: str
  sample: models:/iris/2
resolved_from:
  description: What was resolved, as given (V(alias:champion), V(version:2) or V(version:latest)).
  returned: success
  type: str
  sample: alias:champion
run_id:
  description: ID of the run that produced the version; empty if it was registered without a run.
  returned: success
  type: str
  sample: 5f1b3c2e9d0a4e7f8a6b1c2d3e4f5a6b
source:
  description: Source URI the version was registered from.
  returned: success
  type: str
  sample: models:/m-0a1b2c3d4e5f
storage_location:
  description: Where the registry stores the version's files, when the server reports it.
  returned: when reported by the server
  type: str
  sample: mlflow-artifacts:/1/models/m-0a1b2c3d4e5f/artifacts
model_id:
  description: ID of the logged model (MLflow 3) the version was registered from, when reported.
  returned: when reported by the server
  type: str
  sample: m-0a1b2c3d4e5f
status:
  description: Registration status (V(READY), V(PENDING_REGISTRATION) or V(FAILED_REGISTRATION)).
  returned: success
  type: str
  sample: READY
status_message:
  description: Status message from the registry, if any.
  returned: success
  type: str
  sample: ""
aliases:
  description: All aliases that point at this version.
  returned: success
  type: list
  elements: str
  sample: [champion]
tags:
  description: Tags of the version, as a dictionary.
  returned: success
  type: dict
  sample: {validated: "true"}
description:
  description: Description of the version.
  returned: success
  type: str
  sample: ""
creation_timestamp:
  description: Creation time in milliseconds since the epoch.
  returned: success
  type: int
  sample: 1764154800000
last_updated_timestamp:
  description: Last update time in milliseconds since the epoch.
  returned: success
  type: int
  sample: 1764154800000
"""

import typing as t

from ansible_collections.mlplatform.mlflow.plugins.module_utils.mlflow import (
    MlflowError,
    MlflowModule,
    alias_name_problem,
    parse_version,
    resolve_model_version,
)

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "name": {"type": "str", "required": True},
    "alias": {"type": "str"},
    "version": {"type": "raw"},
    "require_ready": {"type": "bool", "default": True},
    "run_metrics": {"type": "bool", "default": False},
}


def validate_request(alias: str | None, version: t.Any) -> tuple[str, str | int] | str:
    """('alias', name) / ('version', number) / ('latest', 'latest'), or an error message. No I/O."""
    if alias is not None:
        problem = alias_name_problem(alias)
        if problem is None:
            return ("alias", alias)
        if alias.lower() == "latest":
            return f"{problem}; use version: latest instead of alias: {alias}"
        if alias[:1] in "vV" and alias[1:].isdigit():
            return f"{problem}; use version: {alias[1:]} instead of alias: {alias}"
        return problem
    if isinstance(version, str) and version.strip().lower() == "latest":
        return ("latest", "latest")
    number = parse_version(version)
    if number is None:
        return f"version must be a positive integer or 'latest', got {version!r}"
    return ("version", number)


def summarize(
    model_version: t.Mapping[str, t.Any], resolved_from: str
) -> dict[str, t.Any]:
    """The module's result from a model version as MLflow's REST API returns it. No I/O."""
    name = model_version["name"]
    version = int(model_version["version"])
    result: dict[str, t.Any] = {
        "changed": False,
        "name": name,
        "version": version,
        "model_uri": f"models:/{name}/{version}",
        "resolved_from": resolved_from,
        "run_id": model_version.get("run_id", ""),
        "source": model_version.get("source", ""),
        "status": model_version.get("status", ""),
        "status_message": model_version.get("status_message", ""),
        "aliases": list(model_version.get("aliases") or []),
        "tags": {
            tag["key"]: tag.get("value", "") for tag in model_version.get("tags") or []
        },
        "description": model_version.get("description", ""),
        "creation_timestamp": int(model_version.get("creation_timestamp") or 0),
        "last_updated_timestamp": int(model_version.get("last_updated_timestamp") or 0),
    }
    for optional in ("storage_location", "model_id"):
        if model_version.get(optional):
            result[optional] = model_version[optional]
    return result


def readiness_problem(result: t.Mapping[str, t.Any]) -> str | None:
    """Why the resolved version must not be used, or None when it is READY. No I/O."""
    if result["status"] == "READY":
        return None
    detail = f": {result['status_message']}" if result.get("status_message") else ""
    return (
        f"version {result['version']} of registered model '{result['name']}' ({result['resolved_from']}) "
        f"is {result['status'] or 'in an unknown state'}, not READY{detail}"
    )


def main() -> None:
    module = MlflowModule(
        ARGUMENT_SPEC,
        mutually_exclusive=[["alias", "version"]],
        required_one_of=[["alias", "version"]],
        supports_check_mode=True,
    )
    name: str = module.params["name"]
    request = validate_request(module.params["alias"], module.params["version"])
    if isinstance(request, str):
        module.fail_json(
            msg=f"invalid request for registered model '{name}': {request}"
        )
    kind, value = request
    try:
        model_version = resolve_model_version(module.client, name, kind, value)
    except MlflowError as exc:
        module.fail_from_error(exc)
    result = summarize(
        model_version, f"{kind if kind != 'latest' else 'version'}:{value}"
    )
    if module.params["run_metrics"]:
        try:
            run = module.client.get_run(result["run_id"]) if result["run_id"] else {}
        except MlflowError as exc:
            module.fail_from_error(exc)
        result["run_metrics"] = {m["key"]: m.get("value") for m in (run.get("data") or {}).get("metrics") or []}
    problem = readiness_problem(result)
    if problem and module.params["require_ready"]:
        module.fail_json(
            msg=f"{problem}. Wait for registration to finish or pick another version.",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
