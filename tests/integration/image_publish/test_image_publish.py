"""The server image, pushed to Artifact Registry (a real OCI registry on loopback), then deployed by digest.

playbooks/publish_image.yml pushes the mlflow archive of cluster/images.sh to CNCF distribution's registry on
127.0.0.1:5000 under an Artifact Registry name (europe-west1-docker.pkg.dev/PROJECT/mlflow/mlflow-server): check
mode first (reports the push, writes nothing), then for real, then again (nothing to do). containerd resolves
europe-west1-docker.pkg.dev to that registry (certs.d hosts.toml), so the kubelet pulls the AR-named image from
it; the running pod's imageID must be the pushed digest and /health must answer.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from ansible_collections.mlplatform.mlflow.plugins.module_utils import oci

from ..ansible_run import ROOT, run_playbook
from .registry import running_registry

NS = "it-image"
NODE_PORT = 30531  # taken elsewhere: 30500 (local inventory), 30511-30513 (molecule), 30521-30561 (other tests)
LOCATION = "europe-west1"
AR_HOST = f"{LOCATION}-docker.pkg.dev"
PROJECT = f"it-image-{uuid.uuid4().hex[:6]}"  # a fresh name per run: the kubelet must pull, never reuse
REPOSITORY = "mlflow"
TAG = "3.17.2"
NAME = f"{AR_HOST}/{PROJECT}/{REPOSITORY}/mlflow-server"
CERTS_D = Path("/var/lib/mlplatform-cluster/etc/certs.d")
CONTAINERD_SOCK = "/var/lib/mlplatform-cluster/run/containerd/containerd.sock"
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
                  "application/vnd.docker.distribution.manifest.v2+json")


def mlflow_listing() -> tuple[str, Path]:
    """The mlflow image's reference and its archive, as cluster/images.sh lists them (built by cluster.sh build)."""
    proc = subprocess.run([str(ROOT / "cluster" / "images.sh"), "list", "mlflow"], capture_output=True, text=True,
                          check=True, timeout=60)
    reference, archive = proc.stdout.strip().split("\t")
    assert Path(archive).is_file(), f"{archive} is missing: run cluster/images.sh build mlflow"
    return reference, Path(archive)


def mlflow_archive() -> Path:
    return mlflow_listing()[1]


def archive_digest(archive: Path) -> str:
    """The manifest digest in the archive's index.json, read independently of the module."""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("./index.json"))
    (manifest,) = index["manifests"]
    return manifest["digest"]


def test_the_mlflow_archive_of_images_sh_reads_as_one_tagged_image():
    reference, archive = mlflow_listing()
    image = oci.read_oci_archive(str(archive))
    assert reference.endswith(":" + image.ref_name)
    assert len(image.blobs) == 3 and image.digest.startswith("sha256:")


def registry_digest(url: str, tag: str) -> str | None:
    request = urllib.request.Request(f"{url}/v2/{PROJECT}/{REPOSITORY}/mlflow-server/manifests/{tag}",
                                     method="HEAD", headers={"Accept": MANIFEST_TYPES})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def kubectl_json(*args: str) -> dict:
    proc = subprocess.run(["kubectl", "get", "-o", "json", *args], capture_output=True, text=True, check=True,
                          timeout=60)
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def registry(tmp_path_factory, kubeconfig):
    """The loopback registry, and the Artifact Registry host mirrored to it for containerd while the test runs."""
    hosts = CERTS_D / AR_HOST / "hosts.toml"
    created = not hosts.exists()
    if created:  # cluster.sh up writes it; a cluster started before that change needs it now (read at each pull)
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text('server = "http://127.0.0.1:5000"\n\n[host."http://127.0.0.1:5000"]\n'
                         '  capabilities = ["pull", "resolve"]\n')
    try:
        with running_registry(tmp_path_factory.mktemp("registry")) as (url, log):
            yield url, log
    finally:
        if created:
            hosts.unlink()
            hosts.parent.rmdir()
        # The AR-named references the kubelet pulled (the content stays: docker.io/mlplatform/mlflow shares it).
        listed = subprocess.run(["ctr", "-a", CONTAINERD_SOCK, "-n", "k8s.io", "images", "ls", "-q"],
                                capture_output=True, text=True, check=False)
        refs = [r for r in listed.stdout.split() if r.startswith(f"{AR_HOST}/{PROJECT}/")]
        if refs:
            subprocess.run(["ctr", "-a", CONTAINERD_SOCK, "-n", "k8s.io", "images", "rm", *refs],
                           capture_output=True, check=False)


def publish(archive: Path, url: str, check: bool = False):
    return run_playbook("playbooks/publish_image.yml", {
        "publish_image_archive": str(archive),
        "gcp_resources_project": PROJECT,
        "gcp_resources_region": LOCATION,
        "gcp_resources_artifact_registry_repository": REPOSITORY,
        "gcp_resources_image_tag": TAG,
        "gcp_resources_image_registry_url": url,
    }, check=check, timeout=600)


def test_publish_then_deploy_by_digest(registry, namespaces_to_delete, capsys):
    url, log = registry
    archive = mlflow_archive()
    digest = archive_digest(archive)

    started = time.monotonic()
    planned = publish(archive, url, check=True)
    assert planned.rc == 0, planned.output[-3000:]
    assert planned.changed == 1, "check mode reports the push"
    assert f"would push {NAME}@{digest}" in planned.text
    assert registry_digest(url, TAG) is None, "check mode wrote nothing"
    assert '"PUT ' not in log.read_text() and '"POST ' not in log.read_text(), "check mode uploaded nothing"

    check_seconds = time.monotonic() - started
    started = time.monotonic()
    pushed = publish(archive, url)
    push_seconds = time.monotonic() - started
    assert pushed.rc == 0, pushed.output[-3000:]
    assert pushed.changed == 1
    assert f"pushed {NAME}@{digest}" in pushed.text
    assert f'mlplatform_image_digest: "{digest}"' in pushed.text
    assert registry_digest(url, TAG) == digest, "the tag serves the archive's manifest, byte for byte"
    assert registry_digest(url, digest) == digest

    started = time.monotonic()
    again = publish(archive, url)
    again_seconds = time.monotonic() - started
    assert again.rc == 0, again.output[-3000:]
    assert again.changed == 0, "the tag already serves the digest: nothing is pushed"
    assert f"already there: {NAME}@{digest}" in again.text
    assert log.read_text().count('"PUT /v2/') == 4, "one PUT per blob (3) and one for the manifest, only once"

    reference = f"{NAME}:{TAG}@{digest}"
    namespaces_to_delete.append(NS)
    started = time.monotonic()
    deployed = run_playbook("tests/integration/image_publish/deploy.yml", {
        "mlflow_server_namespace": NS,
        "mlflow_server_image": reference,
        "mlflow_server_artifacts_destination": "pvc",
        "mlflow_server_gcs_emulator_enabled": False,
        "mlflow_server_node_port": NODE_PORT,
        "mlflow_server_extra_allowed_hosts": [f"127.0.0.1:{NODE_PORT}"],
        # A fresh database: nothing to back up, now or nightly; the image, not auth, is under test here.
        "mlflow_server_backup_before_migrate": False,
        "mlflow_server_backup_schedule": "",
        "mlflow_server_auth_enabled": False,
    }, inventory="inventories/local", timeout=900)
    deploy_seconds = time.monotonic() - started
    assert deployed.rc == 0, deployed.output[-4000:]

    pods = kubectl_json("-n", NS, "pods", "-l", "app.kubernetes.io/component=server")["items"]
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 1, [p["metadata"]["name"] for p in pods]
    (spec,) = [c for c in running[0]["spec"]["containers"] if c["name"] == "mlflow"]
    assert spec["image"] == reference
    (status,) = [s for s in running[0]["status"]["containerStatuses"] if s["name"] == "mlflow"]
    assert status["ready"] is True
    # The runtime reports one of the image's names (docker.io/mlplatform/mlflow shares the content); the digest is
    # what identifies the image.
    assert status["imageID"].rsplit("@", 1)[1] == digest, f"the pod runs {status['imageID']}, not {digest}"
    # containerd resolved the AR name through the mirror (ns= names the host it stands for); the layers it already
    # had (same content as docker.io/mlplatform/mlflow) are not fetched again.
    resolves = re.findall(rf'"(?:HEAD|GET) /v2/{PROJECT}/{REPOSITORY}/mlflow-server/manifests/{digest}'
                          rf'\?ns={AR_HOST} HTTP/1.1" 200 [^"]*"[^"]*" "containerd/', log.read_text())
    assert resolves, "containerd resolved the image in the loopback registry under its Artifact Registry name"
    # The pod is Ready; kube-proxy programs the new node port from the Service's endpoints a moment later (CI saw a
    # connection refused right after the rollout).
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{NODE_PORT}/health", timeout=10) as response:
                assert response.status == 200 and response.read().strip() == b"OK"
            break
        except urllib.error.URLError as exc:
            if isinstance(exc, urllib.error.HTTPError) or time.monotonic() > deadline:
                raise
            time.sleep(1)

    with capsys.disabled():
        print(f"\n[image_publish] {archive.name} -> {reference}: ansible-playbook runs: check {check_seconds:.1f} s, "
              f"push {push_seconds:.1f} s, no-op {again_seconds:.1f} s; "
              f"deploy {deploy_seconds:.1f} s; pod imageID {status['imageID']}; pushed digest == archive digest "
              f"== imageID digest: {digest}")


@pytest.mark.parametrize("variables, expected", [
    ({"publish_image_archive": ""}, "pass -e publish_image_archive=ARCHIVE"),
    ({"publish_image_archive": "/nonexistent.oci.tar"}, "gcp_resources_image_archive"),
    ({"gcp_resources_image_tag": ""}, "set gcp_resources_image_tag"),
    ({"gcp_resources_image_tag": "-x"}, "'-x' is not an image tag"),
    ({"gcp_resources_image_name": "MLflow"}, "gcp_resources_image_name"),
    ({"gcp_resources_artifact_registry_repository": "Bad_Repo"}, "gcp_resources_artifact_registry_repository"),
    ({"gcp_resources_image_registry_url": "127.0.0.1:5000"}, "gcp_resources_image_registry_url"),
])
def test_publish_refuses_bad_input_before_any_request(variables, expected):
    archive = mlflow_archive()
    result = run_playbook("playbooks/publish_image.yml", {
        "publish_image_archive": str(archive), "gcp_resources_project": PROJECT, "gcp_resources_region": LOCATION,
        "gcp_resources_image_tag": TAG,
        "gcp_resources_image_registry_url": "http://127.0.0.1:1",  # nothing listens: a request would fail otherwise
        **variables,
    }, timeout=120)
    assert result.rc != 0
    assert expected in result.text, result.output[-2500:]
    assert "no answer from" not in result.text and "Traceback" not in result.output


def test_credentials_go_to_a_registry_that_asks_and_nowhere_else(tmp_path, monkeypatch):
    """A registry that wants credentials (htpasswd: user oauth2accesstoken, the access token as the password, as
    Artifact Registry takes them): the push authenticates; the token is in no argument and no output; a wrong
    token fails with a message that says what to check."""
    token = f"ya29.it-{uuid.uuid4().hex}"
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-iBc", str(htpasswd), "oauth2accesstoken"], input=token, text=True, check=True,
                   capture_output=True)
    proc = subprocess.run([str(ROOT / "cluster" / "images.sh"), "list", "busybox"], capture_output=True, text=True,
                          check=True, timeout=60)
    archive = Path(proc.stdout.strip().split("\t")[1])
    assert archive.is_file(), f"{archive} is missing: run cluster/images.sh build busybox"
    with running_registry(tmp_path, addr="127.0.0.1:5001", htpasswd=htpasswd) as (url, log):
        # The token reaches the module only through the environment (GCP_ACCESS_TOKEN), never through argv.
        monkeypatch.setenv("GCP_ACCESS_TOKEN", token)
        extra = {"publish_image_archive": str(archive), "gcp_resources_project": PROJECT,
                 "gcp_resources_region": LOCATION, "gcp_resources_image_name": "busybox",
                 "gcp_resources_image_tag": "1.35", "gcp_resources_image_registry_url": url,
                 "mlplatform_gcp_auth_kind": "accesstoken"}
        first = run_playbook("playbooks/publish_image.yml", extra, timeout=300)
        assert first.rc == 0, first.output[-3000:]
        assert first.changed == 1 and "publish_image: OK, pushed" in first.text
        again = run_playbook("playbooks/publish_image.yml", extra, timeout=300)
        assert again.rc == 0 and again.changed == 0, again.output[-3000:]
        assert token not in first.output + again.output
        assert '"PUT /v2/' in log.read_text() and " 401 " in log.read_text(), "challenged, then authenticated"

        monkeypatch.setenv("GCP_ACCESS_TOKEN", "ya29.wrong")
        refused = run_playbook("playbooks/publish_image.yml", {**extra, "gcp_resources_image_tag": "other"},
                               timeout=300)
        assert refused.rc != 0
        assert "HTTP 401" in refused.text and "roles/artifactregistry.writer" in refused.text, refused.output[-3000:]
        assert "ya29.wrong" not in refused.output
