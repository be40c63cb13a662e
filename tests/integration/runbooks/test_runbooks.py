"""The runbooks of playbooks/ on the local cluster, for real, on a platform of their own (namespaces rb-XXXXXX).

The tests run in order and share one platform: converged at the previous MLflow minor, upgraded, backed up and
restored, its database password rotated under load, its database stopped and started, rendered, and finally torn
down. Each test asserts on what a user sees: MLflow's API, the cluster's objects, the runbook's message.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import stat
import subprocess
import time
import urllib.request
import uuid

import pytest
import yaml

from ..ansible_run import run_playbook
from ..load import Load

NS = f"rb-{uuid.uuid4().hex[:6]}"
SERVING_NS = f"{NS}-serving"
NODE_PORT = 30561  # taken elsewhere: 30500 (local inventory), 30511-30513 (molecule), 30521-30551 (tests, benchmarks)
TRACKING = f"http://127.0.0.1:{NODE_PORT}"
PREVIOUS_IMAGE = "docker.io/mlplatform/mlflow:3.16.1"
CURRENT_IMAGE = "docker.io/mlplatform/mlflow:3.17.2"
ADMIN_PASSWORD = secrets.token_urlsafe(18)
CONVERGE = "tests/integration/runbooks/converge.yml"
# A Deployment shaped like one model_serving rolls out (labels, set, annotations), cheap to run: what status.yml
# and teardown.yml see of a served model.
SERVED_MODEL = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {
        "name": "iris", "namespace": SERVING_NS,
        "labels": {"app.kubernetes.io/name": "mlflow-model", "app.kubernetes.io/instance": "iris",
                   "app.kubernetes.io/component": "model-server", "app.kubernetes.io/managed-by": "mlplatform.mlflow",
                   "mlplatform.mlflow/object-set": "model-serving", "mlplatform.mlflow/track": "stable"},
        "annotations": {"mlplatform.mlflow/model-uri": "models:/iris/3", "mlplatform.mlflow/model-version": "3",
                        "mlplatform.mlflow/previous-version": "2"},
    },
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/instance": "iris", "mlplatform.mlflow/track": "stable"}},
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/instance": "iris", "mlplatform.mlflow/track": "stable"}},
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "model", "image": "docker.io/mlplatform/busybox:1.35", "command": ["sleep", "86400"],
                    "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "16Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}},
                }],
            },
        },
    },
}


def platform_vars(**extra) -> dict:
    """The local inventory pointed at this test's namespaces, node port and admin password."""
    return {
        "mlflow_server_namespace": NS,
        "mlflow_server_artifacts_destination": "pvc",
        "mlflow_server_gcs_emulator_enabled": False,
        "mlflow_server_node_port": NODE_PORT,
        "mlflow_server_extra_allowed_hosts": [f"127.0.0.1:{NODE_PORT}"],
        "mlflow_server_auth_admin_password": ADMIN_PASSWORD,
        "model_serving_namespace": SERVING_NS,
        "model_serving_tracking_uri": TRACKING,
        "model_serving_tracking_uri_in_cluster": f"http://mlflow.{NS}.svc.cluster.local",
        "model_serving_tracking_password": ADMIN_PASSWORD,
        "model_serving_models": [],
        **extra,
    }


def run(playbook: str, **extra):
    """A runbook as a user runs it: the local inventory, this test's platform as extra vars."""
    started = time.monotonic()
    result = run_playbook(playbook, platform_vars(**extra), inventory="inventories/local")
    result.seconds = round(time.monotonic() - started)
    return result


def kubectl(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, check=check, input=stdin, timeout=600)


def kubectl_json(*args: str) -> dict:
    return json.loads(kubectl("get", "-o", "json", *args).stdout)


def secret_value(name: str, key: str) -> str:
    return base64.b64decode(kubectl_json("-n", NS, "secret", name)["data"][key]).decode()


def server_pods() -> set[str]:
    pods = kubectl_json("-n", NS, "pods", "-l", "app.kubernetes.io/component=server")["items"]
    return {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def db_login(password: str) -> int:
    """Exit status of a fresh password login to the in-cluster PostgreSQL (over TCP, as the server logs in)."""
    return kubectl("-n", NS, "exec", "mlflow-db-0", "-c", "database", "--", "env", f"PGPASSWORD={password}",
                   "psql", "-X", "-h", "127.0.0.1", "-U", "mlflow", "-d", "mlflow", "-tAc", "select 1",
                   check=False).returncode


def figures(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n[runbooks] {text}")


@pytest.fixture(scope="module")
def platform(kubeconfig, namespaces_to_delete):
    namespaces_to_delete += [NS, SERVING_NS]  # deleted when the module ends, also after a failed converge
    result = run(CONVERGE, mlflow_server_image=PREVIOUS_IMAGE)
    assert result.rc == 0, result.output[-4000:]
    kubectl("apply", "-f", "-", stdin=json.dumps(SERVED_MODEL))
    kubectl("-n", SERVING_NS, "rollout", "status", "deploy/iris", "--timeout=120s")


@pytest.fixture(scope="module")
def client(platform):
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    mp.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    import mlflow

    yield mlflow.MlflowClient(tracking_uri=TRACKING)
    mp.undo()


class TrackingCalls(Load):
    """Authenticated tracking API calls, a metric written then experiments searched, about `rate` per second from
    4 threads, without retries: every error or non-2xx answer is a failure."""

    def __init__(self, run_id: str, rate: int = 20) -> None:
        super().__init__(rate, threads=4)
        self.run_id = run_id
        self.auth = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        self.steps = itertools.count()
        self.started = self.stopped = 0.0

    def request(self):
        step = next(self.steps)
        if step % 2:
            path, body = "/api/2.0/mlflow/experiments/search?max_results=5", None
        else:
            path = "/api/2.0/mlflow/runs/log-metric"
            body = json.dumps({"run_id": self.run_id, "key": "load", "value": step,
                               "timestamp": int(time.time() * 1000), "step": step}).encode()
        request = urllib.request.Request(TRACKING + path, data=body,
                                         headers={"Authorization": self.auth, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=15) as response:
            json.loads(response.read())
            return response.status

    @property
    def per_second(self) -> float:
        return self.sent / max(1e-9, self.stopped - self.started)

    def __enter__(self):
        self.started = time.monotonic()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self.stopped = time.monotonic()


def test_upgrade_from_previous_minor_preserves_data(client, capsys):
    deployment = kubectl_json("-n", NS, "deployment", "mlflow")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == PREVIOUS_IMAGE
    name = f"upgrade-{uuid.uuid4().hex[:6]}"
    experiment_id = client.create_experiment(name, tags={"made-by": PREVIOUS_IMAGE})
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "accuracy", 0.93)
    client.log_param(run_id, "C", "1.0")

    result = run("playbooks/upgrade_mlflow.yml", mlflow_server_image=CURRENT_IMAGE,
                 upgrade_mlflow_tracking_uri=TRACKING)

    assert result.rc == 0, result.output[-4000:]
    message = re.search(r"upgrade_mlflow: OK, .*", result.text)
    assert message and f"from {PREVIOUS_IMAGE}" in message.group(0), result.output[-3000:]
    deployment = kubectl_json("-n", NS, "deployment", "mlflow")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == CURRENT_IMAGE
    jobs = kubectl_json("-n", NS, "jobs", "-l", "app.kubernetes.io/component=upgrade")["items"]
    assert [j["metadata"]["annotations"]["mlplatform.mlflow/image"] for j in jobs if j["status"].get("succeeded")] \
        == [CURRENT_IMAGE]
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None and experiment.tags["made-by"] == PREVIOUS_IMAGE
    data = client.get_run(run_id).data
    assert data.metrics == {"accuracy": 0.93} and data.params == {"C": "1.0"}
    figures(capsys, f"upgrade {PREVIOUS_IMAGE} -> {CURRENT_IMAGE} in {result.seconds} s; experiment {name}, its run, "
                    "metric and param found after the upgrade")


def test_status_reports_a_healthy_platform(platform):
    result = run("playbooks/status.yml", model_serving_models=[{"name": "iris", "model": "iris", "alias": "champion"}])

    assert result.rc == 0, result.output[-4000:]
    for line in (f"OK server {NS}/mlflow: 1/1 ready, image {CURRENT_IMAGE}", "/health 200",
                 "experiments/search 200 as admin", "OK database postgresql: StatefulSet mlflow-db 1/1 ready",
                 "pg_isready OK", "select 1 through the server", "OK artifacts pvc",
                 f"OK model {SERVING_NS}/iris: 1/1 ready, serving models:/iris/3"):
        assert line in result.text, f"{line!r} missing from the report:\n{result.output[-3000:]}"
    assert "UNHEALTHY" not in result.text
    assert "status: OK, every component is healthy (4 checked)" in result.text


def test_backup_then_restore_brings_back_the_data_of_the_backup(client, capsys):
    kept = f"before-backup-{uuid.uuid4().hex[:6]}"
    client.create_experiment(kept)

    backup = run("playbooks/backup_db.yml")
    assert backup.rc == 0, backup.output[-4000:]
    match = re.search(r"backup file: (mlflow-\d{8}T\d{6}Z-manual\.dump) \((\d+) bytes\)", backup.text)
    assert match, backup.output[-3000:]
    backup_file, size = match.group(1), int(match.group(2))
    assert size > 10_000
    dropped = f"after-backup-{uuid.uuid4().hex[:6]}"
    client.create_experiment(dropped)
    pods = server_pods()

    refused = run("playbooks/restore_db.yml")
    assert refused.rc != 0 and "name the backup to restore" in refused.text, refused.output[-3000:]
    missing = run("playbooks/restore_db.yml", restore_db_file="mlflow-19700101T000000Z-manual.dump")
    assert missing.rc != 0 and "nothing was changed: no backup mlflow-19700101T000000Z-manual.dump" in missing.text
    assert backup_file in missing.text  # the refusal lists what the volume holds
    assert server_pods() == pods, "a refused restore must not touch the server"
    assert client.get_experiment_by_name(dropped) is not None

    restore = run("playbooks/restore_db.yml", restore_db_file=backup_file)

    assert restore.rc == 0, restore.output[-4000:]
    assert f"restore_db: OK, restored {backup_file}" in restore.text
    assert server_pods() and server_pods() != pods, "the server was scaled to 0 and back"
    assert client.get_experiment_by_name(kept) is not None
    assert client.get_experiment_by_name(dropped) is None
    assert not kubectl_json("-n", NS, "jobs", "-l", "app.kubernetes.io/component=backup")["items"]
    figures(capsys, f"backup {backup_file} ({size} bytes) in {backup.seconds} s; restore in {restore.seconds} s: "
                    f"{kept} back, {dropped} gone")


def test_password_rotation_under_continuous_requests_has_no_failure(client, capsys):
    old_password = secret_value("mlflow-credentials", "database-password")
    old_uri = secret_value("mlflow-credentials", "backend-store-uri")
    pods = server_pods()
    run_id = client.create_run(client.create_experiment(f"load-{uuid.uuid4().hex[:6]}")).info.run_id

    with TrackingCalls(run_id) as load:
        time.sleep(5)
        result = run("playbooks/rotate_db_password.yml")
        time.sleep(5)

    figures(capsys, f"rotation in {result.seconds} s under load: {load.sent} authenticated requests "
                    f"({load.per_second:.1f}/s achieved, 20/s aimed at), {load.failed} failed")
    assert result.rc == 0, result.output[-4000:]
    assert load.failed == 0, load.errors[:10]
    assert load.sent >= 60
    new_password = secret_value("mlflow-credentials", "database-password")
    assert new_password != old_password and len(new_password) == 32
    assert old_password not in secret_value("mlflow-credentials", "basic_auth.ini")
    assert secret_value("mlflow-credentials", "backend-store-uri") != old_uri
    assert new_password not in result.text and old_password not in result.text
    assert db_login(new_password) == 0
    assert db_login(old_password) != 0, "the old password must no longer log in"
    assert server_pods().isdisjoint(pods), "the server rolled onto the new credentials"
    assert not kubectl("-n", NS, "get", "secret", "mlflow-db-password-next", "--ignore-not-found",
                       "-o", "name").stdout.strip()
    assert "rotate_db_password: OK, the password of role mlflow changed" in result.text


def test_status_reports_a_stopped_database_as_unhealthy(client):
    generation = kubectl_json("-n", NS, "deployment", "mlflow")["metadata"]["generation"]
    kubectl("-n", NS, "scale", "statefulset", "mlflow-db", "--replicas=0")
    try:
        kubectl("-n", NS, "wait", "--for=delete", "pod/mlflow-db-0", "--timeout=120s", check=False)

        result = run("playbooks/status.yml")

        assert result.rc != 0, result.output[-3000:]
        assert "UNHEALTHY database postgresql: StatefulSet mlflow-db 0/0 ready; no running database pod" \
            in result.text, result.output[-3000:]
        assert re.search(r"status: UNHEALTHY: .*database postgresql", result.text)
        assert f"server {NS}/mlflow:" in result.text and "artifacts pvc:" in result.text  # the full report
        assert "model serving" in result.text or f"model {SERVING_NS}/iris" in result.text

        upgrade = run("playbooks/upgrade_mlflow.yml", mlflow_server_image=CURRENT_IMAGE)
        assert upgrade.rc != 0 and "nothing was changed, the platform is not healthy" in upgrade.text
        assert kubectl_json("-n", NS, "deployment", "mlflow")["metadata"]["generation"] == generation
    finally:
        kubectl("-n", NS, "scale", "statefulset", "mlflow-db", "--replicas=1")
        kubectl("-n", NS, "rollout", "status", "statefulset/mlflow-db", "--timeout=180s")

    healthy = run("playbooks/status.yml")
    assert healthy.rc == 0, healthy.output[-3000:]


def test_render_manifests_writes_parseable_stable_manifests(platform, tmp_path):
    render_dir = tmp_path / "gitops"

    result = run("playbooks/render_manifests.yml", render_dir=str(render_dir))

    assert result.rc == 0, result.output[-4000:]
    objects = {}
    for folder in ("mlflow_server", "model_serving"):
        kustomization = yaml.safe_load((render_dir / folder / "kustomization.yaml").read_text())
        files = sorted(p.name for p in (render_dir / folder).glob("*.yaml") if p.name != "kustomization.yaml")
        assert sorted(kustomization["resources"]) == files
        for name in files:
            docs = [d for d in yaml.safe_load_all((render_dir / folder / name).read_text()) if d]
            assert len(docs) == 1, f"{folder}/{name} holds {len(docs)} objects"
            obj = docs[0]
            assert obj["apiVersion"] and obj["metadata"]["name"]
            assert name == f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
            assert obj["kind"] == "Namespace" or obj["metadata"]["namespace"] in (NS, SERVING_NS)
            objects[(obj["kind"], obj["metadata"]["name"])] = obj
            if obj["kind"] == "Secret":
                assert stat.S_IMODE((render_dir / folder / name).stat().st_mode) == 0o600
        applied = kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=mlplatform.mlflow",
                          "--force-conflicts", "-k", str(render_dir / folder), check=False)
        assert applied.returncode == 0, applied.stderr
    for kind, name in (("Namespace", NS), ("Deployment", "mlflow"), ("StatefulSet", "mlflow-db"),
                       ("Secret", "mlflow-credentials"), ("Service", "mlflow"), ("Namespace", SERVING_NS),
                       ("Secret", "model-serving-tracking")):
        assert (kind, name) in objects, f"{kind} {name} was not rendered"
    # Not regenerated: the render is what runs (same credentials, so the same checksum; same upgrade Job).
    live = kubectl_json("-n", NS, "deployment", "mlflow")["spec"]["template"]["metadata"]["annotations"]
    rendered = objects[("Deployment", "mlflow")]["spec"]["template"]["metadata"]["annotations"]
    assert rendered["mlplatform.mlflow/config-checksum"] == live["mlplatform.mlflow/config-checksum"]
    live_jobs = {j["metadata"]["name"] for j in kubectl_json("-n", NS, "jobs", "-l",
                                                             "app.kubernetes.io/component=upgrade")["items"]}
    assert {name for kind, name in objects if kind == "Job"} == live_jobs
    again = run("playbooks/render_manifests.yml", render_dir=str(render_dir))
    assert again.rc == 0 and again.changed == 0, again.output[-3000:]

    placeholders = run("playbooks/render_manifests.yml", render_dir=str(tmp_path / "placeholders"),
                       render_manifests_placeholders=True)
    assert placeholders.rc == 0, placeholders.output[-3000:]
    secret = yaml.safe_load((tmp_path / "placeholders/mlflow_server/secret-mlflow-credentials.yaml").read_text())
    assert "mlplatform.mlflow/placeholder" in secret["metadata"]["annotations"]
    assert base64.b64decode(secret["data"]["database-password"]).decode() == "REPLACE_ME-database-password"
    assert base64.b64decode(secret["data"]["flask-secret-key"]).decode() == "REPLACE_ME-flask-secret-key"
    everything = "".join(p.read_text() for p in (tmp_path / "placeholders").rglob("*.yaml"))
    # No model is served here, so the pods' Secret carries no credentials (the pods' own user comes with a model).
    tracking = yaml.safe_load((tmp_path / "placeholders/model_serving/secret-model-serving-tracking.yaml").read_text())
    assert set(tracking["data"]) == {"MLFLOW_TRACKING_URI"}, tracking["data"].keys()
    # Not even the values given as variables (the admin password is an extra var here) reach the files.
    for value in (secret_value("mlflow-credentials", "database-password"),
                  secret_value("mlflow-credentials", "flask-secret-key"), ADMIN_PASSWORD):
        assert value not in everything and base64.b64encode(value.encode()).decode() not in everything


def snapshot() -> dict:
    kinds = "deployments,statefulsets,services,configmaps,secrets,persistentvolumeclaims,serviceaccounts,jobs," \
            "networkpolicies,pods"
    items = {}
    for namespace in (NS, SERVING_NS):
        for obj in kubectl_json("-n", namespace, kinds)["items"]:
            items[(namespace, obj["kind"], obj["metadata"]["name"])] = obj["metadata"]["uid"]
    return items


def test_teardown_refuses_prod_without_confirmation(platform):
    before = snapshot()
    assert len(before) > 15

    for extra in ({}, {"teardown_confirm": "yes"}):
        result = run("playbooks/teardown.yml", mlplatform_environment="prod", **extra)
        assert result.rc != 0, result.output[-3000:]
        assert "teardown: REFUSED, nothing was touched" in result.text
        assert f"-e teardown_confirm={NS}" in result.text

    assert snapshot() == before


def test_teardown_leaves_nothing_behind(client):
    experiment = client.create_experiment(f"kept-{uuid.uuid4().hex[:6]}")

    result = run("playbooks/teardown.yml")

    assert result.rc == 0, result.output[-4000:]
    left = snapshot()
    assert not [k for k in left if k[0] == SERVING_NS]
    assert kubectl("get", "namespace", SERVING_NS, "--ignore-not-found", "-o", "name").stdout.strip() == ""
    kept = sorted((kind, name) for namespace, kind, name in left if (kind, name) not in (
        ("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")))
    assert kept == [("PersistentVolumeClaim", "data-mlflow-db-0"), ("PersistentVolumeClaim", "mlflow-artifacts"),
                    ("PersistentVolumeClaim", "mlflow-backups"), ("Secret", "mlflow-credentials")], kept
    assert "Kept (data): PersistentVolumeClaim data-mlflow-db-0" in result.text

    # The kept data is usable: the platform comes back on it with the same credentials and finds the experiment.
    back = run(CONVERGE, mlflow_server_image=CURRENT_IMAGE)
    assert back.rc == 0, back.output[-4000:]
    assert client.get_experiment(experiment).lifecycle_stage == "active"

    result = run("playbooks/teardown.yml", teardown_delete_data=True)

    assert result.rc == 0, result.output[-4000:]
    assert "Deleted with their data: namespace" in result.text
    for namespace in (NS, SERVING_NS):
        assert kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name").stdout.strip() == ""
    deadline = time.monotonic() + 120
    while True:
        volumes = [pv["metadata"]["name"] for pv in kubectl_json("persistentvolumes")["items"]
                   if (pv["spec"].get("claimRef") or {}).get("namespace") == NS]
        if not volumes or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert volumes == [], f"volumes of {NS} left behind: {volumes}"
