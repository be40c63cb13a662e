"""A thin kubectl wrapper for tests: the cluster's own client, its own error messages."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any


class Kubectl:
    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig

    def run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: int = 300) -> subprocess.CompletedProcess:
        result = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, *args], input=input,
                                capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def apply(self, manifest: str, namespace: str | None = None) -> None:
        args = ["apply", "--server-side", "--field-manager=tests", "-f", "-"]
        if namespace:
            args = ["-n", namespace, *args]
        self.run(*args, input=manifest)

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.run("get", "-o", "json", *args).stdout)

    def wait_for_service_rules(self, namespace: str, name: str, timeout: int = 60) -> str:
        """Wait until kube-proxy has programmed the Service and its endpoints; return its ClusterIP.

        A pod that sends to a Service before kube-proxy knows it would route the packet to the default route.
        """
        ip = self.get("-n", namespace, "service", name)["spec"]["clusterIP"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            rules = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True, check=False).stdout
            chain = next((line.split()[-1] for line in rules.splitlines()
                          if f"-d {ip}/32" in line and "KUBE-SVC" in line), None)
            if chain and any(line.startswith(f"-A {chain} ") and "KUBE-SEP" in line for line in rules.splitlines()):
                return ip
            time.sleep(0.5)
        raise AssertionError(f"kube-proxy did not program Service {namespace}/{name} within {timeout}s")
