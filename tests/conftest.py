"""Fixtures shared by every test tier."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# The collection imports itself as ansible_collections.mlplatform.mlflow (scripts/bootstrap.sh makes the link).
sys.path.insert(0, str(ROOT / ".cache" / "collections"))
DEFAULT_KUBECONFIG = "/var/lib/mlplatform-cluster/kubeconfig"


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """The cluster under test. A test that needs it and cannot reach it fails; it never skips."""
    path = os.environ.get("KUBECONFIG", DEFAULT_KUBECONFIG)
    probe = subprocess.run(["kubectl", "--kubeconfig", path, "get", "--raw", "/readyz"],
                           capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0 or probe.stdout.strip() != "ok":
        pytest.fail(f"the cluster at {path} is not reachable ({probe.stderr.strip()}); run `cluster/cluster.sh up`")
    os.environ["KUBECONFIG"] = path  # for kubectl and ansible-playbook started by the tests
    return path


@pytest.fixture(scope="session")
def kubeconfig_with_contexts(kubeconfig, tmp_path_factory):
    """Make a copy of the cluster's kubeconfig in which more context names (an inventory's mlplatform_context: a GKE
    one, minikube) reach the local cluster; returns the copy's path."""

    def make(*names: str) -> str:
        path = tmp_path_factory.mktemp("kube") / "config"
        kubectl = ["kubectl", "--kubeconfig", str(path)]
        path.write_text(subprocess.run(["kubectl", "config", "view", "--raw", "--flatten"], capture_output=True,
                                       text=True, check=True).stdout)
        current = subprocess.run([*kubectl, "config", "current-context"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        cluster, user = (subprocess.run([*kubectl, "config", "view", "-o",
                                         f"jsonpath={{.contexts[?(@.name=='{current}')].context.{field}}}"],
                                        capture_output=True, text=True, check=True).stdout
                         for field in ("cluster", "user"))
        for name in names:
            subprocess.run([*kubectl, "config", "set-context", name, f"--cluster={cluster}", f"--user={user}"],
                           capture_output=True, check=True)
        return str(path)

    return make


@pytest.fixture(scope="session")
def gke_crds(kubeconfig):
    """GKE's own CRDs (HealthCheckPolicy, GCPBackendPolicy, ManagedCertificate), vendored as published under
    tests/fixtures/gke-crds/, installed on the cluster for tests that dry-run what a GKE inventory applies. Any test
    that needs them asks for this fixture: on a new cluster, nothing else installs them."""
    files = sorted((ROOT / "tests" / "fixtures" / "gke-crds").glob("*.yaml"))
    assert len(files) == 3, files
    for path in files:
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        for args in (["apply", "--server-side", "--field-manager=mlplatform-tests", "-f", str(path)],
                     ["wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s"]):
            done = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"


@pytest.fixture(scope="module")
def namespaces_to_delete(kubeconfig):
    """Namespaces a test module creates; deleted when the module ends so later tiers have the node's CPU."""
    names: list[str] = []
    yield names
    if names:
        subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "delete", "namespace", *names, "--wait=true",
                        "--timeout=300s", "--ignore-not-found"], capture_output=True, text=True, check=False)


def pytest_collection_modifyitems(items):
    """Modules with a test that takes the whole cluster (`cluster_alone`) run last, in their own order: the other
    tests of the session never see the cluster stop."""
    last = {item.module for item in items if "cluster_alone" in item.fixturenames}
    items.sort(key=lambda item: item.module in last)


@pytest.fixture
def cluster_alone():
    """The test stops the whole cluster: wait until no other test run uses it. `make test` runs the integration
    tier as two pytest runs side by side and holds the lock file named by MLP_CLUSTER_SHARED_LOCK until the other
    run has ended; run alone, nothing holds it and nothing waits."""
    path = os.environ.get("MLP_CLUSTER_SHARED_LOCK")
    if not path:
        yield
        return
    with open(path, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
