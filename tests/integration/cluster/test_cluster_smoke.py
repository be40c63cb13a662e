"""The local cluster is a real Kubernetes: workloads, Services, DNS, Pod Security, the egress guard, ingress."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from .kube import Kubectl

MLFLOW_IMAGE = "docker.io/mlplatform/mlflow:3.17.2"
BUSYBOX_IMAGE = "docker.io/mlplatform/busybox:1.35"
# Traefik, the cluster's ingress controller (cluster/cluster.sh: TRAEFIK_PORT on loopback and on the node IP).
INGRESS_PORT = 8880
TRAEFIK_UID = 64080  # cluster/cluster.sh runs Traefik as this uid; a guard drops its packets to the outside
CLUSTER_SH = Path(__file__).resolve().parents[3] / "cluster" / "cluster.sh"
# A backend that answers with a marker, the Host header it received and the path: proof of where a request went.
ECHO_SERVER = """
import http.server, os
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = " ".join([os.environ["MARKER"], self.headers["Host"], self.path]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("", 8080), Echo).serve_forever()
"""
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


@pytest.fixture(scope="module")
def echo(kubectl, namespace):
    """A Deployment answering with a marker, its Service, and an Ingress of class traefik for one host name."""
    marker, host = uuid.uuid4().hex, f"echo.{namespace}.test"
    spec = _restricted_pod_spec(MLFLOW_IMAGE, ["python", "-c", ECHO_SERVER])
    spec["containers"][0]["env"] = [{"name": "MARKER", "value": marker}]
    spec["containers"][0]["readinessProbe"] = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    objects = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "echo"}},
                  "template": {"metadata": {"labels": {"app": "echo"}}, "spec": spec}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
         "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "echo"},
         "spec": {"ingressClassName": "traefik", "rules": [{"host": host, "http": {"paths": [
             {"path": "/", "pathType": "Prefix",
              "backend": {"service": {"name": "echo", "port": {"number": 80}}}}]}}]}},
    ]
    kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}), namespace)
    kubectl.run("-n", namespace, "rollout", "status", "deploy/echo", "--timeout=180s")
    return {"marker": marker, "host": host}


def _through_ingress(host: str, path: str = "/") -> tuple[int, str]:
    """GET through Traefik on loopback with a Host header: (status, body)."""
    request = urllib.request.Request(f"http://127.0.0.1:{INGRESS_PORT}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _routed(host: str, path: str, timeout: int = 60) -> tuple[int, str]:
    """The first 200 through Traefik, or the last answer after `timeout` s (it applies new Ingresses within seconds).

    A refused connection (Traefik not running) raises, and fails the test.
    """
    deadline = time.monotonic() + timeout
    while True:
        answer = _through_ingress(host, path)
        if answer[0] == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(1)


def test_traefik_is_running_as_a_cluster_component():
    status = subprocess.run([str(CLUSTER_SH), "status"], capture_output=True, text=True, timeout=60, check=False)
    assert "traefik: running" in status.stdout.splitlines(), status.stdout


def test_the_resource_metrics_api_reports_the_node_and_the_pods(kubectl, namespace, web):
    """metrics-server behind its APIService: the API server verified its certificate (caBundle) and it verified the
    kubelet's; it reports the node's usage and, within a couple of resolutions, the new pods'."""
    def raw(path: str) -> list:
        return json.loads(kubectl.run("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/{path}").stdout)["items"]

    node = raw("nodes")
    assert node and node[0]["usage"]["cpu"] and node[0]["usage"]["memory"], node
    deadline = time.monotonic() + 90
    while not (pods := raw(f"namespaces/{namespace}/pods")):
        assert time.monotonic() < deadline, "no pod metrics within 90 s"
        time.sleep(5)
    assert all(c["usage"]["memory"] for pod in pods for c in pod["containers"]), pods


def test_ingress_routes_by_host_and_unknown_hosts_get_404(echo):
    assert _routed(echo["host"], "/hello?x=1") == (200, f"{echo['marker']} {echo['host']} /hello?x=1")
    status, body = _through_ingress(f"unknown.{echo['host']}")
    assert status == 404, body


def test_ingress_answers_pods_on_the_node_ip(kubectl, namespace, echo, client_pod):
    assert _routed(echo["host"], "/")[0] == 200
    node = kubectl.get("nodes")["items"][0]
    node_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    # stdin stays open a moment: when nc half-closes the connection at its end, Traefik answers 499.
    request = f"printf 'GET /from-a-pod HTTP/1.0\\r\\nHost: {echo['host']}\\r\\n\\r\\n'; sleep 2"
    reply = kubectl.run("-n", namespace, "exec", client_pod, "--", "sh", "-c",
                        f"({request}) | nc -w 5 {node_ip} {INGRESS_PORT}").stdout
    assert re.match(r"HTTP/1\.[01] 200 ", reply), reply
    assert reply.endswith(f"{echo['marker']} {echo['host']} /from-a-pod"), reply


@pytest.fixture(scope="module")
def policy_lab(kubectl):
    """A throwaway namespace: a web pod, a client labelled role=friend, an unlabelled one; no NetworkPolicy yet."""
    name = f"netpol-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    kubectl.run("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    target = _restricted_pod_spec(MLFLOW_IMAGE, ["python", "-m", "http.server", "8080", "--directory", "/tmp"])
    target["containers"][0]["readinessProbe"] = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    client = _restricted_pod_spec(BUSYBOX_IMAGE, ["sleep", "3600"])
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "labels": labels}, "spec": spec}
            for pod, labels, spec in (("target", {"app": "target"}, target), ("friend", {"role": "friend"}, client),
                                      ("stranger", {}, client))]
    kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}), name)
    kubectl.run("-n", name, "wait", "--for=condition=Ready", "pod", "--all", "--timeout=120s")
    yield {"namespace": name, "ip": kubectl.get("-n", name, "pod", "target")["status"]["podIP"]}
    kubectl.run("delete", "namespace", name, "--wait=false")


def _reaches(kubectl, lab: dict, pod: str) -> bool:
    """An HTTP request from `pod` to the target pod's IP gets an answer."""
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'"
    result = kubectl.run("-n", lab["namespace"], "exec", pod, "--", "sh", "-c",
                         f"{request} | nc -w 3 {lab['ip']} 8080", check=False)
    return result.stdout.startswith("HTTP/1.0 200")


def _settles(check, timeout: float = 30) -> bool:
    """`check` turns true within `timeout` s (the policy controller applies a change within about a second)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def _policy(name: str, selector: dict, ingress: list) -> str:
    return json.dumps({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name},
                       "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress}})


def test_network_policies_are_enforced_deny_then_allow_one_labelled_client(kubectl, policy_lab):
    namespace = policy_lab["namespace"]
    assert _reaches(kubectl, policy_lab, "friend") and _reaches(kubectl, policy_lab, "stranger")
    kubectl.apply(_policy("default-deny-ingress", {}, []), namespace)
    assert _settles(lambda: not _reaches(kubectl, policy_lab, "stranger")), \
        "a default-deny NetworkPolicy is not enforced (cluster.sh status: is kube-network-policies running?)"
    assert not _reaches(kubectl, policy_lab, "friend")
    kubectl.apply(_policy("friend-to-target", {"matchLabels": {"app": "target"}}, [
        {"from": [{"podSelector": {"matchLabels": {"role": "friend"}}}], "ports": [{"port": 8080, "protocol": "TCP"}]}
    ]), namespace)
    assert _settles(lambda: _reaches(kubectl, policy_lab, "friend")), "the allow rule did not admit role=friend"
    assert not _reaches(kubectl, policy_lab, "stranger")
    # Connections from root on the node still pass (the kubelet's probes, the host's own clients).
    with urllib.request.urlopen(f"http://{policy_lab['ip']}:8080/", timeout=10) as response:
        assert response.status == 200
    conditions = kubectl.get("-n", namespace, "pod", "target")["status"]["conditions"]
    assert {"type": "Ready", "status": "True"}.items() <= next(c for c in conditions if c["type"] == "Ready").items()


def test_egress_guard_still_drops_and_counts_traffic_of_a_policy_selected_pod(kubectl, policy_lab):
    """The policy controller's nftables table sits beside the iptables guards and never lets a packet past them."""
    kubectl.apply(_policy("default-deny-ingress", {}, []), policy_lab["namespace"])
    before = _guard_drops()
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=False).stdout
    gateway = re.search(r"default via (\S+)", routes).group(1)
    result = kubectl.run("-n", policy_lab["namespace"], "exec", "stranger", "--", "sh", "-c",
                         f"printf 'x' | nc -w 3 {gateway} 80", check=False)
    assert result.returncode != 0, "a policy-selected pod reached an address outside the machine"
    assert _guard_drops() > before, "the egress guard did not count the dropped packets"


def _traefik_guard_drops() -> int:
    """Packets counted by the guard that drops whatever Traefik's uid sends out of the machine."""
    rules = subprocess.run(["iptables", "-L", "OUTPUT", "-v", "-n", "-x"], capture_output=True, text=True,
                           check=True).stdout
    return sum(int(line.split()[0]) for line in rules.splitlines()
               if " DROP " in f" {line} " and f"owner UID match {TRAEFIK_UID}" in line)


def test_traefik_cannot_reach_outside_the_machine(kubectl, namespace):
    # An Ingress whose backend is the machine's gateway (a Service without selector and a hand-made EndpointSlice):
    # the gateway is the nearest address outside the machine. Traefik's connection must be dropped, never made.
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    gateway = re.search(r"default via (\S+)", routes).group(1)
    host = f"outside.{namespace}.test"
    objects = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "outside"},
         "spec": {"ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "outside", "labels": {"kubernetes.io/service-name": "outside",
                                                    "endpointslice.kubernetes.io/managed-by": "tests"}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
         "endpoints": [{"addresses": [gateway], "conditions": {"ready": True}}]},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "outside"},
         "spec": {"ingressClassName": "traefik", "rules": [{"host": host, "http": {"paths": [
             {"path": "/", "pathType": "Prefix",
              "backend": {"service": {"name": "outside", "port": {"number": 80}}}}]}}]}},
    ]
    kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}), namespace)
    before = _traefik_guard_drops()
    deadline = time.monotonic() + 60
    while (answer := _through_ingress(host))[0] == 404 and time.monotonic() < deadline:  # not routed yet
        time.sleep(1)
    # Gateway Timeout: the connection was never answered (a refusal, 502, would mean a packet got out and back).
    assert answer[0] == 504, answer
    assert _traefik_guard_drops() > before, "Traefik's packets to the gateway were not dropped by its guard"
