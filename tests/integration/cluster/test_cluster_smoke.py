"""The local cluster is a real Kubernetes: workloads, Services, DNS, Pod Security and the egress guard."""

from __future__ import annotations

import re
import subprocess
import urllib.request
import uuid

import pytest

from .kube import Kubectl

MLFLOW_IMAGE = "docker.io/mlplatform/mlflow:3.17.2"
BUSYBOX_IMAGE = "docker.io/mlplatform/busybox:1.35"
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
}


@pytest.fixture(scope="module")
def kubectl(kubeconfig):
    return Kubectl(kubeconfig)


@pytest.fixture(scope="module")
def namespace(kubectl):
    name = f"smoke-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    kubectl.run("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false")


def _restricted_pod_spec(image: str, command: list[str]) -> dict:
    return {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "automountServiceAccountToken": False,
        "containers": [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent", "command": command,
                        "securityContext": RESTRICTED_CONTAINER,
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


@pytest.fixture(scope="module")
def web(kubectl, namespace):
    """A 2-replica Deployment of the MLflow image serving HTTP, and its Service."""
    import json

    spec = _restricted_pod_spec(MLFLOW_IMAGE, ["python", "-m", "http.server", "8080", "--directory", "/tmp"])
    spec["containers"][0]["readinessProbe"] = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment, service]}), namespace)
    kubectl.run("-n", namespace, "rollout", "status", "deploy/web", "--timeout=180s")
    return kubectl.wait_for_service_rules(namespace, "web")


@pytest.fixture(scope="module")
def client_pod(kubectl, namespace):
    import json

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
           "spec": _restricted_pod_spec(BUSYBOX_IMAGE, ["sleep", "3600"])}
    kubectl.apply(json.dumps(pod), namespace)
    kubectl.run("-n", namespace, "wait", "--for=condition=Ready", "pod/client", "--timeout=120s")
    return "client"


def test_deployment_of_the_mlflow_image_is_ready_with_two_replicas(kubectl, namespace, web):
    status = kubectl.get("-n", namespace, "deployment", "web")["status"]
    assert status["readyReplicas"] == 2


def test_service_answers_from_a_pod_by_dns_name(kubectl, namespace, web, client_pod):
    kubectl.wait_for_service_rules("kube-system", "kube-dns")
    lookup = kubectl.run("-n", namespace, "exec", client_pod, "--", "nslookup",
                         f"web.{namespace}.svc.cluster.local").stdout
    assert web in lookup
    request = "printf 'GET / HTTP/1.0\\r\\nHost: web\\r\\n\\r\\n'"
    reply = kubectl.run("-n", namespace, "exec", client_pod, "--", "sh", "-c",
                        f"{request} | nc -w 5 web.{namespace}.svc.cluster.local 80").stdout
    assert reply.startswith("HTTP/1.0 200")


def test_service_answers_from_the_host(web):
    with urllib.request.urlopen(f"http://{web}/", timeout=10) as response:
        assert response.status == 200


def test_privileged_pod_is_rejected_in_a_restricted_namespace(kubectl, namespace):
    import json

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged"},
           "spec": {"containers": [{"name": "main", "image": BUSYBOX_IMAGE, "command": ["sleep", "60"],
                                    "securityContext": {"privileged": True}}]}}
    result = kubectl.run("-n", namespace, "apply", "-f", "-", input=json.dumps(pod), check=False)
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr and "privileged" in result.stderr


def _guard_drops() -> int:
    """Packets counted by the egress guards (mangle FORWARD and POSTROUTING DROP rules)."""
    total = 0
    for chain in ("FORWARD", "POSTROUTING"):
        rules = subprocess.run(["iptables", "-t", "mangle", "-L", chain, "-v", "-n", "-x"],
                               capture_output=True, text=True, check=True).stdout
        total += sum(int(line.split()[0]) for line in rules.splitlines() if " DROP " in f" {line} ")
    return total


def test_pod_traffic_to_outside_the_machine_is_dropped_by_the_guard(kubectl, namespace, client_pod):
    before = _guard_drops()
    # 192.0.2.1 is the machine's gateway (TEST-NET-1): the nearest address outside the machine.
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=False).stdout
    gateway = re.search(r"default via (\S+)", routes).group(1)
    result = kubectl.run("-n", namespace, "exec", client_pod, "--", "sh", "-c",
                         f"printf 'x' | nc -w 3 {gateway} 80", check=False)
    assert result.returncode != 0, "a pod reached an address outside the machine"
    assert _guard_drops() > before, "the egress guard did not count the dropped packets"
