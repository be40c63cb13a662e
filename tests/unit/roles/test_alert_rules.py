"""The alert rules the roles render (ConfigMaps <name>-monitoring and model-serving-monitoring), checked and unit-tested
by Prometheus' own promtool (Debian's `prometheus` package, installed by scripts/bootstrap.sh; its Prometheus lacks
Kubernetes discovery, so the scrape configurations are checked by the integration test, with one built from source):
each alert fires on the series that mean trouble, and stays quiet on the healthy ones next to them.

The local inventory is rendered offline (render_manifests.yml, no cluster): it has every alert, as it runs the
in-cluster database with scheduled backups and gc."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SERVER = 'namespace="mlflow", job="mlflow"'
SERVING = 'namespace="mlflow-serving", job="model-serving"'


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> dict[str, Path]:
    """The two rendered rule files, by role."""
    tmp = tmp_path_factory.mktemp("alerts")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "KUBECONFIG": str(tmp / "no-kubeconfig"),
           "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        ["ansible-playbook", str(ROOT / "playbooks" / "render_manifests.yml"),
         "-i", str(ROOT / "inventories" / "local"),
         "-e", f"render_dir={tmp / 'rendered'}", "-e", "render_manifests_placeholders=true"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    files = {}
    for role, configmap in (("mlflow_server", "configmap-mlflow-monitoring.yaml"),
                            ("model_serving", "configmap-model-serving-monitoring.yaml")):
        files[role] = tmp / f"{role}.rules.yml"
        files[role].write_text(yaml.safe_load((tmp / "rendered" / role / configmap).read_text())["data"]["rules.yml"])
    return files


def promtool(*args: str) -> str:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: scripts/bootstrap.sh installs Debian's prometheus package"
    proc = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def alerts_of(path: Path) -> dict[str, dict]:
    return {rule["alert"]: rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]}


def expect(rule: dict, **labels: str) -> dict:
    """One expected firing alert: the rule's own labels and annotations plus the labels its expression keeps."""
    return {"exp_labels": {**rule.get("labels", {}), **labels}, "exp_annotations": rule["annotations"]}


def run_tests(path: Path, tests: list[dict]) -> None:
    test_file = path.with_suffix(".test.yml")
    test_file.write_text(yaml.safe_dump({"rule_files": [path.name], "evaluation_interval": "1m", "tests": tests}))
    output = promtool("test", "rules", str(test_file))
    assert "SUCCESS" in output


def test_rendered_rules_load(rules):
    for path in rules.values():
        assert "SUCCESS" in promtool("check", "rules", str(path))
    server = alerts_of(rules["mlflow_server"])
    assert set(server) == {"MLflowServerDown", "MLflowServerErrors", "MLflowServerSlow", "MLflowDatabaseUnreachable",
                           "MLflowMigrationFailed", "MLflowBackupFailed", "MLflowBackupTooOld", "MLflowGcFailing"}
    assert set(alerts_of(rules["model_serving"])) == {"MLflowModelServingErrors", "MLflowModelServingDown"}


def test_server_down_fires_when_no_pod_is_ready_or_none_is_scraped(rules):
    rule = alerts_of(rules["mlflow_server"])["MLflowServerDown"]
    run_tests(rules["mlflow_server"], [
        {"interval": "1m",
         "input_series": [
             {"series": 'kube_deployment_status_replicas_available{namespace="mlflow", deployment="mlflow"}',
              "values": "1 1 0 0 0 0 0"},
             {"series": f'up{{{SERVER}, endpoint="metrics", pod="a"}}', "values": "1x6"}],
         "alert_rule_test": [
             {"eval_time": "2m", "alertname": "MLflowServerDown", "exp_alerts": []},
             {"eval_time": "5m", "alertname": "MLflowServerDown", "exp_alerts": [expect(rule)]}]},
        {"interval": "1m",
         "input_series": [
             {"series": 'kube_deployment_status_replicas_available{namespace="mlflow", deployment="mlflow"}',
              "values": "1x6"},
             {"series": f'up{{{SERVER}, endpoint="metrics", pod="a"}}', "values": "1 0 0 0 0 0"}],
         "alert_rule_test": [
             {"eval_time": "5m", "alertname": "MLflowServerDown", "exp_alerts": [expect(rule)]}]},
        {"interval": "1m",
         "input_series": [
             {"series": 'kube_deployment_status_replicas_available{namespace="mlflow", deployment="mlflow"}',
              "values": "2x6"},
             {"series": f'up{{{SERVER}, endpoint="metrics", pod="a"}}', "values": "0x6"},
             {"series": f'up{{{SERVER}, endpoint="metrics", pod="b"}}', "values": "1x6"}],
         "alert_rule_test": [{"eval_time": "5m", "alertname": "MLflowServerDown", "exp_alerts": []}]},
    ])


def test_server_errors_fire_above_the_error_rate_only(rules):
    rule = alerts_of(rules["mlflow_server"])["MLflowServerErrors"]

    def case(errors_per_minute: int, expected: list) -> dict:
        return {"interval": "1m",
                "input_series": [
                    {"series": f'mlflow_http_request_total{{{SERVER}, pod="a", method="GET", status="200"}}',
                     "values": "0+100x15"},
                    {"series": f'mlflow_http_request_total{{{SERVER}, pod="a", method="POST", status="500"}}',
                     "values": f"0+{errors_per_minute}x15"}],
                "alert_rule_test": [{"eval_time": "12m", "alertname": "MLflowServerErrors", "exp_alerts": expected}]}

    run_tests(rules["mlflow_server"], [case(10, [expect(rule)]), case(1, [])])


def test_server_slow_fires_on_the_p99(rules):
    rule = alerts_of(rules["mlflow_server"])["MLflowServerSlow"]

    def case(slow_bucket: str, expected: list) -> dict:
        series = 'mlflow_http_request_duration_seconds_bucket{%s, pod="a", method="GET", status="200", le="%s"}'
        return {"interval": "1m",
                "input_series": [
                    {"series": series % (SERVER, "1.0"), "values": "0+0x20" if slow_bucket else "0+10x20"},
                    {"series": series % (SERVER, "10.0"), "values": "0+10x20"},
                    {"series": series % (SERVER, "+Inf"), "values": "0+10x20"}],
                "alert_rule_test": [{"eval_time": "18m", "alertname": "MLflowServerSlow", "exp_alerts": expected}]}

    run_tests(rules["mlflow_server"], [case("10.0", [expect(rule)]), case("", [])])


def test_database_unreachable_fires_after_a_minute_of_failed_probes(rules):
    rule = alerts_of(rules["mlflow_server"])["MLflowDatabaseUnreachable"]
    run_tests(rules["mlflow_server"], [
        {"interval": "1m",
         "input_series": [{"series": f'mlflow_database_up{{{SERVER}, endpoint="metrics", pod="a"}}',
                           "values": "1 1 0 0 0 1 1"}],
         "alert_rule_test": [
             {"eval_time": "1m", "alertname": "MLflowDatabaseUnreachable", "exp_alerts": []},
             {"eval_time": "3m", "alertname": "MLflowDatabaseUnreachable", "exp_alerts": [expect(rule)]},
             {"eval_time": "6m", "alertname": "MLflowDatabaseUnreachable", "exp_alerts": []}]},
    ])


def test_migration_failed_fires_on_a_failed_upgrade_job_only(rules):
    rule = alerts_of(rules["mlflow_server"])["MLflowMigrationFailed"]
    failed = 'kube_job_status_failed{namespace="mlflow", job_name="%s", reason="BackoffLimitExceeded"}'
    run_tests(rules["mlflow_server"], [
        {"interval": "1m",
         "input_series": [{"series": failed % "mlflow-upgrade-0123456789", "values": "1x3"}],
         "alert_rule_test": [{"eval_time": "1m", "alertname": "MLflowMigrationFailed", "exp_alerts": [expect(rule)]}]},
        {"interval": "1m",
         "input_series": [{"series": failed % "mlflow-backup-29000000", "values": "1x3"},
                          {"series": failed.replace('"mlflow"', '"other"') % "mlflow-upgrade-0123456789",
                           "values": "1x3"}],
         "alert_rule_test": [{"eval_time": "1m", "alertname": "MLflowMigrationFailed", "exp_alerts": []}]},
    ])


@pytest.mark.parametrize(("alert", "prefix"),
                         [("MLflowBackupFailed", "mlflow-backup"), ("MLflowGcFailing", "mlflow-gc")])
def test_the_newest_run_failed_fires_until_a_later_run_succeeds(rules, alert, prefix):
    rule = alerts_of(rules["mlflow_server"])[alert]

    def job(name: str, start: int, outcome: str) -> list[dict]:
        labels = f'namespace="mlflow", job_name="{prefix}-{name}"'
        return [{"series": f"kube_job_status_start_time{{{labels}}}", "values": f"{start}x3"},
                {"series": f"kube_job_status_{outcome}{{{labels}}}", "values": "1x3"}]

    def case(jobs: list[list[dict]], expected: list) -> dict:
        return {"interval": "1m", "input_series": [series for one in jobs for series in one],
                "alert_rule_test": [{"eval_time": "2m", "alertname": alert, "exp_alerts": expected}]}

    run_tests(rules["mlflow_server"], [
        case([job("1", 100, "succeeded"), job("2", 200, "failed")], [expect(rule, namespace="mlflow")]),
        case([job("2", 200, "failed")], [expect(rule, namespace="mlflow")]),
        case([job("1", 100, "failed"), job("2", 200, "succeeded")], []),
        case([job("1", 100, "succeeded")], []),
    ])


def test_backup_too_old_counts_from_the_last_success_or_else_the_cronjob(rules):
    rule = alerts_of(rules["mlflow_server"])["MLflowBackupTooOld"]
    cronjob = 'namespace="mlflow", cronjob="mlflow-backup"'

    def case(last_success: int | None, expected: list) -> dict:
        series = [{"series": f"kube_cronjob_created{{{cronjob}}}", "values": "0x200"}]
        if last_success is not None:
            series.append({"series": f"kube_cronjob_status_last_successful_time{{{cronjob}}}",
                           "values": f"{last_success}x200"})
        return {"interval": "10m", "input_series": series,
                "alert_rule_test": [{"eval_time": "25h", "alertname": "MLflowBackupTooOld", "exp_alerts": []},
                                    {"eval_time": "27h", "alertname": "MLflowBackupTooOld", "exp_alerts": expected}]}

    run_tests(rules["mlflow_server"], [case(None, [expect(rule, namespace="mlflow")]),
                                       case(25 * 3600, []),
                                       case(600, [expect(rule, namespace="mlflow")])])


def test_serving_errors_fire_per_served_model(rules):
    rule = alerts_of(rules["model_serving"])["MLflowModelServingErrors"]
    requests = 'mlplatform_serving_requests_total{%s, served="%s", pod="%s", model="m", version="1", status="%s"}'
    run_tests(rules["model_serving"], [
        {"interval": "1m",
         "input_series": [
             {"series": requests % (SERVING, "iris", "iris-a", "200"), "values": "0+100x15"},
             {"series": requests % (SERVING, "iris", "iris-a", "500"), "values": "0+20x15"},
             {"series": requests % (SERVING, "wine", "wine-a", "200"), "values": "0+100x15"},
             {"series": requests % (SERVING, "wine", "wine-a", "500"), "values": "0+1x15"}],
         "alert_rule_test": [{"eval_time": "12m", "alertname": "MLflowModelServingErrors",
                              "exp_alerts": [expect(rule, namespace="mlflow-serving", served="iris")]}]},
    ])


def test_serving_down_fires_for_a_served_model_without_ready_pods_not_for_a_canary(rules):
    rule = alerts_of(rules["model_serving"])["MLflowModelServingDown"]
    spec, available = "kube_deployment_spec_replicas{%s}", "kube_deployment_status_replicas_available{%s}"
    iris = 'namespace="mlflow-serving", deployment="iris"'
    canary = 'namespace="mlflow-serving", deployment="iris-canary"'
    run_tests(rules["model_serving"], [
        {"interval": "1m",
         "input_series": [{"series": spec % iris, "values": "1x6"},
                          {"series": available % iris, "values": "1 0 0 0 0 0"},
                          {"series": spec % canary, "values": "1x6"},
                          {"series": available % canary, "values": "0x6"}],
         "alert_rule_test": [
             {"eval_time": "2m", "alertname": "MLflowModelServingDown", "exp_alerts": []},
             {"eval_time": "5m", "alertname": "MLflowModelServingDown",
              "exp_alerts": [expect(rule, namespace="mlflow-serving", deployment="iris")]}]},
    ])
