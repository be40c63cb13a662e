#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_storage_bucket
short_description: Manage a Cloud Storage bucket with safe defaults
version_added: 0.1.0
description:
  - Creates a Cloud Storage bucket, or updates only the fields that drifted with a PATCH (never a full PUT,
    so settings made elsewhere and not named here are kept).
  - Defaults are the safe ones for an artifact store (uniform bucket-level access on, public access prevention
    enforced).
  - Bucket names are global. A name that exists in another project is reported as taken, not adopted.
options:
  name:
    description: Bucket name (3-63 characters, or up to 222 with dots; lowercase letters, digits, C(-), C(_), C(.)).
    type: str
    required: true
  state:
    description: V(present) creates or updates the bucket; V(absent) deletes it (it must be empty).
    type: str
    choices: [present, absent]
    default: present
  location:
    description:
      - Location (region such as V(europe-west1), dual-region or multi-region such as V(EU)). Required to create.
      - Immutable; a different location on an existing bucket is an error.
    type: str
  storage_class:
    description: Default storage class of new objects.
    type: str
    choices: [STANDARD, NEARLINE, COLDLINE, ARCHIVE]
  uniform_bucket_level_access:
    description: Uniform bucket-level access (IAM only, no object ACLs).
    type: bool
    default: true
  public_access_prevention:
    description: V(enforced) blocks any public access to the bucket and its objects.
    type: str
    choices: [enforced, inherited]
    default: enforced
  versioning:
    description: Object versioning. Left as it is when not set.
    type: bool
  lifecycle_rules:
    description:
      - Lifecycle rules in the API's shape, each with C(action) (C(type) V(Delete), V(SetStorageClass) or
        V(AbortIncompleteMultipartUpload); C(storageClass)) and C(condition) (for example C(age),
        C(isLive), C(numNewerVersions), C(daysSinceNoncurrentTime)).
      - Rules already on the bucket and not listed are kept unless O(purge_lifecycle_rules=true).
    type: list
    elements: dict
  purge_lifecycle_rules:
    description: Remove lifecycle rules that are not in O(lifecycle_rules).
    type: bool
    default: false
  labels:
    description: Labels to set. Labels already on the bucket and not listed are kept unless O(purge_labels=true).
    type: dict
  purge_labels:
    description: Remove labels that are not in O(labels).
    type: bool
    default: false
extends_documentation_fragment:
  - mlplatform.mlflow.google
attributes:
  check_mode:
    support: full
    description: Reads the bucket and reports the create or the PATCH it would send, sending none.
  diff_mode:
    support: full
    description: Shows location, storage class, access settings, versioning, lifecycle and labels before and after.
author:
  - mlplatform team (@mlplatform)
"""

EXAMPLES = r"""
- name: Create the MLflow artifact bucket
  mlplatform.mlflow.gcp_storage_bucket:
    project: my-project
    name: my-project-mlflow-artifacts
    location: europe-west1
    versioning: true
    lifecycle_rules:
      - action: {type: Delete}
        condition: {daysSinceNoncurrentTime: 30}
      - action: {type: AbortIncompleteMultipartUpload}
        condition: {age: 7}
    labels:
      app: mlflow
"""

RETURN = r"""
bucket:
  description: The bucket as the API returned it (after the change; the planned state in check mode).
  returned: when state is present
  type: dict
  sample: {name: my-bucket, location: EUROPE-WEST1, storageClass: STANDARD}
operations:
  description: Long-running operations waited for (none for buckets).
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
    GoogleError,
    GoogleModule,
    check_bucket_name,
    check_labels,
    desired_changes,
    merge_labels,
    merge_list,
)

RULE_ACTIONS = {"Delete", "SetStorageClass", "AbortIncompleteMultipartUpload"}
RULE_CONDITIONS = {
    "age", "createdBefore", "customTimeBefore", "daysSinceCustomTime", "daysSinceNoncurrentTime", "isLive",
    "matchesPrefix", "matchesStorageClass", "matchesSuffix", "noncurrentTimeBefore", "numNewerVersions",
}  # fmt: skip
VIEW_KEYS = ("location", "storageClass", "iamConfiguration", "versioning", "lifecycle", "labels")


def check_rules(rules: list[dict] | None) -> str | None:
    for i, rule in enumerate(rules or []):
        action = rule.get("action") or {}
        if set(rule) - {"action", "condition"} or action.get("type") not in RULE_ACTIONS:
            return f"rule {i + 1} needs action.type in {sorted(RULE_ACTIONS)} and only the keys action and condition"
        unknown = set(rule.get("condition") or {}) - RULE_CONDITIONS
        if unknown or not rule.get("condition"):
            return f"rule {i + 1} has an empty condition or unknown condition keys {sorted(unknown)}"
    return None


def desired_settings(p: dict) -> dict:
    body: dict = {"iamConfiguration": {"uniformBucketLevelAccess": {"enabled": p["uniform_bucket_level_access"]}}}
    body["iamConfiguration"]["publicAccessPrevention"] = p["public_access_prevention"]
    if p["location"]:
        body["location"] = p["location"].upper()
    if p["storage_class"]:
        body["storageClass"] = p["storage_class"]
    if p["versioning"] is not None:
        body["versioning"] = {"enabled": p["versioning"]}
    return body


def bucket_patch(current: dict, p: dict) -> dict:
    """The PATCH body that brings `current` to the options (empty when nothing differs)."""
    settings = desired_settings(p)
    settings.pop("location", None)
    patch = desired_changes(current, settings) or {}
    if p["labels"] is not None:
        have = current.get("labels") or {}
        want = merge_labels(have, p["labels"], p["purge_labels"])
        if want != have:
            patch["labels"] = {**want, **{k: None for k in have if k not in want}}
    if p["lifecycle_rules"] is not None:
        have_rules = (current.get("lifecycle") or {}).get("rule") or []
        want_rules = merge_list(have_rules, p["lifecycle_rules"], p["purge_lifecycle_rules"])
        if desired_changes(have_rules, want_rules) is not None:
            patch["lifecycle"] = {"rule": want_rules}
    return patch


def create_body(p: dict) -> dict:
    body = desired_settings(p)
    body["name"] = p["name"]
    if p["labels"]:
        body["labels"] = {str(k): str(v) for k, v in p["labels"].items()}
    if p["lifecycle_rules"]:
        body["lifecycle"] = {"rule": p["lifecycle_rules"]}
    return body


def view(bucket: dict | None) -> dict:
    if not bucket:
        return {}
    out = {k: bucket[k] for k in VIEW_KEYS if k in bucket}
    if "iamConfiguration" in out:
        iam = out["iamConfiguration"]
        out["iamConfiguration"] = {
            "uniformBucketLevelAccess": {"enabled": (iam.get("uniformBucketLevelAccess") or {}).get("enabled", False)},
            "publicAccessPrevention": iam.get("publicAccessPrevention", "inherited"),
        }
    return out


def apply_patch(bucket: dict, patch: dict) -> dict:
    out = dict(bucket)
    for key, value in patch.items():
        if key == "labels":
            out["labels"] = {k: v for k, v in value.items() if v is not None}
        elif key == "iamConfiguration":
            out["iamConfiguration"] = {**(bucket.get("iamConfiguration") or {}), **value}
        else:
            out[key] = value
    return out


def run(module: GoogleModule) -> dict:
    p = module.params
    name = p["name"]
    module.validate(
        [
            ("name", check_bucket_name(name)),
            ("labels", check_labels(p["labels"])),
            ("lifecycle_rules", check_rules(p["lifecycle_rules"])),
        ]
    )
    client = module.client
    resource = f"bucket {name}"
    path = f"storage/v1/b/{name}"
    try:
        current = client.get("storage", path, resource=resource, params={"projection": "full"})
    except GoogleApiError as err:
        if err.status == 403:
            raise GoogleError(
                f"{err} Bucket names are global: '{name}' may belong to another project; choose another name.",
                **err.details,
            ) from err
        raise

    if p["state"] == "absent":
        if current and not module.check_mode:
            client.request("DELETE", "storage", path, resource=resource)
        return {"changed": bool(current), "diff": {"before": view(current), "after": {}}}

    if current is None:
        project = module.require_project()
        if not p["location"]:
            module.fail(f"option location is required to create bucket {name}")
        body = create_body(p)
        if module.check_mode:
            return {"changed": True, "bucket": body, "diff": {"before": {}, "after": view(body)}}
        try:
            created = client.request(
                "POST", "storage", "storage/v1/b", params={"project": project}, body=body, resource=resource
            )
            return {"changed": True, "bucket": created, "diff": {"before": {}, "after": view(created)}}
        except GoogleApiError as err:
            if err.status != 409 or "already own" not in err.google_message:
                if err.status == 409:
                    raise GoogleError(
                        f"bucket name '{name}' is taken by another project ({err.google_message})"
                    ) from err
                raise
        current = client.request("GET", "storage", path, resource=resource, params={"projection": "full"})

    if p["location"] and p["location"].upper() != current.get("location", "").upper():
        module.fail(
            f"option location: bucket {name} is in {current.get('location')}; a bucket's location cannot change"
        )
    patch = bucket_patch(current, p)
    after = apply_patch(current, patch)
    if patch and not module.check_mode:
        after = client.request(
            "PATCH", "storage", path, resource=resource, body=patch,
            params={"ifMetagenerationMatch": current["metageneration"], "projection": "full"},
        )  # fmt: skip
    return {"changed": bool(patch), "bucket": after, "diff": {"before": view(current), "after": view(after)}}


def main() -> None:
    module = GoogleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "location": {"type": "str"},
            "storage_class": {"type": "str", "choices": ["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"]},
            "uniform_bucket_level_access": {"type": "bool", "default": True},
            "public_access_prevention": {"type": "str", "choices": ["enforced", "inherited"], "default": "enforced"},
            "versioning": {"type": "bool"},
            "lifecycle_rules": {"type": "list", "elements": "dict"},
            "purge_lifecycle_rules": {"type": "bool", "default": False},
            "labels": {"type": "dict"},
            "purge_labels": {"type": "bool", "default": False},
        }
    )
    module.run(run)


if __name__ == "__main__":
    main()
