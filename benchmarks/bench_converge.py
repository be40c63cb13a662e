"""First converge to Ready and no-op converge of mlflow_server, beside kubectl apply --server-side of the same objects.

The role's first converge includes what kubectl cannot do: the backup/artifact-check/migration Job before the
rollout. The kubectl side applies the role's own rendered objects (read back from the cluster) into a second
namespace and waits for the same Deployments and StatefulSets to be Ready.
"""

from __future__ import annotations

import json
import time

from common import kubectl, kubectl_json, run_playbook, save, timed

ROLE_NS, KUBECTL_NS = "bench-role", "bench-kubectl"
PLAYBOOK = "benchmarks/converge.yml"
KINDS = "serviceaccounts,secrets,configmaps,services,statefulsets,deployments,networkpolicies,persistentvolumeclaims"


def role_converge() -> float:
    seconds, result = timed(run_playbook, PLAYBOOK, {"bench_namespace": ROLE_NS})
    assert result.rc == 0, result.output[-3000:]
    return seconds


def exported_objects() -> list[dict]:
    items = kubectl_json("-n", ROLE_NS, KINDS, "-l", "mlplatform.mlflow/object-set")["items"]
    objects = []
    for item in items:
        meta = item["metadata"]
        if item["kind"] == "PersistentVolumeClaim" and meta["name"].startswith("data-"):
            continue  # created by the StatefulSet
        clean = {"apiVersion": item["apiVersion"], "kind": item["kind"],
                 "metadata": {"name": meta["name"], "namespace": KUBECTL_NS, "labels": meta.get("labels", {})}}
        for field in ("spec", "data", "type"):
            if field in item:
                clean[field] = item[field]
        spec = clean.get("spec", {})
        if item["kind"] == "Service":
            spec = {k: v for k, v in spec.items() if k not in ("clusterIP", "clusterIPs")}
            for port in spec.get("ports", []):
                port.pop("nodePort", None)
            spec["type"] = "ClusterIP"
            clean["spec"] = spec
        if item["kind"] == "PersistentVolumeClaim":
            clean["spec"] = {k: v for k, v in spec.items() if k in ("accessModes", "resources", "storageClassName")}
        objects.append(clean)
    return objects


def kubectl_apply(objects: list[dict]) -> None:
    kubectl("apply", "--server-side", "--field-manager=bench", "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))


def kubectl_first(objects: list[dict]) -> float:
    kubectl("create", "namespace", KUBECTL_NS)
    kubectl("label", "namespace", KUBECTL_NS, "pod-security.kubernetes.io/enforce=restricted")
    start = time.monotonic()
    kubectl_apply(objects)
    kubectl("-n", KUBECTL_NS, "rollout", "status", "statefulset/mlflow-db", "--timeout=300s")
    kubectl("-n", KUBECTL_NS, "rollout", "status", "deployment/mlflow", "--timeout=300s")
    return time.monotonic() - start


def main() -> None:
    for ns in (ROLE_NS, KUBECTL_NS):
        kubectl("delete", "namespace", ns, "--wait=true", "--ignore-not-found")
    first = role_converge()
    noop = [role_converge() for _ in range(3)]
    objects = exported_objects()
    k_first = kubectl_first(objects)
    k_noop = [timed(kubectl_apply, objects)[0] for _ in range(3)]
    results = {"role_first_converge_s": round(first, 1), "role_noop_converge_s": [round(s, 2) for s in noop],
               "kubectl_first_apply_to_ready_s": round(k_first, 1),
               "kubectl_noop_apply_s": [round(s, 2) for s in k_noop], "objects": len(objects)}
    save("converge", results)
    print(json.dumps(results, indent=2))
    for ns in (ROLE_NS, KUBECTL_NS):
        kubectl("delete", "namespace", ns, "--wait=false")


if __name__ == "__main__":
    main()
