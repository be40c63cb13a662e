"""Decisions of k8s_object_set that need no cluster: labels, order, comparison, secret masking, and (against an
in-memory API server) when the later sets' objects are validated."""

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


class FakeApiServer:
    """An in-memory API server for object_set: objects by path, server-side apply as a merge, dry runs unwritten,
    and names listed in `refused` refused as an API server refuses an invalid object (422)."""

    def __init__(self, refused=()):
        self.objects, self.refused, self.calls = {}, set(refused), []

    def path(self, api_version, kind, namespace=None, name=None):
        return "/".join(p for p in (api_version, kind, namespace or "", name or "") if p)

    def resource(self, api_version, kind):
        return {"kind": kind}

    def namespaced(self, api_version, kind):
        return kind != "Namespace"

    def request(self, method, path, body=None, query=None, content_type=None):
        dry_run = bool(query and query.get("dryRun"))
        self.calls.append((method, path, dry_run))
        if method == "GET":
            if not (path.count("/") >= 3 or path.startswith("v1/Namespace/")):
                return {"items": []}  # a list
            if path not in self.objects:
                raise k8s.K8sError("not found", 404, "NotFound")
            return self.objects[path]
        if body["metadata"]["name"] in self.refused:
            raise k8s.K8sError("spec.replicas: Invalid value: -1", 422, "Invalid")
        if not dry_run:
            self.objects[path] = body
        return body


def _set(definitions, later=()):
    return {"name": "s", "namespace": "ns", "definitions": definitions, "later_definitions": list(later),
            "state": "present", "prune": False, "prune_kinds": None, "field_manager": "m", "wait": False,
            "wait_timeout": 1}


NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
LATER = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "later"}, "spec": {"replicas": -1}}


def test_a_later_object_the_server_refuses_stops_the_set_before_its_first_write():
    server = FakeApiServer(refused={"later"})
    try:
        k8s.object_set(server, _set([NAMESPACE, CONFIG], [LATER]), check_mode=False)
        raise AssertionError("the refused later object was not reported")
    except k8s.K8sError as exc:
        assert "Deployment ns/later" in str(exc) and "Invalid value" in str(exc)
    assert server.objects == {}, "objects were written before the later set was validated"


def test_later_objects_are_validated_in_this_sets_namespace_and_never_written():
    server = FakeApiServer()
    result = k8s.object_set(server, _set([NAMESPACE, CONFIG], [LATER]), check_mode=False)
    assert result["changed"] and set(server.objects) == {"v1/Namespace/ns", "v1/ConfigMap/ns/c"}
    # The namespace did not exist when the set was planned: the stand-in dry run in `default`.
    assert ("PATCH", "apps/v1/Deployment/default/later", True) in server.calls
    changed_config = {**CONFIG, "data": {"k": "w"}}
    k8s.object_set(server, _set([NAMESPACE, changed_config], [LATER]), check_mode=False)
    assert ("PATCH", "apps/v1/Deployment/ns/later", True) in server.calls
    assert not any("later" in path for path in server.objects)


def test_a_set_that_changes_nothing_does_not_validate_later_objects():
    server = FakeApiServer()
    k8s.object_set(server, _set([NAMESPACE, CONFIG]), check_mode=False)
    server.refused.add("later")  # it would be refused, but nothing here is about to be written
    server.calls.clear()
    result = k8s.object_set(server, _set([NAMESPACE, CONFIG], [LATER]), check_mode=False)
    assert not result["changed"]
    assert not any("later" in path for _method, path, _dry in server.calls)


def test_a_refused_field_is_traced_to_the_variable_that_sets_it():
    message = ('applying (dry run) Service ml/mlflow failed: 422 Invalid: Service "mlflow" is invalid: '
               'spec.ports[0].nodePort: Invalid value: 30599: provided port is already allocated')
    hints = {"Service spec.ports[0].nodePort": "mlflow_server_node_port", "Deployment spec.replicas": "r",
             "Service spec.type": "mlflow_server_service_type"}
    assert k8s.refused_variables(message, hints) == ["mlflow_server_node_port"]
    resources = ('applying Deployment ml/mlflow failed: 422 Invalid: Deployment.apps "mlflow" is invalid: '
                 '* spec.template.spec.containers[0].resources.requests: Invalid value: "2": must be less than or '
                 'equal to cpu limit of 1')
    prefix = {"Deployment spec.template.spec.containers[0].resources": "mlflow_server_cpu_request, ..."}
    assert k8s.refused_variables(resources, prefix) == ["mlflow_server_cpu_request, ..."]
    assert k8s.refused_variables(resources, {"StatefulSet spec.template.spec.containers[0].resources": "x"}) == []


def test_the_refusal_message_names_the_variable():
    server = FakeApiServer(refused={"later"})
    params = {**_set([NAMESPACE, CONFIG], [LATER]), "field_variables": {"Deployment spec.replicas": "server_replicas"}}
    try:
        k8s.object_set(server, params, check_mode=False)
        raise AssertionError("the refused later object was not reported")
    except k8s.K8sError as exc:
        assert str(exc).endswith("(set by server_replicas)"), str(exc)
