"""Bad variables and module arguments: each gets a clear message naming what is wrong, before anything changes.

Every case runs against the real cluster; afterwards the namespace the run would have created must not exist.
"""

from __future__ import annotations

import json
import secrets
import subprocess

import pytest

from ..ansible_run import run_playbook

# A context named as `gcloud container clusters get-credentials` names them, pointing at the local cluster.
GKE_CONTEXT = "gke_mlp-staging_europe-west1_main"
# The shape of a service-account key, made at test time: its "private key" is random text, never a real key.
_ARMOUR = "PRIVATE" + " KEY-----"
SHAPED_KEY = {"type": "service_account", "client_email": "a@p.iam.gserviceaccount.com", "token_uri": "t",
              "private_key": f"-----BEGIN {_ARMOUR}\n{secrets.token_urlsafe(24)}\n-----END {_ARMOUR}\n"}
SERVER = {"mlflow_server_image": "docker.io/mlplatform/mlflow:3.17.2"}
CLOUDSQL = {**SERVER, "mlflow_server_database_mode": "cloudsql",
            "mlflow_server_cloudsql_instance_connection_name": "mlp-staging:europe-west1:mlflow"}
SERVING = {"model_serving_image": "docker.io/mlplatform/mlflow:3.17.2", "model_serving_tracking_uri": "http://127.0.0.1:1",
           "model_serving_models": [{"name": "iris", "model": "Iris", "alias": "champion"}]}

# (role, variables, text the message must contain)
ROLE_CASES = [
    ("mlflow_server", {}, "mlflow_server_image"),
    ("mlflow_server", {"mlflow_server_image": "mlflow:3.17.2"},
     "mlflow_server_image: 'mlflow:3.17.2' names no registry"),
    ("mlflow_server", {"mlflow_server_image": "europe-west1-docker.pkg.dev/p-123456/mlflow/mlflow-server:1@sha256:abc"},
     "is not an image digest"),
    ("mlflow_server", {**SERVER, "mlflow_server_replicas": "two"}, "mlflow_server_replicas"),
    ("mlflow_server", {**SERVER, "mlflow_server_auth_enabled": "maybe"}, "mlflow_server_auth_enabled"),
    ("mlflow_server", {**SERVER, "mlflow_server_database_mode": "sqlite"}, "mlflow_server_database_mode"),
    ("mlflow_server", {**SERVER, "mlflow_server_database_engine": "oracle"}, "mlflow_server_database_engine"),
    ("mlflow_server", {**SERVER, "mlflow_server_image_pull_policy": "Sometimes"}, "mlflow_server_image_pull_policy"),
    ("mlflow_server", {**SERVER, "mlflow_server_tls": "letsencrypt"}, "mlflow_server_tls"),
    ("mlflow_server", {**SERVER, "mlflow_server_extra_allowed_hosts": {"a": 1}}, "mlflow_server_extra_allowed_hosts"),
    ("mlflow_server", {**SERVER, "mlflow_server_service_account_annotations": ["x"]},
     "mlflow_server_service_account_annotations"),
    ("mlflow_server", {**SERVER, "mlflow_server_auth_default_permission": "ALL"},
     "mlflow_server_auth_default_permission"),
    ("mlflow_server", {**SERVER, "mlflow_server_database_mode": "external"}, "mlflow_server_database_host"),
    ("mlflow_server", {**SERVER, "mlflow_server_database_mode": "cloudsql"}, "PROJECT:REGION:INSTANCE"),
    ("mlflow_server", {**SERVER, "mlflow_server_database_mode": "cloudsql",
                       "mlflow_server_cloudsql_instance_connection_name": "Bad Name"}, "PROJECT:REGION:INSTANCE"),
    ("mlflow_server", {**SERVER, "mlflow_server_artifacts_destination": "s3://bucket/x"}, "s3://bucket/x"),
    ("mlflow_server", {**SERVER, "mlflow_server_artifacts_destination": "gs://UPPER/x"}, "gs://UPPER/x"),
    ("mlflow_server", {**SERVER, "mlflow_server_artifacts_destination": "gs://a"}, "gs://a"),
    ("mlflow_server", {**SERVER, "mlflow_server_gcs_emulator_enabled": True}, "mlflow_server_gcs_emulator_enabled"),
    ("mlflow_server", {**SERVER, "mlflow_server_replicas": 3}, "shared gs:// artifact store"),
    ("mlflow_server", {**SERVER, "mlflow_server_artifacts_destination": "gs://bucket/p",
                       "mlflow_server_hpa_enabled": True,
                       "mlflow_server_hpa_min_replicas": 5, "mlflow_server_hpa_max_replicas": 2},
     "mlflow_server_hpa_min_replicas"),
    ("mlflow_server", {**SERVER, "mlflow_server_exposure": "gateway"}, "mlflow_server_host"),
    ("mlflow_server", {**SERVER, "mlflow_server_exposure": "ingress", "mlflow_server_host": "m.example.com",
                       "mlflow_server_tls": "secret"}, "mlflow_server_tls_secret_name"),
    ("mlflow_server", {**SERVER, "mlflow_server_exposure": "public"}, "mlflow_server_exposure"),
    ("mlflow_server", {**SERVER, "mlflow_server_exposure": "ingress", "mlflow_server_host": "m.example.com",
                       "mlflow_server_tls": "certificate_map", "mlflow_server_gateway_certificate_map": "m"},
     "certificate_map a Gateway's"),
    ("mlflow_server", {**SERVER, "mlflow_server_exposure": "gateway", "mlflow_server_host": "m.example.com"},
     "an existing Gateway (no mlflow_server_gateway_class_name)"),
    ("mlflow_server", {**SERVER, "mlflow_server_cloudsql_iam_auth": True}, "mlflow_server_cloudsql_iam_auth"),
    ("mlflow_server", {**SERVER, "mlflow_server_database_mode": "cloudsql", "mlflow_server_cloudsql_iam_auth": True,
                       "mlflow_server_cloudsql_instance_connection_name": "p:europe-west1:i",
                       "mlflow_server_database_password": "not-used"}, "has no database password"),
    ("mlflow_server", {**SERVER, "mlflow_server_artifacts_destination": "gs://bucket/p", "mlflow_server_replicas": 10,
                       "mlflow_server_cpu_limit": "4", "mlflow_server_memory_limit": "8Gi"}, "connections"),
    ("mlflow_server", {**SERVER, "mlflow_server_database_max_connections": 20},
     "mlflow_server_database_max_connections"),
    ("mlflow_server", {**SERVER, "mlflow_server_memory_limit": "256Mi"}, "mlflow_server_memory_limit"),
    ("mlflow_server", {**SERVER, "mlflow_server_cpu_limit": "lots"},
     "mlflow_server_cpu_limit must be a positive CPU quantity"),
    ("mlflow_server", {**SERVER, "mlflow_server_memory_limit": "a lot"},
     "mlflow_server_memory_limit must be a positive memory quantity"),
    # secret_source=external_secrets: refused before the cluster is asked anything about the operator.
    ("mlflow_server", {**SERVER, "mlflow_server_secret_source": "external_secrets"},
     "mlflow_server_external_secrets_store_name"),
    ("mlflow_server", {**SERVER, "mlflow_server_secret_source": "external_secrets",
                       "mlflow_server_external_secrets_store_name": "s", "mlflow_server_auth_admin_password": "x"},
     "remove mlflow_server_auth_admin_password from the inventory"),
    ("mlflow_server", {**SERVER, "mlflow_server_secret_source": "external_secrets",
                       "mlflow_server_external_secrets_store_name": "s",
                       "mlflow_server_external_secrets_store_kind": "VaultStore"},
     "mlflow_server_external_secrets_store_kind"),
    ("mlflow_server", {**SERVER, "mlflow_server_secret_source": "external_secrets",
                       "mlflow_server_external_secrets_store_name": "s",
                       "mlflow_server_external_secrets_flask_secret_key_secret": ""},
     "mlflow_server_external_secrets_flask_secret_key_secret must name a Secret Manager secret"),
    ("mlflow_server", {**SERVER, "mlflow_server_secret_source": "external_secrets",
                       "mlflow_server_external_secrets_store_name": "s", "mlflow_server_database_engine": "mysql",
                       "mlflow_server_auth_enabled": False}, "needs mlflow_server_database_engine=postgresql"),
    ("model_serving", {}, "model_serving_image"),
    ("model_serving", {**SERVING, "model_serving_models": "iris"}, "model_serving_models"),
    ("model_serving", {**SERVING, "model_serving_models": [{"model": "Iris", "alias": "a"}]}, "name"),
    ("model_serving", {**SERVING, "model_serving_models": [{"name": "iris", "alias": "a"}]}, "model"),
    ("model_serving", {**SERVING, "model_serving_models": [{"name": "Iris_Model", "model": "I", "alias": "a"}]},
     "DNS label"),
    ("model_serving", {**SERVING, "model_serving_models": [{"name": "iris", "model": "I"}]},
     "exactly one of alias and version"),
    ("model_serving", {**SERVING, "model_serving_models": [{"name": "iris", "model": "I", "alias": "a", "version": 2}]},
     "exactly one of alias and version"),
    ("model_serving", {**SERVING, "model_serving_models": [{"name": "iris", "model": "I", "version": "two"}]},
     "version"),
    ("model_serving", {**SERVING, "model_serving_models": [{"name": "a", "model": "I", "alias": "x"},
                                                           {"name": "a", "model": "J", "alias": "x"}]}, "unique"),
    ("model_serving", {**SERVING, "model_serving_models": [{"name": "iris", "model": "I", "alias": "x",
                                                            "min_replicas": 4, "max_replicas": 2}]}, "min_replicas"),
    ("model_serving", {**SERVING, "model_serving_default_replicas": "many"}, "model_serving_default_replicas"),
    ("model_serving", {**SERVING, "model_serving_server": "mlflow", "model_serving_models": [
        {"name": "iris", "model": "Iris", "alias": "a", "ingress_path": "/iris"}]}, "ingress_path other than /"),
    ("model_serving", SERVING, "127.0.0.1:1"),  # unreachable registry: clear failure before any object exists
    # A Cloud SQL service-account key (clusters without Workload Identity): where it may go, and what it must be.
    ("mlflow_server", {**CLOUDSQL, "mlflow_server_cloudsql_credentials_file": "/nonexistent/key.json"},
     "mlflow_server_cloudsql_credentials_file must be a Google service-account key (JSON, as `gcloud iam "
     "service-accounts keys create` writes it), but the file /nonexistent/key.json does not exist"),
    ("mlflow_server", {**CLOUDSQL, "mlflow_server_cloudsql_credentials_file": "/etc/hostname"}, "it is not JSON"),
    ("mlflow_server", {**CLOUDSQL, "mlflow_server_cloudsql_proxy_extra_args": ["--json-credentials={}"]},
     "mlflow_server_cloudsql_proxy_extra_args must not carry --json-credentials"),
    ("mlflow_server", {**CLOUDSQL, "mlflow_server_cloudsql_credentials": '{"type": "authorized_user"}'},
     'mlflow_server_cloudsql_credentials must be a Google service-account key'),
    ("mlflow_server", {**CLOUDSQL, "mlflow_server_cloudsql_credentials": {"type": "service_account"}},
     'it has no "client_email", "private_key", "token_uri"'),
    ("mlflow_server", {**CLOUDSQL, "mlflow_server_cloudsql_credentials_file": "/etc/hostname",
                       "mlflow_server_cloudsql_credentials": "x"}, "not both"),
    ("mlflow_server", {**SERVER, "mlflow_server_cloudsql_credentials": "x"}, "is for database_mode=cloudsql"),
    ("mlflow_server", {**CLOUDSQL, "mlflow_server_cloudsql_credentials": "x",
                       "mlflow_server_service_account_annotations":
                       {"iam.gke.io/gcp-service-account": "mlflow-server@mlp-staging.iam.gserviceaccount.com"}},
     "mlflow_server_cloudsql_credentials is refused on a Workload Identity (GKE) inventory"),
    ("mlflow_server", {**CLOUDSQL, "mlflow_server_cloudsql_credentials": json.dumps(SHAPED_KEY),
                       "mlplatform_context": GKE_CONTEXT}, "is a GKE context"),
    # Cloud SQL's scheduled export goes to the artifact bucket: there is no backups volume to fall back on.
    ("mlflow_server", {**CLOUDSQL, "mlflow_server_backup_schedule": "47 2 * * *",
                       "mlflow_server_artifacts_destination": "pvc"},
     "mlflow_server_backup_schedule backs up the in-cluster or Cloud SQL database"),
]

# Every variable with a value domain (plugins/filter/domains.py), one value outside it: refused by name in the
# preflight, before the namespace exists.
DOMAIN_CASES = [
    ("mlflow_server", "mlflow_server_namespace", "ML_flow"),
    ("mlflow_server", "mlflow_server_name", "a-name-that-is-far-too-long-for-the-derived-names"),
    ("mlflow_server", "mlflow_server_replicas", -1),
    # In its domain, but above the CPU limit (1): refused by the API server's dry run, which names the field; the
    # role's field_variables name the variable.
    ("mlflow_server", "mlflow_server_cpu_request", "2"),
    ("mlflow_server", "mlflow_server_cpu_request", "-250m"),
    ("mlflow_server", "mlflow_server_cpu_limit", "two"),
    ("mlflow_server", "mlflow_server_memory_request", "1.5GB"),
    ("mlflow_server", "mlflow_server_memory_limit", "0"),
    ("mlflow_server", "mlflow_server_workers", -2),
    ("mlflow_server", "mlflow_server_tmp_size_limit", "lots"),
    ("mlflow_server", "mlflow_server_database_port", 70000),
    ("mlflow_server", "mlflow_server_database_max_connections", 0),
    ("mlflow_server", "mlflow_server_database_reserved_connections", -1),
    ("mlflow_server", "mlflow_server_database_pool_size", 0),
    ("mlflow_server", "mlflow_server_database_max_overflow", -5),
    ("mlflow_server", "mlflow_server_database_storage_size", "5 GiB"),
    ("mlflow_server", "mlflow_server_database_storage_class", "Fast_SSD"),
    ("mlflow_server", "mlflow_server_backup_storage_size", "-1Gi"),
    ("mlflow_server", "mlflow_server_artifacts_storage_size", "ten"),
    ("mlflow_server", "mlflow_server_migration_timeout", 0),
    ("mlflow_server", "mlflow_server_service_account_name", "MLflow Server"),
    ("mlflow_server", "mlflow_server_auth_cache_ttl", -30),
    ("mlflow_server", "mlflow_server_external_secrets_refresh_interval", "hourly"),
    ("mlflow_server", "mlflow_server_external_secrets_sync_timeout", 0),
    ("mlflow_server", "mlflow_server_node_port", 8080),
    ("mlflow_server", "mlflow_server_host", "https://mlflow.example.com/"),
    ("mlflow_server", "mlflow_server_public_url", "mlflow.example.com"),
    ("mlflow_server", "mlflow_server_ingress_class_name", "Traefik!"),
    ("mlflow_server", "mlflow_server_gateway_port", 70000),
    ("mlflow_server", "mlflow_server_gateway_certificate_map", "projects/p/maps/m"),
    ("mlflow_server", "mlflow_server_tls_secret_name", "TLS_secret"),
    ("mlflow_server", "mlflow_server_extra_allowed_hosts", ["http://mlflow.example.com/x"]),
    ("mlflow_server", "mlflow_server_request_timeout", -1),
    ("mlflow_server", "mlflow_server_hpa_min_replicas", 0),
    ("mlflow_server", "mlflow_server_hpa_max_replicas", 0),
    ("mlflow_server", "mlflow_server_hpa_cpu_utilization", 150),
    ("mlflow_server", "mlflow_server_hpa_scale_down_seconds", -30),
    ("mlflow_server", "mlflow_server_rollout_timeout", 0),
    ("mlflow_server", "mlflow_server_gc_schedule", "every night"),
    ("mlflow_server", "mlflow_server_gc_older_than", "30 days"),
    ("mlflow_server", "mlflow_server_backup_schedule", "nightly"),
    ("mlflow_server", "mlflow_server_backup_keep", 0),
    ("mlflow_server", "mlflow_server_users", [{"name": "ci", "permissions": [{"resource_type": "run"}]}]),
    ("mlflow_server", "mlflow_server_api_url", "127.0.0.1:30500"),
    ("mlflow_server", "mlflow_server_extra_env", {"MLFLOW_BACKEND_STORE_URI": "sqlite:///x.db"}),
    ("model_serving", "model_serving_namespace", "Serving"),
    ("model_serving", "model_serving_default_replicas", 0),
    ("model_serving", "model_serving_default_cpu_request", "fast"),
    ("model_serving", "model_serving_default_cpu_limit", "-1"),
    ("model_serving", "model_serving_default_memory_request", "1 GB"),
    ("model_serving", "model_serving_default_memory_limit", "big"),
    ("model_serving", "model_serving_default_timeout", 0),
    ("model_serving", "model_serving_rollout_timeout", -1),
    ("model_serving", "model_serving_host", "serving.example.com:443"),
    ("model_serving", "model_serving_exposure", "loadbalancer"),
    ("model_serving", "model_serving_gateway_namespace", "Kube System"),
    ("model_serving", "model_serving_canary_steps", [50, 10]),
    ("model_serving", "model_serving_canary_max_error_rate", 5),
    ("model_serving", "model_serving_promotion_gates", [{"metric": "accuracy", "above": 0.9}]),
    ("model_serving", "model_serving_ingress_class_name", "Nginx Class"),
    ("model_serving", "model_serving_default_max_batch_size", 0),
    ("model_serving", "model_serving_default_max_batch_wait_ms", -5),
    ("model_serving", "model_serving_models",
     [{"name": "iris", "model": "Iris", "alias": "a", "ingress_path": "iris/"}]),
]

MODULE_CASES = [
    ("k8s_object_set", {"definitions": []}, "name"),
    ("k8s_object_set", {"name": "x", "definitions": [{"kind": "ConfigMap", "metadata": {"name": "c"}}]}, "apiVersion"),
    ("k8s_object_set", {"name": "x", "definitions": [{"apiVersion": "v1", "kind": "ConfigMap"}]}, "metadata.name"),
    ("k8s_object_set", {"name": "x", "later_definitions": [{"apiVersion": "v1", "metadata": {"name": "c"}}]},
     "later_definitions[0] lacks kind"),
    ("k8s_object_set", {"name": "x", "state": "gone"}, "state"),
    ("k8s_object_set", {"name": "x", "kubeconfig": "/nonexistent/kubeconfig"}, "/nonexistent/kubeconfig"),
    ("mlflow_model_alias", {"tracking_uri": "http://127.0.0.1:1", "name": "m", "alias": "latest", "version": 1},
     "latest"),
    ("mlflow_model_alias", {"tracking_uri": "http://127.0.0.1:1", "name": "m", "alias": "v3", "version": 1}, "v3"),
    ("mlflow_model_alias", {"tracking_uri": "http://127.0.0.1:1", "name": "m", "alias": "a", "version": 0}, "version"),
    ("mlflow_model_alias", {"tracking_uri": "ftp://x", "name": "m", "alias": "a", "version": 1}, "tracking_uri"),
    ("mlflow_model_version_info", {"tracking_uri": "http://127.0.0.1:1", "name": "m"}, "alias"),
    ("mlflow_user", {"tracking_uri": "http://127.0.0.1:1", "name": "u",
                     "permissions": [{"resource_type": "run", "resource_id": "1"}]}, "resource_type"),
    ("mlflow_model_version_info", {"tracking_uri": "http://127.0.0.1:1", "name": "m", "alias": "a", "version": 1},
     "alias"),
]


@pytest.fixture(scope="module")
def gke_named_kubeconfig(kubeconfig_with_contexts):
    """The local cluster's kubeconfig with one more context, named like a GKE one."""
    return kubeconfig_with_contexts(GKE_CONTEXT)


def namespace_exists(name: str) -> bool:
    return subprocess.run(["kubectl", "get", "namespace", name], capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize("case", range(len(ROLE_CASES)), ids=[f"{c[0]}-{i}" for i, c in enumerate(ROLE_CASES)])
def test_bad_role_variables_fail_clearly_before_any_change(kubeconfig, gke_named_kubeconfig, tally, case):
    role, variables, expected = ROLE_CASES[case]
    if variables.get("mlplatform_context") == GKE_CONTEXT:
        variables = {**variables, "mlplatform_kubeconfig": gke_named_kubeconfig}
    tally["inputs"] += 1
    namespace = f"bad-input-{case}"
    ns_var = {"mlflow_server": "mlflow_server_namespace", "model_serving": "model_serving_namespace"}[role]
    result = run_playbook("tests/integration/reliability/bad_input.yml",
                          {"bad_role": role, ns_var: namespace, **variables}, timeout=300)
    assert result.rc != 0, f"{role} accepted {json.dumps(variables)}"
    assert expected in result.text, f"the failure does not mention {expected!r}:\n{result.output[-2500:]}"
    assert "Traceback" not in result.output
    created = namespace_exists(namespace)
    if created:
        subprocess.run(["kubectl", "delete", "namespace", namespace, "--wait=false"], capture_output=True, check=False)
    assert not created, f"{namespace} was created although the input was rejected"


@pytest.mark.parametrize("role, variable, value", DOMAIN_CASES, ids=[c[1] for c in DOMAIN_CASES])
def test_values_outside_their_domain_are_refused_by_name_before_any_change(kubeconfig, tally, role, variable, value):
    tally["inputs"] += 1
    namespace = f"bad-domain-{role.replace('_', '-')}"
    ns_var = {"mlflow_server": "mlflow_server_namespace", "model_serving": "model_serving_namespace"}[role]
    base = SERVER if role == "mlflow_server" else SERVING
    variables = {ns_var: namespace, **base, variable: value}
    result = run_playbook("tests/integration/reliability/bad_input.yml", {"bad_role": role, **variables}, timeout=300)
    assert result.rc != 0, f"{role} accepted {variable}={value!r}"
    assert f"{variable} " in result.text or f"{variable}[" in result.text, result.output[-2500:]
    assert "Traceback" not in result.output
    created = [ns for ns in sorted({namespace, variables[ns_var]}) if namespace_exists(ns)]
    for ns in created:
        subprocess.run(["kubectl", "delete", "namespace", ns, "--wait=false"], capture_output=True, check=False)
    assert not created, f"{created} created although {variable}={value!r} was refused"


@pytest.mark.parametrize("module, args, expected", MODULE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(MODULE_CASES)])
def test_bad_module_arguments_fail_clearly(kubeconfig, tally, module, args, expected):
    tally["inputs"] += 1
    result = run_playbook("tests/integration/reliability/bad_module.yml", {"bad_module": module, "bad_args": args},
                          timeout=120)
    assert result.rc != 0, f"{module} accepted {json.dumps(args)}"
    assert expected in result.text, f"the failure does not mention {expected!r}:\n{result.output[-2500:]}"
    assert "Traceback" not in result.output


def test_an_object_the_api_server_refuses_stops_the_run_before_any_change(kubeconfig, tally):
    """A node port another Service holds is refused by the API server, not by a preflight rule: the first set to
    write (the foundation) dry-runs the later sets' objects first, and the refusal stops the run with the API's
    reason before anything is written."""
    tally["inputs"] += 1
    holder = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "port-holder", "namespace": "default"},
              "spec": {"type": "NodePort", "selector": {"app": "none"},
                       "ports": [{"port": 80, "targetPort": 80, "nodePort": 30599}]}}
    subprocess.run(["kubectl", "apply", "-f", "-"], input=json.dumps(holder), text=True, capture_output=True,
                   check=True)
    try:
        result = run_playbook("tests/integration/reliability/bad_input.yml", {
            "bad_role": "mlflow_server", "mlflow_server_namespace": "bad-input-node-port", **SERVER,
            "mlflow_server_service_type": "NodePort", "mlflow_server_node_port": 30599}, timeout=300)
    finally:
        subprocess.run(["kubectl", "-n", "default", "delete", "service", "port-holder"], capture_output=True,
                       check=False)
    assert result.rc != 0, "a node port already allocated was accepted"
    assert "30599" in result.text and "applying (dry run) Service bad-input-node-port/mlflow" in result.text, \
        result.output[-2500:]
    assert "(set by mlflow_server_node_port)" in result.text, result.output[-2500:]
    assert "admin-password" not in result.output, "the failure printed the credentials Secret"
    assert not namespace_exists("bad-input-node-port"), "the namespace was created although the run was refused"
