#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: gcp_artifact_registry_image
short_description: Push a local OCI image archive to an Artifact Registry Docker repository under a tag
version_added: 0.1.0
description:
  - Makes the tag O(tag) of the image O(name) in the Docker repository O(repository) point at the image in a local
    OCI archive (a tarred OCI image layout, as C(cluster/images.sh) writes them), so that
    C(LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/NAME:TAG) serves that image.
  - Reads the manifest digest of the archive, asks the registry which digest the tag serves (a HEAD request), and
    pushes only when they differ; then only the blobs the registry lacks are uploaded. The manifest is pushed
    byte for byte, so the digest in the registry is the archive's.
  - Talks to the registry with the OCI distribution (Docker Registry v2) API. The Google access token of the
    credentials (see the auth options) is the password of the user C(oauth2accesstoken), sent only when the
    registry challenges, only in request headers to the registry's own host (and to a token service on that host,
    over HTTPS); it never appears in arguments, results or messages.
options:
  archive:
    description: Path of the OCI archive on the machine the module runs on.
    type: path
    required: true
  archive_tag:
    description:
      - The image of the archive to push, by its C(org.opencontainers.image.ref.name) annotation (its tag in the
        layout). Needed only when the archive holds more than one image.
    type: str
  location:
    description: Location of the repository, for example V(europe-west1) or V(europe).
    type: str
    required: true
  repository:
    description: Repository ID of the Docker repository (see M(mlplatform.mlflow.gcp_artifact_registry_repository)).
    type: str
    required: true
  name:
    description: Image name inside the repository, for example V(mlflow-server).
    type: str
    required: true
  tag:
    description: Tag to point at the image, for example V(3.17.2).
    type: str
    required: true
  registry_url:
    description:
      - Base URL to send the registry requests to instead of C(https://LOCATION-docker.pkg.dev), for tests and
        pull-through mirrors. It must be C(https://), or C(http://) to a loopback address (plain HTTP, for tests).
        The image keeps its Artifact Registry name in the results.
    type: str
  state:
    description: V(present) is the only state; delete images with C(gcloud artifacts docker images delete).
    type: str
    choices: [present]
    default: present
extends_documentation_fragment:
  - mlplatform.mlflow.google
attributes:
  check_mode:
    support: full
    description: Reads the archive and the digest the tag serves, reports whether a push is needed, uploads nothing.
  diff_mode:
    support: full
    description: Shows the digest the tag serves before and after.
notes:
  - The caller needs C(roles/artifactregistry.writer) on the repository.
  - Single-platform images only (an archive whose manifest is an image index is refused).
author:
  - mlplatform team (@mlplatform)
"""

EXAMPLES = r"""
- name: Push the MLflow server image built by cluster/images.sh
  mlplatform.mlflow.gcp_artifact_registry_image:
    project: my-project
    location: europe-west1
    repository: mlflow
    name: mlflow-server
    tag: 3.17.2
    archive: /var/cache/mlplatform/images/mlflow-3.17.2-8c6239285fa7.oci.tar
  register: pushed

- name: Show the reference to deploy
  ansible.builtin.debug:
    msg: "mlflow_server_image: {{ pushed.reference }}"
"""

RETURN = r"""
digest:
  description: Manifest digest of the image (the archive's, which the tag serves after the push).
  returned: always
  type: str
  sample: sha256:0f2d1b8a6c0e4bd19a8f0e0f6d3c4b5a69788796a5b4c3d2e1f00112233445566
image:
  description: The image by digest, C(LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/NAME@DIGEST).
  returned: always
  type: str
  sample: europe-west1-docker.pkg.dev/my-project/mlflow/mlflow-server@sha256:0f2d...5566
reference:
  description: The reference to deploy, with the tag for people and the digest for the kubelet.
  returned: always
  type: str
  sample: europe-west1-docker.pkg.dev/my-project/mlflow/mlflow-server:3.17.2@sha256:0f2d...5566
previous_digest:
  description: The digest the tag served before; empty when the tag did not exist.
  returned: always
  type: str
upload:
  description: Blobs uploaded, blobs the registry already had, and bytes uploaded.
  returned: when the image was pushed
  type: dict
  sample: {blobs_uploaded: 3, blobs_present: 0, bytes_uploaded: 292340123}
retries:
  description: Requests that were retried after a transient error.
  returned: when there were any
  type: list
  elements: str
"""

from ansible_collections.mlplatform.mlflow.plugins.module_utils.google import GoogleModule, check_repository_id
from ansible_collections.mlplatform.mlflow.plugins.module_utils.image_reference import (
    artifact_registry_host,
    check_image_name,
    check_location,
    check_tag,
)
from ansible_collections.mlplatform.mlflow.plugins.module_utils.oci import RegistryClient, is_safe_url, read_oci_archive


def plan(local_digest: str, remote_digest: str | None) -> dict:
    """What a run changes: a push exactly when the tag is missing or serves another manifest."""
    return {
        "changed": remote_digest != local_digest,
        "diff": {"before": {"digest": remote_digest or ""}, "after": {"digest": local_digest}},
    }


def run(module: GoogleModule) -> dict:
    p = module.params
    project = module.require_project()
    module.validate(
        [
            ("location", check_location(p["location"])),
            ("repository", check_repository_id(p["repository"])),
            ("name", check_image_name(p["name"])),
            ("tag", check_tag(p["tag"])),
        ]
    )
    registry_url = p["registry_url"] or f"https://{artifact_registry_host(p['location'])}"
    if not is_safe_url(registry_url):
        module.fail(f"option registry_url: '{registry_url}' must be an https:// URL (plain http:// only to a loopback "
                    "address: the Google access token is sent to it)")
    local = read_oci_archive(p["archive"], p["archive_tag"] or "")
    path = f"{project}/{p['repository']}/{p['name']}"
    name = f"{artifact_registry_host(p['location'])}/{path}"
    registry = RegistryClient(
        registry_url,
        path,
        module.client.access_token,
        timeout=float(p["request_timeout"]),
        retries=int(p["retries"]),
    )
    try:
        registry.ping()
        remote = registry.manifest_digest(p["tag"])
        result = plan(local.digest, remote)
        result.update(
            digest=local.digest,
            image=f"{name}@{local.digest}",
            reference=f"{name}:{p['tag']}@{local.digest}",
            previous_digest=remote or "",
        )
        if result["changed"] and not module.check_mode:
            result["upload"] = registry.push(p["archive"], local, p["tag"])
            served = registry.manifest_digest(p["tag"])
            if served != local.digest:
                module.fail(f"after the push, {name}:{p['tag']} serves {served}, not {local.digest}")
    finally:
        module.client.retry_log.extend(registry.retry_log)
    return result


def main() -> None:
    module = GoogleModule(
        argument_spec={
            "archive": {"type": "path", "required": True},
            "archive_tag": {"type": "str"},
            "location": {"type": "str", "required": True},
            "repository": {"type": "str", "required": True},
            "name": {"type": "str", "required": True},
            "tag": {"type": "str", "required": True},
            "registry_url": {"type": "str"},
            "state": {"type": "str", "choices": ["present"], "default": "present"},
        }
    )
    module.run(run)


if __name__ == "__main__":
    main()
