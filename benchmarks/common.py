"""Helpers shared by the benchmarks: timing, kubectl, the role runs and pod memory from the cgroup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
os.environ.setdefault("KUBECONFIG", "/var/lib/mlplatform-cluster/kubeconfig")
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from ansible_run import run_playbook  # noqa: E402


def kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def kubectl_json(*args: str) -> dict:
    return json.loads(kubectl("get", "-o", "json", *args))


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.monotonic()
    result = fn(*args, **kwargs)
    return time.monotonic() - start, result


def pod_memory_mib(namespace: str, selector: str) -> float:
    """Memory in use by the pods' cgroups (cgroup v1, read on the node), in MiB."""
    total = 0
    for pod in kubectl_json("-n", namespace, "pods", "-l", selector)["items"]:
        uid = pod["metadata"]["uid"].replace("-", "_")
        qos = pod["status"].get("qosClass", "Burstable").lower()
        candidates = [Path(f"/sys/fs/cgroup/memory/kubepods/{qos}/pod{pod['metadata']['uid']}"),
                      Path(f"/sys/fs/cgroup/memory/kubepods/pod{pod['metadata']['uid']}"),
                      Path(f"/sys/fs/cgroup/memory/kubepods/{qos}/pod{uid}")]
        for path in candidates:
            usage = path / "memory.usage_in_bytes"
            stat = path / "memory.stat"
            if usage.exists():
                cache = next((int(line.split()[1]) for line in stat.read_text().splitlines()
                              if line.startswith("total_inactive_file ")), 0)
                total += int(usage.read_text()) - cache
                break
        else:
            raise RuntimeError(f"no memory cgroup found for pod {pod['metadata']['name']}")
    return total / 2**20


def save(name: str, data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


__all__ = ["kubectl", "kubectl_json", "pod_memory_mib", "run_playbook", "save", "timed"]
