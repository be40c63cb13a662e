"""playbooks/site.yml -i inventories/local: the whole platform from one command, then nothing to change."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from ..ansible_run import run_playbook
from ..browser import ui_works_through

TRACKING = "http://127.0.0.1:30500"  # the local inventory's node port
PUBLIC = "https://mlflow.localhost:8443"  # and its public URL: the Gateway, over TLS


def test_site_converges_then_changes_nothing_and_check_mode_agrees(kubeconfig, namespaces_to_delete, tmp_path):
    namespaces_to_delete.extend(["mlflow-serving", "mlflow"])
    # From an empty cluster, as a new user starts (a `make deploy` or a benchmark may have left the platform).
    subprocess.run(["kubectl", "delete", "namespace", "mlflow-serving", "mlflow", "--ignore-not-found", "--wait=true",
                    "--timeout=300s"], capture_output=True, check=True)
    planned = run_playbook("playbooks/site.yml", inventory="inventories/local", check=True)
    assert planned.rc == 0 and planned.changed > 0, planned.output[-4000:]
    assert not namespace_exists("mlflow"), "check mode created the namespace"
    first = run_playbook("playbooks/site.yml", inventory="inventories/local")
    assert first.rc == 0, first.output[-4000:]
    # The end of the run says where MLflow answers, how to trust its certificate, and how to log in.
    assert f"UI and API: {PUBLIC}" in first.output and "MLFLOW_TRACKING_SERVER_CERT_PATH=mlflow-ca.crt" \
        in first.output and "get secret mlflow-credentials" in first.output, first.output[-3000:]
    second = run_playbook("playbooks/site.yml", inventory="inventories/local")
    assert second.rc == 0 and second.changed == 0, second.output[-4000:]
    check = run_playbook("playbooks/site.yml", inventory="inventories/local", check=True)
    assert check.rc == 0 and check.changed == 0, check.output[-4000:]
    assert "+++ after" not in check.output, "--check --diff printed a diff on the converged platform"
    # One variable changed: the diff shows that field of that object, and nothing else.
    one = run_playbook("playbooks/site.yml", {"mlflow_server_memory_limit": "2Gi"}, inventory="inventories/local",
                       check=True)
    assert one.rc == 0 and one.changed == 1, one.output[-4000:]
    changed_lines = [line for line in one.output.splitlines()
                     if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]
    assert one.output.count("+++ after") == 1 and "Deployment mlflow/mlflow" in one.output, one.output[-4000:]
    assert [line[0] + line[1:].split(":")[0].strip() for line in changed_lines] == ["-memory", "+memory"], \
        changed_lines
    with urllib.request.urlopen(urllib.request.Request(f"{TRACKING}/health",
                                                       headers={"Host": "127.0.0.1:30500"}), timeout=10) as r:
        assert r.status == 200
    # The same server at its public URL: its own Gateway on the cluster's Traefik, over TLS with a certificate of
    # the CA in its Secret, found by name (*.localhost is loopback: libnss-myhostname).
    context = ssl.create_default_context(cafile=str(local_ca(tmp_path)))
    with urllib.request.urlopen(f"{PUBLIC}/health", timeout=10, context=context) as r:
        assert r.status == 200
    pods = json.loads(subprocess.run(["kubectl", "-n", "mlflow", "get", "pods", "-o", "json"], capture_output=True,
                                     text=True, check=True).stdout)["items"]
    ready = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods
             if all(c.get("ready") for c in p["status"].get("containerStatuses", []))}
    assert {"server", "database", "gcs-emulator"} <= ready
    rendered_manifests_are_what_the_cluster_holds(tmp_path)


def test_users_as_code_get_exactly_their_permissions_and_no_password_is_printed(kubeconfig, monkeypatch):
    """mlflow_server_users on the converged platform: a user with a vault-style password and one whose password is
    in a Secret get exactly their grants; a second run changes nothing; state absent deletes one."""
    admin = admin_login(monkeypatch)
    import mlflow
    from mlflow.server.auth.client import AuthServiceClient

    secret_password = f"from-secret-{uuid.uuid4().hex}"
    subprocess.run(["kubectl", "-n", "mlflow", "delete", "secret", "it-users", "--ignore-not-found"], check=True,
                   capture_output=True)
    kubectl("-n", "mlflow", "create", "secret", "generic", "it-users", f"--from-literal=reader={secret_password}")
    vault_password = f"from-vault-{uuid.uuid4().hex}"
    model = f"users-{uuid.uuid4().hex[:6]}"
    mlflow.MlflowClient(tracking_uri=TRACKING).create_registered_model(model)
    users = [{"name": "it-ci", "password": vault_password,
              "permissions": [{"resource_type": "registered_model", "resource_id": model, "permission": "EDIT"}]},
             {"name": "it-reader", "password_secret": {"name": "it-users", "key": "reader"},
              "permissions": [{"resource_type": "registered_model", "resource_id": model, "permission": "READ"}]}]
    first = run_playbook("playbooks/site.yml", {"mlflow_server_users": users}, inventory="inventories/local")
    assert first.rc == 0 and first.changed == 1, first.output[-4000:]  # the users' task
    again = run_playbook("playbooks/site.yml", {"mlflow_server_users": users}, inventory="inventories/local")
    assert again.rc == 0 and again.changed == 0, again.output[-4000:]
    for result in (first, again):
        assert vault_password not in result.output and secret_password not in result.output and admin not in \
            result.output

    grants = AuthServiceClient(TRACKING)
    assert grants.get_user_permission("it-ci", "registered_model", model).permission == "EDIT"
    assert grants.get_user_permission("it-reader", "registered_model", model).permission == "READ"
    for user, password in (("it-ci", vault_password), ("it-reader", secret_password)):
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(f"{TRACKING}/api/2.0/mlflow/registered-models/get?name={model}",
                                         headers={"Authorization": f"Basic {pair}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, user

    gone = run_playbook("playbooks/site.yml", {"mlflow_server_users": [{"name": "it-ci", "state": "absent"}]},
                        inventory="inventories/local")
    assert gone.rc == 0 and gone.changed == 1, gone.output[-4000:]
    with pytest.raises(mlflow.exceptions.MlflowException):
        grants.get_user("it-ci")


def test_nightly_gc_deletes_runs_deleted_long_ago_with_their_artifacts(kubeconfig, monkeypatch, tmp_path):
    """The gc CronJob of the converged platform, run as the schedule runs it: a run deleted 31 days ago loses its
    row and its artifact objects (deleted through the server's artifact proxy, from the GCS emulator's bucket); a run
    deleted today keeps both."""
    admin_login(monkeypatch)
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=TRACKING)
    experiment = client.create_experiment(f"gc-{uuid.uuid4().hex[:6]}")
    runs = {}
    for age in ("old", "recent"):
        run = client.create_run(experiment)
        (tmp_path / "note.txt").write_text(age)
        client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
        client.delete_run(run.info.run_id)
        runs[age] = run.info

    def artifacts(run) -> list[str]:  # the file names in the bucket under the run's artifact folder
        return [a.path.rsplit("/", 1)[-1] for a in mlflow.artifacts.list_artifacts(run.artifact_uri,
                                                                                   tracking_uri=TRACKING)]

    assert artifacts(runs["old"]) == ["note.txt"]
    psql = 'PGPASSWORD="$(cat /run/secrets/db/database-password)" exec psql -X -U mlflow -d mlflow -tAc "$1"'
    backdated = kubectl("-n", "mlflow", "exec", "mlflow-db-0", "-c", "database", "--", "sh", "-c", psql, "psql",
                        "UPDATE runs SET deleted_time = deleted_time - 31 * 86400000::bigint "
                        f"WHERE run_uuid = '{runs['old'].run_id}' RETURNING run_uuid")
    assert runs["old"].run_id in backdated

    logs = run_now("mlflow-gc")

    with pytest.raises(MlflowException) as gone:
        client.get_run(runs["old"].run_id)
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST", logs[-3000:]
    assert artifacts(runs["old"]) == [], logs[-3000:]
    assert client.get_run(runs["recent"].run_id).info.lifecycle_stage == "deleted"
    assert artifacts(runs["recent"]) == ["note.txt"]


def test_the_ui_works_in_a_browser_over_tls_and_through_the_node_port(kubeconfig, monkeypatch, tmp_path):
    """Headless Chromium opens the MLflow UI at the public URL printed at the end of the run (the Gateway over TLS,
    its local CA trusted in the browser's certificate store) and through the node port, and the MLflow Python
    client logs a run at that URL, trusting the same CA. (browser.py: every page, no failed request, writes too.)"""
    password = admin_login(monkeypatch)
    ca_file = local_ca(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(ca_file))
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=PUBLIC)
    run = client.create_run(client.create_experiment(f"tls-{uuid.uuid4().hex[:6]}"))
    client.log_metric(run.info.run_id, "loss", 0.1)
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.1}
    ui_works_through([PUBLIC, TRACKING], mlflow.MlflowClient(tracking_uri=TRACKING), password, tmp_path, ca_file)


def test_a_restore_of_the_nightly_backup_brings_back_exactly_what_was_logged_before_it(kubeconfig, monkeypatch):
    """The backup CronJob of the converged platform, run as the schedule runs it, stores a dump in the artifact
    bucket (the GCS emulator's); restore_db.yml -e restore_db_file=newest fetches it back and restores it: the
    experiment created before the backup is there, the one created after is gone. (Last in this module: the
    restore restarts the server.)"""
    admin_login(monkeypatch)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=TRACKING)
    kept = f"before-backup-{uuid.uuid4().hex[:6]}"
    client.create_experiment(kept)
    run_now("mlflow-backup")
    # The dump is in the bucket, read from the emulator's own JSON API.
    emulator = json.loads(kubectl("-n", "mlflow", "get", "service", "mlflow-gcs", "-o", "json"))["spec"]["clusterIP"]
    with urllib.request.urlopen(f"http://{emulator}:9023/storage/v1/b/mlflow-artifacts/o?prefix=backups/",
                                timeout=10) as response:
        stored = [item["name"] for item in json.loads(response.read()).get("items", [])]
    assert any(name.startswith("backups/mlflow-") and name.endswith("-scheduled.dump") for name in stored), stored
    dropped = f"after-backup-{uuid.uuid4().hex[:6]}"
    client.create_experiment(dropped)

    restore = run_playbook("playbooks/restore_db.yml", {"restore_db_file": "newest"}, inventory="inventories/local")
    assert restore.rc == 0, restore.output[-4000:]
    assert "restore_db: OK, restored mlflow-" in restore.output and "-scheduled.dump" in restore.output
    assert client.get_experiment_by_name(kept) is not None
    assert client.get_experiment_by_name(dropped) is None


def local_ca(folder: Path) -> Path:
    """The certificate of the CA that signed the Gateway's certificate, as the end of a run says to fetch it."""
    secret = json.loads(kubectl("-n", "mlflow", "get", "secret", "mlflow-tls", "-o", "json"))["data"]
    path = folder / "mlflow-ca.crt"
    path.write_bytes(base64.b64decode(secret["ca.crt"]))
    return path


def admin_login(monkeypatch) -> str:
    """The admin's password, also in the environment the MLflow client reads credentials from. (Clients here name
    TRACKING themselves: another module of this pytest process may have set MLflow's global tracking URI.)"""
    secret = json.loads(kubectl("-n", "mlflow", "get", "secret", "mlflow-credentials", "-o", "json"))["data"]
    password = base64.b64decode(secret["admin-password"]).decode()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    return password


def run_now(cronjob: str) -> str:
    """Run a CronJob of the platform as its schedule does (`kubectl create job --from`); its logs once it passed."""
    job = f"{cronjob}-now-{uuid.uuid4().hex[:6]}"
    kubectl("-n", "mlflow", "create", "job", job, f"--from=cronjob/{cronjob}")
    deadline, finished = time.monotonic() + 300, set()
    while not finished and time.monotonic() < deadline:
        time.sleep(2)
        conditions = json.loads(kubectl("-n", "mlflow", "get", "job", job, "-o", "json"))["status"].get("conditions")
        finished = {c["type"] for c in conditions or [] if c["status"] == "True"} & {"Complete", "Failed"}
    logs = subprocess.run(["kubectl", "-n", "mlflow", "logs", f"job/{job}", "--all-containers"], capture_output=True,
                          text=True, check=False)
    assert finished == {"Complete"}, f"Job {job} ended {finished or 'not'}:\n{logs.stdout[-3000:]}{logs.stderr}"
    return logs.stdout


def kubectl(*args: str) -> str:
    done = subprocess.run(["kubectl", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"kubectl {' '.join(args[:4])} ...: {done.stderr}"
    return done.stdout


def namespace_exists(name: str) -> bool:
    return subprocess.run(["kubectl", "get", "namespace", name], capture_output=True, check=False).returncode == 0


def rendered_manifests_are_what_the_cluster_holds(tmp_path: Path) -> None:
    """render_manifests.yml writes what a converge applies: a server-side diff of the rendered files against the
    converged cluster, with the roles' field manager, finds nothing, and every object of the roles' sets is there."""
    render = run_playbook("playbooks/render_manifests.yml", {"render_dir": str(tmp_path)},
                          inventory="inventories/local")
    assert render.rc == 0, render.output[-4000:]
    for role, namespace in (("mlflow_server", "mlflow"), ("model_serving", "mlflow-serving")):
        folder = tmp_path / role
        diff = subprocess.run(["kubectl", "diff", "--server-side", "--field-manager=mlplatform.mlflow",
                               "--force-conflicts", "-k", str(folder)], capture_output=True, text=True, check=False)
        assert diff.returncode == 0, f"{role}: the rendered manifests differ from the cluster:\n{diff.stdout[-3000:]}"
        rendered = {(o["kind"], o["metadata"]["name"]) for path in folder.glob("*.yaml")
                    if path.name != "kustomization.yaml" for o in [yaml.safe_load(path.read_text())]}
        kinds = ("configmaps,secrets,services,deployments,statefulsets,jobs,ingresses,gateways,httproutes,"
                 "networkpolicies,serviceaccounts")
        live = json.loads(subprocess.run(["kubectl", "-n", namespace, "get", kinds, "-l",
                                          "mlplatform.mlflow/object-set", "-o", "json"],
                                         capture_output=True, text=True, check=True).stdout)["items"]
        missing = {(o["kind"], o["metadata"]["name"]) for o in live} - rendered
        assert not missing, f"{role}: the cluster holds objects of the role's sets that the render lacks: {missing}"
