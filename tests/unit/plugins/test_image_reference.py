"""Image references: parsing, the preflight filter, Artifact Registry names, the inventories' composition, the
push decision, and reading OCI archives written the way cluster/images.sh writes them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from ansible_collections.mlplatform.mlflow.plugins.filter.images import image_reference_problem
from ansible_collections.mlplatform.mlflow.plugins.module_utils import image_reference as refs
from ansible_collections.mlplatform.mlflow.plugins.module_utils import oci
from ansible_collections.mlplatform.mlflow.plugins.modules.gcp_artifact_registry_image import plan

ROOT = Path(__file__).resolve().parents[3]
DIGEST = "sha256:" + "0123456789abcdef" * 4
AR = "europe-west1-docker.pkg.dev/mlp-staging/mlflow/mlflow-server"


@pytest.mark.parametrize("text, expected", [
    (f"{AR}:3.17.2", refs.Reference("europe-west1-docker.pkg.dev", "mlp-staging/mlflow/mlflow-server", "3.17.2", "")),
    (f"{AR}:3.17.2@{DIGEST}",
     refs.Reference("europe-west1-docker.pkg.dev", "mlp-staging/mlflow/mlflow-server", "3.17.2", DIGEST)),
    (f"{AR}@{DIGEST}", refs.Reference("europe-west1-docker.pkg.dev", "mlp-staging/mlflow/mlflow-server", "", DIGEST)),
    ("docker.io/mlplatform/mlflow:3.17.2", refs.Reference("docker.io", "mlplatform/mlflow", "3.17.2", "")),
    ("127.0.0.1:5000/a/b_c__d-e:v1", refs.Reference("127.0.0.1:5000", "a/b_c__d-e", "v1", "")),
    ("localhost/x:y", refs.Reference("localhost", "x", "y", "")),
])
def test_references_parse_and_print_back(text, expected):
    ref = refs.parse_reference(text)
    assert ref == expected
    assert str(ref) == text
    assert image_reference_problem(text) == ""


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("mlflow:3.17.2", "names no registry"),
    ("mlplatform/mlflow:3.17.2", "names no registry"),
    ("docker.io/mlplatform/mlflow", "neither a tag nor a digest"),
    (f"{AR}:3.17.2@sha256:abc", "not an image digest"),
    (f"{AR}@md5:{'a' * 32}", "not an image digest"),
    (f"{AR}@sha256:{'A' * 64}", "not an image digest"),
    (f"{AR}:3.17.2@sha256:{'a' * 63}", "not an image digest"),
    ("europe-west1-docker.pkg.dev/Project/mlflow/x:1", "not an image path"),
    ("europe-west1-docker.pkg.dev/p//x:1", "not an image path"),
    (f"{AR}:-bad", "not an image tag"),
    (f"{AR}:{'t' * 129}", "not an image tag"),
    (f" {AR}:1", "spaces"),
    ("exa_mple.com/x:1", "not a registry host"),
])
def test_bad_references_say_what_is_wrong(text, reason):
    with pytest.raises(ValueError, match=reason):
        refs.parse_reference(text)
    assert reason in image_reference_problem(text)


def test_filter_accepts_none_as_a_problem():
    assert "empty" in image_reference_problem(None)


@pytest.mark.parametrize("text, reason", [
    (f"{AR}:3.17.2@{DIGEST}", ""),
    ("europe-docker.pkg.dev/p-roject/r/i:1", ""),
    ("docker.io/mlplatform/mlflow:3.17.2", "not an Artifact Registry Docker host"),
    ("gcr.io/project/image:1", "not an Artifact Registry Docker host"),
    ("europe-west1-docker.pkg.dev.evil.example/p/r/i:1", "not an Artifact Registry Docker host"),
    ("europe-west1-docker.pkg.dev/project/image:1", "PROJECT/REPOSITORY/IMAGE"),
    (f"europe-west1-docker.pkg.dev/p/r/i@sha256:{'z' * 64}", "not an image digest"),
])
def test_artifact_registry_references(text, reason):
    problem = image_reference_problem(text, artifact_registry=True)
    assert (reason in problem) if reason else problem == ""


def test_artifact_registry_reference_composes_and_names_the_bad_part():
    assert refs.artifact_registry_reference("europe-west1", "mlp-staging", "mlflow", "mlflow-server", "3.17.2",
                                            DIGEST) == f"{AR}:3.17.2@{DIGEST}"
    assert refs.artifact_registry_reference("us", "mlp-staging", "mlflow", "mlflow-server", digest=DIGEST) == \
        f"us-docker.pkg.dev/mlp-staging/mlflow/mlflow-server@{DIGEST}"
    for args, part in [
        (("Europe", "mlp-staging", "mlflow", "m", "1"), "location"),
        (("europe-west1", "X", "mlflow", "m", "1"), "project"),
        (("europe-west1", "mlp-staging", "Mlflow", "m", "1"), "repository"),
        (("europe-west1", "mlp-staging", "mlflow", "M", "1"), "image"),
        (("europe-west1", "mlp-staging", "mlflow", "m", ".1"), "tag"),
        (("europe-west1", "mlp-staging", "mlflow", "m", "1", "sha256:0"), "digest"),
        (("europe-west1", "mlp-staging", "mlflow", "m"), "tag"),
    ]:
        with pytest.raises(ValueError, match=f"^{part}:"):
            refs.artifact_registry_reference(*args)


@pytest.mark.parametrize("local, remote, changed", [
    (DIGEST, None, True),  # the tag does not exist
    (DIGEST, "sha256:" + "f" * 64, True),  # the tag serves another image
    (DIGEST, DIGEST, False),
])
def test_push_exactly_when_the_tag_serves_another_digest(local, remote, changed):
    decision = plan(local, remote)
    assert decision["changed"] is changed
    assert decision["diff"] == {"before": {"digest": remote or ""}, "after": {"digest": local}}


def test_parse_challenge():
    assert oci.parse_challenge('Bearer realm="https://europe-west1-docker.pkg.dev/v2/token",'
                               'service="europe-west1-docker.pkg.dev",scope="repository:p/r/i:pull"') == (
        "bearer", {"realm": "https://europe-west1-docker.pkg.dev/v2/token", "service": "europe-west1-docker.pkg.dev",
                   "scope": "repository:p/r/i:pull"})
    assert oci.parse_challenge('Basic realm="it-image"') == ("basic", {"realm": "it-image"})


# ------------------------------------------------------------------------------------- OCI archives
def layout_archive(path: Path, manifests: list[tuple[bytes, str]], damage: bool = False) -> None:
    """A tarred OCI layout, written the way cluster/images.sh writes it (members under ./)."""
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    descriptors = []
    for manifest, ref in manifests:
        digest = oci.sha256_digest(manifest)
        files[f"blobs/sha256/{digest.split(':')[1]}"] = manifest + (b" " if damage else b"")
        descriptors.append({"mediaType": "application/vnd.refs.image.manifest.v1+json", "digest": digest,
                            "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": ref}})
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": descriptors}).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def manifest(layer: str) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.refs.image.manifest.v1+json",
                       "config": {"digest": "sha256:" + "c" * 64, "size": 10},
                       "layers": [{"digest": "sha256:" + layer * 64, "size": 20}]}).encode()


def test_read_oci_archive(tmp_path):
    path = tmp_path / "one.refs.tar"
    layout_archive(path, [(manifest("a"), "3.17.2")])
    image = oci.read_oci_archive(str(path))
    assert image.digest == oci.sha256_digest(manifest("a")) and image.ref_name == "3.17.2"
    assert [b["digest"] for b in image.blobs] == ["sha256:" + "c" * 64, "sha256:" + "a" * 64]

    two = tmp_path / "two.refs.tar"
    layout_archive(two, [(manifest("a"), "x"), (manifest("b"), "y")])
    with pytest.raises(oci.RegistryError, match="holds 2 images"):
        oci.read_oci_archive(str(two))
    assert oci.read_oci_archive(str(two), "y").digest == oci.sha256_digest(manifest("b"))
    with pytest.raises(oci.RegistryError, match="no single image tagged 'z'"):
        oci.read_oci_archive(str(two), "z")

    damaged = tmp_path / "damaged.refs.tar"
    layout_archive(damaged, [(manifest("a"), "x")], damage=True)
    with pytest.raises(oci.RegistryError, match="damaged"):
        oci.read_oci_archive(str(damaged))
    with pytest.raises(oci.RegistryError, match="cannot read"):
        oci.read_oci_archive(str(tmp_path / "missing.tar"))


# ----------------------------------------------------------------------- the inventories' composition
def rendered(environment: str, **extra: str) -> dict:
    """The image variables as Ansible templates them from the inventory (one ansible run)."""
    names = ["mlflow_server_image", "model_serving_image", "gcp_resources_image_tag"]
    command = ["ansible", "-i", str(ROOT / "inventories" / environment), "localhost", "-m", "ansible.builtin.debug",
               "-a", "msg={{ {" + ", ".join(f"'{n}': {n}" for n in names) + "} }}", "-e", "gcp_project=mlp-staging"]
    for key, value in extra.items():
        command += ["-e", f"{key}={value}"]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, env=env, timeout=120)
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]


@pytest.mark.parametrize("environment, region", [("staging", "europe-west1"), ("prod", "europe-west4")])
def test_inventories_deploy_the_artifact_registry_image_by_digest_when_known(environment, region):
    name = f"{region}-docker.pkg.dev/mlp-staging/mlflow/mlflow-server"
    assert rendered(environment)["mlflow_server_image"] == f"{name}:3.17.2"
    by_digest = rendered(environment, mlplatform_image_digest=DIGEST)
    assert by_digest["mlflow_server_image"] == f"{name}:3.17.2@{DIGEST}"
    assert image_reference_problem(by_digest["mlflow_server_image"], artifact_registry=True) == ""
    assert by_digest["model_serving_image"] == by_digest["mlflow_server_image"]
    # What publish_image.yml pushes (the tag) is what the inventory deploys.
    assert by_digest["gcp_resources_image_tag"] == "3.17.2"
    bad = rendered(environment, mlplatform_image_digest="sha256:abc")["mlflow_server_image"]
    assert "not an image digest" in image_reference_problem(bad)


class _Response:
    def __init__(self, status: int, headers: dict | None = None, body: dict | None = None) -> None:
        self.status_code, self.headers, self._body = status, headers or {}, body or {}
        self.content, self.text = json.dumps(self._body).encode(), json.dumps(self._body)

    def json(self) -> dict:
        return self._body


class _Session:
    """Answers from a script of (method, url-prefix) -> response and records each request's headers."""

    def __init__(self, answers: list) -> None:
        self.headers: dict = {}
        self.answers, self.seen = answers, []

    def request(self, method, url, headers=None, timeout=None, **kwargs):
        self.seen.append((method, url, dict(headers or {})))
        for i, (want_method, prefix, response) in enumerate(self.answers):
            if method == want_method and url.startswith(prefix):
                del self.answers[i]
                return response
        raise AssertionError(f"unexpected {method} {url}")

    def get(self, url, headers=None, timeout=None):
        return self.request("GET", url, headers=headers, timeout=timeout)


def _client(session, base="https://europe-west1-docker.pkg.dev"):
    return oci.RegistryClient(base, "p/mlflow/mlflow-server", lambda: "ya29.secret", session=session,
                              sleep=lambda _s: None)


def test_credentials_go_only_to_the_registry_host():
    base = "https://europe-west1-docker.pkg.dev"
    session = _Session([
        ("GET", f"{base}/v2/", _Response(401, {"WWW-Authenticate": 'Basic realm="ar"'})),
        ("GET", f"{base}/v2/", _Response(200)),
        ("POST", f"{base}/v2/p/mlflow/mlflow-server/blobs/uploads/",
         _Response(202, {"Location": "https://storage.example.net/upload/1"})),
        ("PATCH", "https://storage.example.net/upload/1", _Response(202)),
        ("PUT", "https://storage.example.net/upload/1", _Response(201)),
    ])
    client = _client(session)
    client.ping()
    client.upload_blob(DIGEST, 3, io.BytesIO(b"abc"))
    assert "Authorization" not in session.headers
    sent = {(method, url.split("?")[0]): "Authorization" in headers for method, url, headers in session.seen}
    assert sent[("GET", f"{base}/v2/")] is True and sent[("POST", f"{base}/v2/p/mlflow/mlflow-server/blobs/uploads/")]
    assert not sent[("PATCH", "https://storage.example.net/upload/1")]
    assert not sent[("PUT", "https://storage.example.net/upload/1")]


@pytest.mark.parametrize("realm", ["https://tokens.example.net/token", "http://europe-west1-docker.pkg.dev/v2/token"])
def test_a_token_service_elsewhere_gets_no_credentials(realm):
    session = _Session([("GET", "https://europe-west1-docker.pkg.dev/v2/",
                         _Response(401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="ar"'}))])
    with pytest.raises(oci.RegistryError, match="credentials are not sent there"):
        _client(session).ping()
    assert len(session.seen) == 1


@pytest.mark.parametrize("url, safe", [("https://r.example", True), ("http://127.0.0.1:5000", True),
                                       ("http://localhost:5000", True), ("http://mirror.example", False)])
def test_plain_http_only_to_loopback(url, safe):
    assert oci.is_safe_url(url) is safe
