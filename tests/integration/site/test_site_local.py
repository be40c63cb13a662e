"""playbooks/site.yml -i inventories/local: the whole platform from one command, then nothing to change."""

from __future__ import annotations

import json
import subprocess
import urllib.request

from ..ansible_run import run_playbook


def test_site_converges_then_changes_nothing_and_check_mode_agrees(kubeconfig, namespaces_to_delete):
    namespaces_to_delete.extend(["mlflow-serving", "mlflow"])
    first = run_playbook("playbooks/site.yml", inventory="inventories/local")
    assert first.rc == 0, first.output[-4000:]
    second = run_playbook("playbooks/site.yml", inventory="inventories/local")
    assert second.rc == 0 and second.changed == 0, second.output[-4000:]
    check = run_playbook("playbooks/site.yml", inventory="inventories/local", check=True)
    assert check.rc == 0 and check.changed == 0, check.output[-4000:]
    with urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:30500/health",
                                                       headers={"Host": "127.0.0.1:30500"}), timeout=10) as r:
        assert r.status == 200
    # The same server through its Ingress, served by the cluster's Traefik (port 8880, host from the inventory).
    with urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:8880/health",
                                                       headers={"Host": "mlflow.localhost"}), timeout=10) as r:
        assert r.status == 200
    pods = json.loads(subprocess.run(["kubectl", "-n", "mlflow", "get", "pods", "-o", "json"], capture_output=True,
                                     text=True, check=True).stdout)["items"]
    ready = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods
             if all(c.get("ready") for c in p["status"].get("containerStatuses", []))}
    assert {"server", "database", "gcs-emulator"} <= ready
