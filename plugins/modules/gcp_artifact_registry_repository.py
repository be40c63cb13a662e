#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_artifact_registry_repository
short_description: Manage an Artifact Registry repository (Docker by default)
version_added: 0.1.0
description:
  - Creates an Artifact Registry repository and waits for the create operation, or updates its description,
    labels and Docker tag immutability with a PATCH and an update mask.
  - O(format) and the repository mode cannot change after creation; a different O(format) is an error.
options:
  name:
    description: Repository ID (lowercase letters, digits and hyphens, starting with a letter).
    type: str
    required: true
  location:
    description: Region or multi-region of the repository, for example V(europe-west1) or V(europe).
    type: str
    required: true
  format:
    description: Package format.
    type: str
    choices: [DOCKER, PYTHON, MAVEN, NPM, APT, YUM, GO, GENERIC]
    default: DOCKER
  description:
    description: Human-readable description. Left as it is when not set.
    type: str
  immutable_tags:
    description: For Docker repositories, refuse to move a tag to another image once pushed. Left as it is when not set.
    type: bool
  labels:
    description: Labels to set. Labels already there and not listed are kept unless O(purge_labels=true).
    type: dict
  purge_labels:
    description: Remove labels that are not in O(labels).
    type: bool
    default: false
  state:
    description: V(present) creates or updates; V(absent) deletes the repository and every image in it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - mlplatform.mlflow.google
attributes:
  check_mode:
    support: full
    description: Reads the repository and reports the create, PATCH or delete it would send, sending none.
  diff_mode:
    support: full
    description: Shows format, description, labels and Docker settings before and after.
author:
  - mlplatform team (@mlplatform)
"""

EXAMPLES = r"""
- name: Create the Docker repository for MLflow images
  mlplatform.mlflow.gcp_artifact_registry_repository:
    project: my-project
    location: europe-west1
    name: mlflow
    description: MLflow server and model images
    labels:
      app: mlflow
"""

RETURN = r"""
repository:
  description: The repository (as the API returned it; the planned state in check mode).
  returned: when state is present
  type: dict
  sample: {name: projects/my-project/locations/europe-west1/repositories/mlflow, format: DOCKER}
registry:
  description: The host/path prefix to push and pull images with.
  returned: when state is present and format is DOCKER
  type: str
  sample: europe-west1-docker.pkg.dev/my-project/mlflow
operations:
  description: Long-running operations waited for.
  returned: when there were any
  type: list
  elements: dict
retries:
  description: Requests that were retried after a transient error.
  returned: when there were any
  type: list
  elements: str
"""

from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import (
    GoogleApiError,
    GoogleModule,
    adopt_on_conflict,
    check_labels,
    check_repository_id,
    merge_labels,
)

VIEW_KEYS = ("format", "mode", "description", "labels", "dockerConfig")


def desired_repository(p: dict, current: dict | None) -> dict:
    """The repository fields the options ask for, merged over the current ones."""
    want = {k: current[k] for k in VIEW_KEYS if current and k in current}
    want["format"] = current.get("format", p["format"]) if current else p["format"]
    if p["description"] is not None:
        want["description"] = p["description"]
    if p["labels"] is not None:
        want["labels"] = merge_labels((current or {}).get("labels"), p["labels"], p["purge_labels"])
    if p["immutable_tags"] is not None and p["format"] == "DOCKER":
        want["dockerConfig"] = {**(want.get("dockerConfig") or {}), "immutableTags": p["immutable_tags"]}
    return want


def update_mask(current: dict, want: dict) -> list[str]:
    """The update-mask paths whose values differ (description, labels, dockerConfig.immutableTags)."""
    mask = []
    if want.get("description", "") != current.get("description", ""):
        mask.append("description")
    if (want.get("labels") or {}) != (current.get("labels") or {}):
        mask.append("labels")
    have_tags = bool((current.get("dockerConfig") or {}).get("immutableTags", False))
    if "dockerConfig" in want and bool(want["dockerConfig"].get("immutableTags")) != have_tags:
        mask.append("dockerConfig.immutableTags")
    return mask


def view(repo: dict | None) -> dict:
    return {k: repo[k] for k in VIEW_KEYS if repo and k in repo}


def run(module: GoogleModule) -> dict:
    p = module.params
    project = module.require_project()
    module.validate([("name", check_repository_id(p["name"])), ("labels", check_labels(p["labels"]))])
    client = module.client
    parent = f"projects/{project}/locations/{p['location']}"
    name = f"{parent}/repositories/{p['name']}"
    resource = f"repository {name}"
    current = client.get("artifactregistry", f"v1/{name}", resource=resource)

    if p["state"] == "absent":
        if current and not module.check_mode:
            op = client.request("DELETE", "artifactregistry", f"v1/{name}", resource=resource)
            client.wait_operation("artifactregistry", op, resource=resource)
        return {"changed": bool(current), "diff": {"before": view(current), "after": {}}}

    result: dict = {}
    if p["format"] == "DOCKER":
        result["registry"] = f"{p['location']}-docker.pkg.dev/{project}/{p['name']}"
    if current is None:
        body = {k: v for k, v in desired_repository(p, None).items() if v is not None}
        body["mode"] = "STANDARD_REPOSITORY"
        if module.check_mode:
            return {
                **result,
                "changed": True,
                "repository": dict(body, name=name),
                "diff": {"before": {}, "after": view(body)},
            }
        try:
            op = client.request(
                "POST",
                "artifactregistry",
                f"v1/{parent}/repositories",
                params={"repositoryId": p["name"]},
                body=body,
                resource=resource,
            )
        except GoogleApiError as err:
            current = adopt_on_conflict(err, lambda: client.get("artifactregistry", f"v1/{name}", resource=resource))
        else:
            client.wait_operation("artifactregistry", op, resource=resource)
            created = client.request("GET", "artifactregistry", f"v1/{name}", resource=resource)
            return {**result, "changed": True, "repository": created, "diff": {"before": {}, "after": view(created)}}

    if current.get("format") != p["format"]:
        module.fail(f"option format: repository {name} is {current.get('format')}; the format cannot change")
    want = desired_repository(p, current)
    mask = update_mask(current, want)
    after = {**current, **want}
    if mask and not module.check_mode:
        body = {k: want[k] for k in ("description", "labels", "dockerConfig") if k in want}
        after = client.request(
            "PATCH",
            "artifactregistry",
            f"v1/{name}",
            params={"updateMask": ",".join(mask)},
            body=body,
            resource=resource,
        )
    return {
        **result,
        "changed": bool(mask),
        "repository": after,
        "diff": {"before": view(current), "after": view(after)},
    }


def main() -> None:
    module = GoogleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "location": {"type": "str", "required": True},
            "format": {
                "type": "str",
                "default": "DOCKER",
                "choices": ["DOCKER", "PYTHON", "MAVEN", "NPM", "APT", "YUM", "GO", "GENERIC"],
            },
            "description": {"type": "str"},
            "immutable_tags": {"type": "bool"},
            "labels": {"type": "dict"},
            "purge_labels": {"type": "bool", "default": False},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        }
    )
    module.run(run)


if __name__ == "__main__":
    main()
