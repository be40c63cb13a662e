#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mlflow_model_uri_info
short_description: Pin an MLflow model URI to the exact model it names today
version_added: 0.2.0
description:
  - Takes a model URI as a data scientist has it and returns the immutable URI of the model it names now, so a
    deployment serves exactly that model until it is pinned again.
  - V(models:/NAME@ALIAS), V(models:/NAME/latest) and V(models:/NAME/VERSION) are resolved through the model
    registry to V(models:/NAME/VERSION); the version must be C(READY) (unless O(require_ready=false)).
  - V(runs:/RUN_ID/PATH) (a model logged by a run, registered or not) is checked to exist, either as an MLflow 3
    logged model of that name produced by the run or as an C(MLmodel) file under PATH in the run's artifacts,
    and is returned unchanged (a run ID is already immutable).
  - Fails with a message naming the URI when it is malformed or names nothing. Read-only.
author:
  - mlplatform team (@mlplatform)
options:
  uri:
    description:
      - The model URI, one of V(models:/NAME@ALIAS), V(models:/NAME/VERSION), V(models:/NAME/latest) or
        V(runs:/RUN_ID/PATH) (RUN_ID is the run's 32 hex digits, PATH the model's name or artifact folder).
    type: str
    required: true
  require_ready:
    description:
      - For registry URIs, fail unless the resolved version's status is C(READY).
    type: bool
    default: true
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
  - module: mlplatform.mlflow.mlflow_model_version_info
"""

EXAMPLES = r"""
- name: Pin what a data scientist handed over
  mlplatform.mlflow.mlflow_model_uri_info:
    tracking_uri: https://mlflow.example.com
    username: deployer
    password: "{{ vault_mlflow_password }}"
    uri: runs:/0123456789abcdef0123456789abcdef/model
  register: pinned

- name: Pin the champion
  mlplatform.mlflow.mlflow_model_uri_info:
    tracking_uri: https://mlflow.example.com
    uri: models:/iris@champion
  register: champion  # champion.model_uri is models:/iris/<version>
"""

RETURN = r"""
model_uri:
  description: The pinned URI to serve (V(models:/NAME/VERSION) or the V(runs:/) URI as given).
  returned: success
  type: str
  sample: models:/iris/2
source:
  description: Which kind of URI was given, V(registry) or V(run).
  returned: success
  type: str
  sample: registry
name:
  description: Registered model name (empty for a run URI).
  returned: success
  type: str
  sample: iris
version:
  description: The resolved registry version, or V(0) for a run URI.
  returned: success
  type: int
  sample: 2
run_id:
  description: The run that produced the model (empty when a version was registered without a run).
  returned: success
  type: str
  sample: 0123456789abcdef0123456789abcdef
artifact_path:
  description: PATH of a run URI (empty for registry URIs).
  returned: success
  type: str
  sample: model
model_id:
  description: The MLflow 3 logged model behind the URI, when the server reports one.
  returned: when known
  type: str
  sample: m-0a1b2c3d4e5f
resolved_from:
  description: The URI as given.
  returned: success
  type: str
  sample: models:/iris@champion
"""

import typing as t

from ansible_collections.mlplatform.mlflow.plugins.module_utils.mlflow import (
    MlflowClient,
    MlflowError,
    MlflowModule,
    MlflowNotFoundError,
    ModelReference,
    parse_model_uri,
    resolve_model_version,
)

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "uri": {"type": "str", "required": True},
    "require_ready": {"type": "bool", "default": True},
}


def pin_registry_version(reference: ModelReference, model_version: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The result for a registry reference resolved to ``model_version`` (REST shape). No I/O."""
    version = int(model_version["version"])
    result = {"source": "registry", "name": reference.name, "version": version,
              "model_uri": f"models:/{reference.name}/{version}", "run_id": model_version.get("run_id") or "",
              "artifact_path": "", "status": model_version.get("status", "")}
    if model_version.get("model_id"):
        result["model_id"] = model_version["model_id"]
    return result


def readiness_problem(result: t.Mapping[str, t.Any]) -> str | None:
    if result["source"] != "registry" or result["status"] == "READY":
        return None
    return (f"version {result['version']} of registered model '{result['name']}' is "
            f"{result['status'] or 'in an unknown state'}, not READY")


def has_mlmodel(files: t.Iterable[t.Mapping[str, t.Any]], path: str) -> bool:
    """Whether an artifacts/list answer for ``path`` contains ``path``/MLmodel. No I/O."""
    return any(f.get("path") in (f"{path}/MLmodel", "MLmodel") and not f.get("is_dir") for f in files)


def pin_run_model(client: MlflowClient, reference: ModelReference) -> dict[str, t.Any]:
    """Check that the run exists and produced a model at PATH; runs:/ URIs are already immutable."""
    run = client.get_run(reference.run_id)
    info = run.get("info") or {}
    uri = f"runs:/{reference.run_id}/{reference.artifact_path}"
    if info.get("lifecycle_stage") == "deleted":
        raise MlflowNotFoundError(f"{uri}: run {reference.run_id} is deleted")
    result = {"source": "run", "name": "", "version": 0, "model_uri": uri, "run_id": reference.run_id,
              "artifact_path": reference.artifact_path, "status": info.get("status", "")}
    first, _sep, rest = reference.artifact_path.partition("/")
    logged = None if rest else client.find_logged_model(str(info.get("experiment_id", "")), reference.run_id, first)
    if logged:
        result["model_id"] = logged.get("model_id", "")
        return result
    if has_mlmodel(client.list_artifacts(reference.run_id, reference.artifact_path), reference.artifact_path):
        return result
    raise MlflowNotFoundError(
        f"{uri}: run {reference.run_id} has no model '{reference.artifact_path}' (neither a logged model of that "
        f"name nor an MLmodel file under that artifact path)")


def main() -> None:
    module = MlflowModule(ARGUMENT_SPEC, supports_check_mode=True)
    uri: str = module.params["uri"]
    reference = parse_model_uri(uri)
    if isinstance(reference, str):
        module.fail_json(msg=f"invalid uri: {reference}")
    try:
        if reference.kind == "run":
            result = pin_run_model(module.client, reference)
        else:
            value = {"alias": reference.alias, "version": reference.version}.get(reference.kind, "latest")
            model_version = resolve_model_version(module.client, reference.name, reference.kind, value)
            result = pin_registry_version(reference, model_version)
    except MlflowError as exc:
        module.fail_from_error(exc, resolved_from=uri)
    problem = readiness_problem(result)
    del result["status"]
    if problem and module.params["require_ready"]:
        module.fail_json(msg=f"{uri}: {problem}. Wait for registration to finish or pin another version.",
                         resolved_from=uri, **result)
    module.exit_json(changed=False, resolved_from=uri, **result)


if __name__ == "__main__":
    main()
