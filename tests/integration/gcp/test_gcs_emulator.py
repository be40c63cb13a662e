"""gcp_storage_bucket and bucket IAM against a real GCS emulator (gcp-storage-emulator), not our fake.

This proves the wire format (paths, query, JSON bodies, auth header handling) against an independent
implementation. The emulator's known fidelity gaps, measured and written down here so nobody reads more into
this test than it shows:
- bucket insert keeps only the name (location is always US, uniform access off, no labels, no versioning), so
  the module's second run PATCHes what a real insert would have kept; against Google one run suffices (the
  discovery-checked fake covers that);
- PATCH replaces top-level fields wholesale and ignores ifMetagenerationMatch;
- setIamPolicy stores the policy without checking the etag.
"""

from __future__ import annotations

import json
import socket
import typing as t

import pytest
from ansible.module_utils.testing import patch_module_args
from gcp_storage_emulator import (
    server as emulator,  # a real dependency: requirements.txt pins it
)

from ansible_collections.mlplatform.mlflow.plugins.modules import (
    gcp_iam_member,
    gcp_storage_bucket,
)

BUCKET = {
    "name": "mlp-emulated-artifacts",
    "location": "US",  # the emulator creates every bucket in US
    "versioning": True,
    "lifecycle_rules": [{"action": {"type": "Delete"}, "condition": {"daysSinceNoncurrentTime": 30}}],
    "labels": {"app": "mlflow"},
}


@pytest.fixture
def gcs() -> t.Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = emulator.create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def run(module: t.Any, url: str, args: dict, capsys: pytest.CaptureFixture[str]) -> dict:
    full = {
        "project": "mlp-staging",
        "auth_kind": "accesstoken",
        "access_token": "emulator-ignores-it",
        "endpoint_overrides": {"storage": url},
        "_ansible_diff": True,
        **args,
    }
    with patch_module_args(full), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def test_bucket_against_the_emulator(gcs, capsys):
    first = run(gcp_storage_bucket, gcs, BUCKET, capsys)
    assert first["changed"] and first["bucket"]["name"] == BUCKET["name"], first
    second = run(gcp_storage_bucket, gcs, BUCKET, capsys)  # the emulator dropped the settings on insert
    assert second["changed"], second
    assert second["bucket"]["iamConfiguration"]["uniformBucketLevelAccess"] == {"enabled": True}
    assert second["bucket"]["iamConfiguration"]["publicAccessPrevention"] == "enforced"
    assert second["bucket"]["versioning"] == {"enabled": True} and second["bucket"]["labels"] == {"app": "mlflow"}
    third = run(gcp_storage_bucket, gcs, BUCKET, capsys)
    assert third["changed"] is False, third
    gone = run(gcp_storage_bucket, gcs, {"name": BUCKET["name"], "state": "absent"}, capsys)
    assert (
        gone["changed"]
        and run(gcp_storage_bucket, gcs, {"name": BUCKET["name"], "state": "absent"}, capsys)["changed"] is False
    )


def test_bucket_iam_member_against_the_emulator(gcs, capsys):
    run(gcp_storage_bucket, gcs, BUCKET, capsys)
    args = {
        "resource_type": "bucket",
        "resource": BUCKET["name"],
        "role": "roles/storage.objectViewer",
        "member": "serviceAccount:mlflow-serving@mlp-staging.iam.gserviceaccount.com",
    }
    first = run(gcp_iam_member, gcs, args, capsys)
    assert first["changed"] and args["member"] in first["members"], first
    assert run(gcp_iam_member, gcs, args, capsys)["changed"] is False
    removed = run(gcp_iam_member, gcs, {**args, "state": "absent"}, capsys)
    assert removed["changed"] and args["member"] not in removed["members"]
