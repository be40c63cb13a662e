"""The collection's Kubernetes client without a cluster: kubeconfig merging and resolution, workload readiness."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s, k8s_client
from ansible_collections.mlplatform.mlflow.plugins.plugin_utils.in_process import run_command


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return str(path)


def _kubeconfig(server, user, context="ctx", cluster_extra=None):
    return {"current-context": context,
            "clusters": [{"name": "c", "cluster": {"server": server, **(cluster_extra or {})}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}]}


def test_first_file_of_kubeconfig_wins_and_relative_paths_follow_their_file(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "token").write_text("tok-from-file\n")
    first = _write(tmp_path / "a" / "config", _kubeconfig("https://first:6443", {"tokenFile": "token"}))
    second = _write(tmp_path / "second", _kubeconfig("https://second:6443", {"token": "t2"}, context="other"))
    monkeypatch.delenv("K8S_AUTH_KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([first, second]))
    settings = k8s_client.load_settings()
    assert settings.server == "https://first:6443"  # current-context of the first file
    assert settings.token_file == str(tmp_path / "a" / "token")
    assert k8s_client.load_settings(context="other").server == "https://first:6443"  # cluster "c": first file wins


def test_an_unknown_context_names_the_ones_there_are(tmp_path):
    path = _write(tmp_path / "config", _kubeconfig("https://k:6443", {"token": "t"}))
    with pytest.raises(k8s_client.K8sError, match=r"no context 'gke_x'.*it has: ctx"):
        k8s_client.load_settings(path, "gke_x")


def test_removed_auth_providers_are_refused_with_the_way_out(tmp_path):
    path = _write(tmp_path / "config", _kubeconfig("https://k:6443", {"auth-provider": {"name": "gcp"}}))
    with pytest.raises(k8s_client.K8sError, match="gke-gcloud-auth-plugin"):
        k8s_client.load_settings(path)


def test_exec_plugin_gets_exec_info_and_its_token_is_used(tmp_path):
    plugin = tmp_path / "plugin"
    plugin.write_text("#!/bin/sh\n"
                      'case "$KUBERNETES_EXEC_INFO" in *ExecCredential*) ;; *) exit 3;; esac\n'
                      'echo \'{"kind": "ExecCredential", "status": {"token": "from-plugin-\'"$EXTRA"\'"}}\'\n')
    plugin.chmod(plugin.stat().st_mode | stat.S_IEXEC)
    spec = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin),
            "env": [{"name": "EXTRA", "value": "x"}]}
    assert k8s_client.exec_credential(spec, run_command)["token"] == "from-plugin-x"
    with pytest.raises(k8s_client.K8sError, match=r"could not run.*install it"):
        k8s_client.exec_credential({"command": str(tmp_path / "missing"), "installHint": "install it"}, run_command)
    with pytest.raises(k8s_client.K8sError, match="cannot start"):
        k8s_client.exec_credential(spec, None)


def test_inline_certificate_data_is_decoded(tmp_path):
    ca = b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
    path = _write(tmp_path / "config", _kubeconfig(
        "https://k:6443", {"client-certificate-data": base64.b64encode(b"cert").decode(), "client-key": "key.pem"},
        cluster_extra={"certificate-authority-data": base64.b64encode(ca).decode()}))
    (tmp_path / "key.pem").write_bytes(b"key")
    settings = k8s_client.load_settings(path)
    assert (settings.ca, settings.cert, settings.key) == (ca, b"cert", b"key")


def _deployment(generation=2, **status):
    return {"kind": "Deployment", "metadata": {"name": "m", "generation": generation}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, **status}}


def test_a_deployment_is_ready_only_when_every_replica_is_new_and_available():
    assert k8s.workload_state(_deployment(replicas=2, updatedReplicas=2, availableReplicas=2))[0] == "ready"
    assert k8s.workload_state(_deployment(replicas=3, updatedReplicas=2, availableReplicas=2))[0] == "progressing"
    assert k8s.workload_state(_deployment(replicas=2, updatedReplicas=1, availableReplicas=2))[0] == "progressing"
    unseen = _deployment(generation=3, replicas=2, updatedReplicas=2, availableReplicas=2)
    assert k8s.workload_state(unseen) == ("progressing", "the controller has not seen the newest spec yet")


def test_a_stuck_deployment_and_a_failed_job_fail():
    stuck = _deployment(conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "slow"}])
    assert k8s.workload_state(stuck) == ("failed", "exceeded its progress deadline: slow")
    job = {"kind": "Job", "metadata": {"name": "j"},
           "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    assert k8s.workload_state(job) == ("failed", "BackoffLimitExceeded")
    assert k8s.workload_state({"kind": "Job", "metadata": {}, "status": {"succeeded": 1}})[0] == "ready"


def test_a_statefulset_is_ready_when_its_revision_is_current():
    sts = {"kind": "StatefulSet", "metadata": {"name": "db", "generation": 1}, "spec": {"replicas": 1},
           "status": {"observedGeneration": 1, "readyReplicas": 1, "currentRevision": "a", "updateRevision": "b"}}
    assert k8s.workload_state(sts)[0] == "progressing"
    sts["status"]["currentRevision"] = "b"
    assert k8s.workload_state(sts)[0] == "ready"


def test_a_throttled_request_is_sent_again_after_retry_after():
    """429 TooManyRequests (API Priority and Fairness, or a new CRD's storage still initializing) is the API server
    declining the request: the client waits as told and sends it again; other errors are not retried."""
    import http.server
    import threading

    answers = [(429, "storage is (re)initializing"), (429, "storage is (re)initializing"), (200, ""), (409, "taken")]
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            status, message = answers.pop(0)
            body = json.dumps({"kind": "Status", "message": message, "reason": "TooManyRequests"}
                              if status >= 400 else {"kind": "NamespaceList", "items": []}).encode()
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = k8s_client.Client(k8s_client.Settings(f"http://127.0.0.1:{server.server_address[1]}"))
        assert client.request("GET", "/api/v1/namespaces") == {"kind": "NamespaceList", "items": []}
        assert len(seen) == 3
        with pytest.raises(k8s_client.K8sError, match="409"):
            client.request("GET", "/api/v1/namespaces")
        assert len(seen) == 4
    finally:
        server.shutdown()
