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
experiment_id:
  description: >-
    The experiment whose artifact store holds the model's files (its run's experiment, else its logged model's):
    what a reader needs READ on to download it. Empty when the server reports neither.
  returned: success
  type: str
  sample: "1"
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

from ansible_collections.mlplatform.mlflow.plugins.module_utils.mlflow import (
    MODEL_URI_INFO_SPEC,
    MlflowError,
    MlflowModule,
    pin_model_uri,
)


def main() -> None:
    module = MlflowModule(MODEL_URI_INFO_SPEC, supports_check_mode=True)
    try:
        result = pin_model_uri(module.client, module.params["uri"], module.params["require_ready"])
    except MlflowError as exc:
        module.fail_from_error(exc, resolved_from=module.params["uri"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
