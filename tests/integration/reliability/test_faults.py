"""Faults, load and secret hygiene on the local cluster. Runs in file order; the cluster restart comes last.

Figures (recovery times, requests) are printed and tallied into the suite's summary line.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml

from ..ansible_run import ROOT, run_playbook
from ..browser import ui_works_through
from ..load import PredictionLoad, TrackingLoad
from ..monitoring import Monitoring

TRACKING = "http://127.0.0.1:30551"
SERVER, SERVING = "tests/integration/reliability/server.yml", "tests/integration/reliability/serving.yml"
SERVER_VARS = yaml.safe_load((Path(__file__).parent / "server_vars.yml").read_text())


def kubectl(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=600, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def kubectl_json(*args: str) -> dict:
    return json.loads(kubectl("get", "-o", "json", *args))


def api_ok(password: str) -> bool:
    """An authenticated call that needs the database."""
    auth = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
    req = urllib.request.Request(f"{TRACKING}/api/2.0/mlflow/experiments/search?max_results=1",
                                 headers={"Authorization": auth})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_until(check, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


@pytest.fixture(scope="module")
def platform(kubeconfig, namespaces_to_delete):
    namespaces_to_delete.extend(["rel-serving", "rel-mlflow"])
    result = run_playbook(SERVER)
    assert result.rc == 0, result.output[-3000:]
    password = base64.b64decode(kubectl_json("-n", "rel-mlflow", "secret", "mlflow-credentials")["data"]
                                ["admin-password"]).decode()
    os.environ.update(MLFLOW_TRACKING_URI=TRACKING, MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=password)
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(TRACKING)
    name = f"rel-{uuid.uuid4().hex[:6]}"
    mlflow.set_experiment(name)
    X, y = load_iris(return_X_y=True, as_frame=True)
    for offset in (0, 10):
        with mlflow.start_run() as run:
            mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(X, y + offset), name="model",
                                     input_example=X.head(1), registered_model_name=name)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, "champion", 1)
    # Autoscaled on CPU (the cluster's metrics-server), quick to give a replica back for the autoscaling test.
    models = [{"name": "rel", "model": name, "alias": "champion", "min_replicas": 1, "max_replicas": 2,
               "cpu_utilization": 50, "scale_down_seconds": 20}]
    result = run_playbook(SERVING, {"rel_password": password, "rel_models": models})
    assert result.rc == 0, result.output[-3000:]
    ip = kubectl_json("-n", "rel-serving", "service", "rel")["spec"]["clusterIP"]
    return {"password": password, "name": name, "client": client, "models": models, "X": X, "run_id": run.info.run_id,
            "predict_url": f"http://{ip}/invocations"}


def test_server_rollout_and_model_promotion_under_load_drop_nothing(platform, tally):
    with TrackingLoad(TRACKING, platform["password"], platform["run_id"]) as tracking, \
            PredictionLoad(platform["predict_url"], platform["X"].head(1)) as predictions:
        time.sleep(2)
        rollout = run_playbook(SERVER, {"rel_extra_env": {"MLPLATFORM_ROLLOUT_MARK": str(time.time_ns())}})
        platform["client"].set_registered_model_alias(platform["name"], "champion", 2)
        promotion = run_playbook(SERVING, {"rel_password": platform["password"], "rel_models": platform["models"]})
        time.sleep(2)
    tally["requests"] += tracking.sent + predictions.sent
    tally["failed_requests"] += tracking.failed + predictions.failed
    print(f"rollout+promotion: tracking {tracking.sent} sent/{tracking.failed} failed, "
          f"predictions {predictions.sent} sent/{predictions.failed} failed")
    assert rollout.rc == 0 and rollout.changed > 0, rollout.output[-3000:]
    assert promotion.rc == 0, promotion.output[-3000:]
    assert tracking.failed == 0, tracking.errors[:5]
    assert predictions.failed == 0, predictions.errors[:5]
    assert predictions.answers[-1] >= 10, "v2 is not answering after the promotion"


def test_database_pod_killed_server_recovers_without_intervention(platform, tally):
    tally["faults"] += 1
    killed = database_pod_uid()
    kubectl("-n", "rel-mlflow", "delete", "pod", "mlflow-db-0", "--grace-period=0", "--force")
    # The fault took effect: another database pod runs. (The outage itself can be shorter than a poll: PostgreSQL
    # restarts on its volume in about a second, so a failed request is not required to be seen.)
    wait_until(lambda: database_pod_uid() not in ("", killed), 60, "a new database pod")
    seconds = wait_until(lambda: api_ok(platform["password"]), 300, "the server to answer again")
    print(f"database pod killed: tracking API answered again after {seconds:.1f} s")
    deployment = kubectl_json("-n", "rel-mlflow", "deployment", "mlflow")
    assert deployment["status"].get("readyReplicas", 0) >= SERVER_VARS["mlflow_server_hpa_min_replicas"]


def database_pod_uid() -> str:
    return kubectl("-n", "rel-mlflow", "get", "pod", "mlflow-db-0", "-o", "jsonpath={.metadata.uid}", check=False)


@pytest.fixture(scope="module")
def monitoring(platform, kubeconfig, tmp_path_factory):
    """Prometheus and kube-state-metrics on this host, with the roles' scrape configurations and alert rules."""
    with Monitoring(tmp_path_factory.mktemp("monitoring"), kubeconfig,
                    [("rel-mlflow", "mlflow-monitoring"), ("rel-serving", "model-serving-monitoring")]) as running:
        yield running


def test_database_stopped_two_minutes_alert_fires_and_resolves_then_the_next_backup_restores(
        platform, monitoring, tally):
    """The night nobody watches: the database is gone for 2 minutes. Prometheus, scraping what the roles' monitoring
    ConfigMaps name, fires MLflowDatabaseUnreachable and resolves it once the database is back; the server answers
    again by itself; the next scheduled backup succeeds, and restore_db.yml brings back exactly what it holds."""
    predict = PredictionLoad(platform["predict_url"], platform["X"].head(1))
    assert predict.request() is not None  # a served model's counters have a series

    def scraped():
        up = Counter(target["labels"]["job"] for target in monitoring.targets() if target["health"] == "up")
        return up if up["mlflow"] >= 2 and up["model-serving"] >= 1 and up["kube-state-metrics"] == 1 else None

    print(f"targets up: {dict(monitoring.wait_for(scraped, 120, 'every target up'))}")
    for expr in ('mlflow_database_up{namespace="rel-mlflow", job="mlflow"} == 1',
                 'mlflow_http_request_total{namespace="rel-mlflow", job="mlflow"}',
                 'mlplatform_serving_requests_total{namespace="rel-serving", job="model-serving", status="200"}',
                 'kube_cronjob_created{namespace="rel-mlflow", cronjob="mlflow-backup"}'):
        monitoring.wait_for(lambda expr=expr: monitoring.query(expr), 60, f"a sample of {expr}")
    assert not monitoring.firing("MLflowDatabaseUnreachable")

    tally["faults"] += 1
    stopped = time.monotonic()
    kubectl("-n", "rel-mlflow", "scale", "statefulset", "mlflow-db", "--replicas=0")
    try:
        monitoring.wait_for(lambda: monitoring.firing("MLflowDatabaseUnreachable"), 240,
                            "MLflowDatabaseUnreachable to fire")
        fired = time.monotonic() - stopped
        assert not api_ok(platform["password"]), "the server still reached a stopped database"
        time.sleep(max(0.0, 120 - (time.monotonic() - stopped)))
    finally:
        kubectl("-n", "rel-mlflow", "scale", "statefulset", "mlflow-db", "--replicas=1")
    restarted = time.monotonic()
    recovered = wait_until(lambda: api_ok(platform["password"]), 300, "the server to answer again")
    monitoring.wait_for(lambda: not monitoring.firing("MLflowDatabaseUnreachable"), 180,
                        "MLflowDatabaseUnreachable to resolve")
    resolved = time.monotonic() - restarted
    tally["alerts"] += 1
    print(f"database stopped {restarted - stopped:.0f} s: alert fired after {fired:.0f} s; after the restart the "
          f"server answered in {recovered:.0f} s and the alert resolved in {resolved:.0f} s")

    client = platform["client"]
    kept, dropped = f"rel-before-backup-{uuid.uuid4().hex[:6]}", f"rel-after-backup-{uuid.uuid4().hex[:6]}"
    client.create_experiment(kept)
    kubectl("-n", "rel-mlflow", "create", "job", "--from=cronjob/mlflow-backup", "mlflow-backup-after-fault")
    kubectl("-n", "rel-mlflow", "wait", "--for=condition=complete", "job/mlflow-backup-after-fault", "--timeout=300s")
    monitoring.wait_for(lambda: monitoring.query(
        'kube_job_status_succeeded{namespace="rel-mlflow", job_name="mlflow-backup-after-fault"} == 1'), 60,
        "kube-state-metrics to see the backup succeed")
    assert not monitoring.firing("MLflowBackupFailed") and not monitoring.firing("MLflowBackupTooOld")
    client.create_experiment(dropped)

    restore = run_playbook("playbooks/restore_db.yml", {**SERVER_VARS, "restore_db_file": "newest"})
    assert restore.rc == 0, restore.output[-4000:]
    assert "restore_db: OK, restored mlflow-" in restore.text, restore.text[-2000:]
    assert "-scheduled.dump" in restore.text, restore.text[-2000:]
    assert client.get_experiment_by_name(kept) is not None
    assert client.get_experiment_by_name(dropped) is None
    tally["restores"] += 1


def test_every_query_of_the_dashboard_returns_data(platform, monitoring):
    """The Grafana dashboard the server role ships (in its monitoring ConfigMap): each variable finds the platform
    and each panel's query returns samples from this Prometheus, after a gc run and a prediction (the backup ran in
    the test before)."""
    kubectl("-n", "rel-mlflow", "create", "job", "--from=cronjob/mlflow-gc", "mlflow-gc-dashboard")
    kubectl("-n", "rel-mlflow", "wait", "--for=condition=complete", "job/mlflow-gc-dashboard", "--timeout=300s")
    predict = PredictionLoad(platform["predict_url"], platform["X"].head(1))
    for attempt in range(5):
        assert predict.request() is not None, f"prediction {attempt}"
    assert api_ok(platform["password"])
    dashboard = json.loads(kubectl_json("-n", "rel-mlflow", "configmap", "mlflow-monitoring")["data"]
                           ["grafana-dashboard.json"])
    values = {"namespace": "rel-mlflow", "server": "mlflow", "serving_namespace": "rel-serving"}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"]).groups()
        for name, value in values.items():
            metric = metric.replace(f"${name}", value)
        wanted = values[variable["name"]]
        monitoring.wait_for(lambda metric=metric, label=label, wanted=wanted:
                            wanted in monitoring.label_values(label, metric), 60, f"the variable {variable['name']}")
    queries = [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(queries) >= 15
    empty = []
    for title, expr in queries:
        for name, value in {**values, "__rate_interval": "1m"}.items():
            expr = expr.replace(f"${name}", value)
        try:
            monitoring.wait_for(lambda expr=expr: monitoring.query(expr), 90, title)
        except AssertionError:
            empty.append(f"{title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    print(f"dashboard: {len(queries)} queries of {len(dashboard['panels'])} panels all returned data")


def test_the_ui_works_in_a_browser_through_the_ingress(platform, tmp_path):
    """The Ingress way in (Traefik, plain HTTP): every page of the UI and its writes, in headless Chromium."""
    ui_works_through(["http://rel-mlflow.localhost:8880"], platform["client"], platform["password"], tmp_path)


def ready_replicas(namespace: str, name: str) -> tuple[int, int]:
    status = kubectl_json("-n", namespace, "deployment", name)["status"]
    return status.get("readyReplicas", 0), status.get("replicas", 0)


def test_the_autoscalers_add_a_replica_under_load_and_remove_it_after(platform, tally):
    """The bundled cluster's metrics-server feeds both HPAs: under load the server (2 -> 3) and the served model
    (1 -> 2) each get a replica that becomes Ready; once the load stops, each goes back to its minimum after its
    scale-down window (20 s here). No request fails on the way up or down."""
    wanted = {("rel-mlflow", "mlflow"): SERVER_VARS["mlflow_server_hpa_max_replicas"],
              ("rel-serving", "rel"): platform["models"][0]["max_replicas"]}
    least = {("rel-mlflow", "mlflow"): SERVER_VARS["mlflow_server_hpa_min_replicas"],
             ("rel-serving", "rel"): platform["models"][0]["min_replicas"]}
    assert all(ready_replicas(*key) == (least[key], least[key]) for key in least), \
        {key: ready_replicas(*key) for key in least}
    start = time.monotonic()
    with TrackingLoad(TRACKING, platform["password"], platform["run_id"], rate=60) as tracking, \
            PredictionLoad(platform["predict_url"], platform["X"].head(50), rate=100) as predictions:
        for key, count in wanted.items():
            wait_until(lambda k=key, c=count: ready_replicas(*k)[0] >= c, 300, f"{key[0]}/{key[1]} to scale to {count}")
        up = time.monotonic() - start
    start = time.monotonic()
    for key, count in least.items():
        wait_until(lambda k=key, c=count: ready_replicas(*k) == (c, c), 300, f"{key[0]}/{key[1]} back to {count}")
    down = time.monotonic() - start
    tally["requests"] += tracking.sent + predictions.sent
    tally["failed_requests"] += tracking.failed + predictions.failed
    print(f"autoscaling: both scaled up within {up:.0f} s of load and back down {down:.0f} s after it; tracking "
          f"{tracking.sent} sent/{tracking.failed} failed, predictions {predictions.sent} sent/{predictions.failed} "
          f"failed")
    assert tracking.failed == 0, tracking.errors[:5]
    assert predictions.failed == 0, predictions.errors[:5]


def test_migration_killed_midway_then_rerun_succeeds(platform, tally):
    """Kill both the upgrade Job's pod and the ansible-playbook that waits for it; the next run converges."""
    tally["faults"] += 1
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    # Forget the completed upgrade Job so that the next converge runs it again (same name, same settings: the
    # artifact destination must not move, or every logged artifact would be orphaned).
    kubectl("-n", "rel-mlflow", "delete", "jobs", "-l", "app.kubernetes.io/component=upgrade", "--wait=true")
    command = ["ansible-playbook", "-i", str(ROOT / "tests/integration/inventory.yml"), str(ROOT / SERVER)]
    run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)

    def upgrade_pod_running() -> str | None:
        pods = kubectl_json("-n", "rel-mlflow", "pods", "-l", "app.kubernetes.io/component=upgrade")["items"]
        running = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
        return running[0] if running else None

    wait_until(lambda: upgrade_pod_running() is not None, 180, "the new upgrade Job's pod to run")
    kubectl("-n", "rel-mlflow", "delete", "pod", upgrade_pod_running(), "--grace-period=0", "--force")
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    rerun = run_playbook(SERVER)
    assert rerun.rc == 0, rerun.output[-3000:]
    assert api_ok(platform["password"])


def test_tracking_server_unreachable_during_serving_converge_fails_clearly_and_changes_nothing(platform, tally):
    tally["faults"] += 1
    before = kubectl_json("-n", "rel-serving", "deployment", "rel")
    result = run_playbook(SERVING, {"rel_password": platform["password"], "rel_models": platform["models"],
                                    "rel_tracking_uri": "http://127.0.0.1:9"})
    assert result.rc != 0
    assert "127.0.0.1:9" in result.output and "Traceback" not in result.output
    after = kubectl_json("-n", "rel-serving", "deployment", "rel")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]


def test_no_secret_value_leaks_into_output_argv_configmaps_annotations_or_events(platform, tally):
    verbose = subprocess.run(["ansible-playbook", "-vvv", "-i", str(ROOT / "tests/integration/inventory.yml"),
                              str(ROOT / SERVER), "--diff"], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}, check=False)
    assert verbose.returncode == 0, verbose.stdout[-2000:]
    secrets = kubectl_json("-n", "rel-mlflow", "secret", "mlflow-credentials")["data"]
    values = {base64.b64decode(v).decode() for k, v in secrets.items()
              if k in ("database-password", "admin-password", "flask-secret-key")}
    places = {
        "ansible -vvv output": verbose.stdout + verbose.stderr,
        "pods (argv, env, annotations)": kubectl("get", "pods", "-A", "-o", "json"),
        "deployments, statefulsets, jobs": kubectl("get", "deployments,statefulsets,jobs", "-A", "-o", "json"),
        "configmaps": kubectl("get", "configmaps", "-A", "-o", "json"),
        "events": kubectl("get", "events", "-A", "-o", "json"),
    }
    leaks = [f"{place}" for place, text in places.items() for value in values if value and value in text]
    tally["secret_leaks"] += len(leaks)
    assert not leaks, f"secret values found in: {leaks}"


def test_namespaces_enforce_restricted_pod_security_and_auth_guards_the_api(platform):
    for ns in ("rel-mlflow", "rel-serving"):
        labels = kubectl_json("namespace", ns)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    req = urllib.request.Request(f"{TRACKING}/api/2.0/mlflow/experiments/search?max_results=1")
    with pytest.raises(urllib.error.HTTPError) as unauthenticated:
        urllib.request.urlopen(req, timeout=5)
    assert unauthenticated.value.code == 401
    auth = "Basic " + base64.b64encode(f"admin:{platform['password']}".encode()).decode()
    foreign = urllib.request.Request(f"{TRACKING}/api/2.0/mlflow/experiments/search?max_results=1",
                                     headers={"Authorization": auth, "Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as rebinding:
        urllib.request.urlopen(foreign, timeout=5)
    assert rebinding.value.code == 403


PROBE = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)"


def test_network_policies_keep_unlabelled_pods_off_the_database(platform, tally):
    """A pod without the server's labels reaches the server's port and not the database's; the server still does."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rel-intruder", "labels": {"app": "intruder"}},
           "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": "main", "image": "docker.io/mlplatform/mlflow:3.17.2",
                                    "command": ["sleep", "600"],
                                    "securityContext": {"allowPrivilegeEscalation": False,
                                                        "capabilities": {"drop": ["ALL"]}}}]}}
    subprocess.run(["kubectl", "-n", "rel-mlflow", "apply", "-f", "-"], input=json.dumps(pod), text=True,
                   check=True, capture_output=True)
    try:
        kubectl("-n", "rel-mlflow", "wait", "--for=condition=Ready", "pod/rel-intruder", "--timeout=120s")

        def connects(host: str, port: int) -> bool:
            probe = ["kubectl", "-n", "rel-mlflow", "exec", "rel-intruder", "--", "python", "-c", PROBE, host,
                     str(port)]
            return subprocess.run(probe, capture_output=True, timeout=60, check=False).returncode == 0

        assert connects("mlflow", 80), "the pod cannot reach the server's port, which every pod may"
        db_port = kubectl_json("-n", "rel-mlflow", "service", "mlflow-db")["spec"]["ports"][0]["port"]
        denied = not connects("mlflow-db", db_port)
        tally["policy_denials"] += int(denied)
        assert denied, "a pod without the server's labels reached the database (are NetworkPolicies enforced?)"
        assert api_ok(platform["password"]), "the server lost the database"
    finally:
        kubectl("-n", "rel-mlflow", "delete", "pod", "rel-intruder", "--grace-period=0", "--force", check=False)


@pytest.mark.usefixtures("cluster_alone")
def test_whole_cluster_stopped_and_started_comes_back_healthy(platform, tally):
    tally["faults"] += 1
    cluster = str(Path(ROOT) / "cluster" / "cluster.sh")
    subprocess.run([cluster, "down"], check=True, capture_output=True, timeout=600)
    assert subprocess.run([cluster, "status"], capture_output=True, check=False).returncode == 3
    start = time.monotonic()
    subprocess.run([cluster, "up"], check=True, capture_output=True, timeout=1800)
    seconds = wait_until(lambda: api_ok(platform["password"]), 600, "the tracking server after the restart")
    frame = platform["X"].head(1)
    predict = PredictionLoad(platform["predict_url"], frame)
    seconds_predict = wait_until(lambda: _predicts(predict), 600, "the served model after the restart")
    print(f"cluster restart: tracking API back {time.monotonic() - start:.0f} s after `up` began "
          f"(API {seconds:.0f} s after up returned), predictions after {seconds_predict:.0f} s more")


def _predicts(load: PredictionLoad) -> bool:
    """The served model answers (whichever version the earlier tests left it on)."""
    try:
        return load.request() is not None
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return False
