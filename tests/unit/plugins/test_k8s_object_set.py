"""Decisions of k8s_object_set that need no cluster: labels, order, comparison, secret masking."""

from __future__ import annotations

import base64

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s


def test_set_label_namespace_and_string_data_are_added_without_touching_the_input():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v@l"}}
    obj = k8s.with_set_label(secret, "mlflow-server", "ml")
    assert obj["metadata"]["labels"][k8s.SET_LABEL] == "mlflow-server"
    assert obj["metadata"]["namespace"] == "ml"
    assert obj["data"] == {"k": base64.b64encode(b"v@l").decode()} and "stringData" not in obj
    assert "labels" not in secret["metadata"] and "stringData" in secret


def test_namespaces_never_get_a_namespace():
    ns = k8s.with_set_label({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}}, "x", "ml")
    assert "namespace" not in ns["metadata"]


def test_apply_order_puts_dependencies_first():
    kinds = ["Deployment", "Service", "Secret", "Namespace", "HorizontalPodAutoscaler", "ServiceAccount"]
    ordered = [o["kind"] for o in k8s.apply_order([{"kind": k} for k in kinds])]
    assert ordered == ["Namespace", "ServiceAccount", "Secret", "Service", "Deployment", "HorizontalPodAutoscaler"]


def test_normalize_ignores_what_the_server_changes_on_every_write():
    a = {"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "1", "managedFields": [1]},
         "data": {"k": "v"}, "status": {}}
    b = {"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "2", "uid": "u"}, "data": {"k": "v"}}
    assert k8s.normalize(a) == k8s.normalize(b)
    b["data"]["k"] = "w"
    assert k8s.normalize(a) != k8s.normalize(b)


def test_secret_values_are_masked_but_a_change_stays_visible():
    s1 = {"kind": "Secret", "data": {"password": "c2VjcmV0"}}
    s2 = {"kind": "Secret", "data": {"password": "b3RoZXI="}}
    m1, m2 = k8s.mask_secret(s1), k8s.mask_secret(s2)
    assert "c2VjcmV0" not in str(m1) and m1 != m2
    assert s1["data"]["password"] == "c2VjcmV0"


def test_same_identity_ignores_api_version_but_not_group():
    a = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x", "namespace": "n"}}
    b = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x", "namespace": "n"}}
    assert k8s.same_identity(a, b)
    assert not k8s.same_identity(a, {**b, "metadata": {"name": "y", "namespace": "n"}})
