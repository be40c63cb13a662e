"""A real Prometheus and kube-state-metrics on this host, watching the local cluster the way the roles configure it.

Both are built from the Go module proxy (`cluster/build.sh monitoring`; Debian's Prometheus has no Kubernetes
discovery). Prometheus runs the scrape configurations and alert rules of the roles' monitoring
ConfigMaps, unchanged but for where it finds the API server (kubeconfig_file: it runs outside the cluster) and a 5 s
scrape interval, plus kube-state-metrics for the Job, CronJob and Deployment series the rules read.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from .ansible_run import ROOT

BUILD = ROOT / "cluster" / "build.sh"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def built(name: str) -> str:
    return subprocess.run([str(BUILD), "path", name], capture_output=True, text=True, check=True).stdout.strip()


class Monitoring:
    """`with Monitoring(workdir, kubeconfig, [(namespace, configmap), ...]) as monitoring:` Prometheus answering at
    monitoring.url until the block ends."""

    def __init__(self, workdir: Path, kubeconfig: str, configmaps: list[tuple[str, str]]) -> None:
        self.workdir, self.kubeconfig, self.configmaps = workdir, kubeconfig, configmaps
        self.namespaces = sorted({pair[0] for pair in configmaps})
        self.url = ""
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> Monitoring:
        build = subprocess.run([str(BUILD), "monitoring"], capture_output=True, text=True, timeout=1800, check=False)
        assert build.returncode == 0, build.stderr[-3000:]
        self.workdir.mkdir(parents=True, exist_ok=True)
        ksm_port, prometheus_port = free_port(), free_port()
        config = {"global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
                  "scrape_configs": [{"job_name": "kube-state-metrics",
                                      "static_configs": [{"targets": [f"127.0.0.1:{ksm_port}"]}]}],
                  "rule_files": []}
        for namespace, name in self.configmaps:
            data = json.loads(subprocess.run(["kubectl", "-n", namespace, "get", "configmap", name, "-o", "json"],
                                             capture_output=True, text=True, check=True).stdout)["data"]
            for job in yaml.safe_load(data["scrape_configs.yml"]):
                job["scrape_interval"] = "5s"
                for discovery in job.get("kubernetes_sd_configs", []):
                    discovery["kubeconfig_file"] = self.kubeconfig
                config["scrape_configs"].append(job)
            rules = self.workdir / f"{namespace}-{name}.rules.yml"
            rules.write_text(data["rules.yml"])
            config["rule_files"].append(str(rules))
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        check = subprocess.run([built("promtool"), "check", "config", str(config_file)], capture_output=True,
                               text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        self._start("kube-state-metrics", [
            built("kube-state-metrics"), f"--kubeconfig={self.kubeconfig}", "--host=127.0.0.1", f"--port={ksm_port}",
            "--telemetry-host=127.0.0.1", f"--telemetry-port={free_port()}",
            "--resources=cronjobs,jobs,deployments,statefulsets", f"--namespaces={','.join(self.namespaces)}"])
        self._start("prometheus", [
            built("prometheus"), f"--config.file={config_file}", f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}"])
        self.url = f"http://127.0.0.1:{prometheus_port}"
        self.wait_for(lambda: self._get("/-/ready", raw=True), 60, "Prometheus to be ready")
        return self

    def __exit__(self, *exc) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def _start(self, name: str, command: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("w")
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))

    def _get(self, path: str, raw: bool = False):
        """The answer's data; None while Prometheus does not answer. A query Prometheus refuses is an error."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            if error.code in (400, 422):
                raise AssertionError(f"Prometheus refused {path}: {error.read().decode()[:500]}") from error
            return None
        except OSError:
            return None
        return body if raw else json.loads(body)["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's samples: [{"metric": {...}, "value": [time, "text"]}]."""
        return (self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr})) or {}).get("result", [])

    def label_values(self, label: str, match: str) -> list[str]:
        return self._get(f"/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": match})) or []

    def firing(self, alert: str) -> list[dict]:
        return self.query(f'ALERTS{{alertname="{alert}", alertstate="firing"}}')

    def targets(self) -> list[dict]:
        return (self._get("/api/v1/targets") or {}).get("activeTargets", [])

    def logs(self) -> str:
        return "\n".join((self.workdir / f"{name}.log").read_text()[-2000:]
                         for name in ("kube-state-metrics", "prometheus"))

    def wait_for(self, check, timeout: float, what: str):
        """check()'s first truthy answer, polled every 2 s, or an AssertionError (with both processes' logs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = check()
            if answer:
                return answer
            time.sleep(2)
        raise AssertionError(f"{what} did not happen within {timeout:.0f} s\n{self.logs()}")
