"""One source per fact in the GKE inventories: staging and prod share one layer (inventories/gke/gke.yml) and set
only what differs, and every fact two roles use is written once, so the values the roles get agree. The values are
read as a play gets them (Ansible templates them), with a dummy vault value."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "inventories" / "gke" / "gke.yml"
FACTS = [
    "gcp_project", "mlplatform_gcp_region", "mlplatform_environment",
    "cloudsql_db_instance_name", "cloudsql_db_region", "cloudsql_db_database_name", "cloudsql_db_database_flags",
    "cloudsql_db_iam_service_account", "cloudsql_db_labels", "gcp_resources_labels", "gcp_resources_bucket_name",
    "mlflow_server_namespace", "mlflow_server_cloudsql_instance_connection_name", "mlflow_server_database_user",
    "mlflow_server_database_name", "mlflow_server_database_max_connections", "mlflow_server_service_account_name",
    "mlflow_server_service_account_annotations", "mlflow_server_artifacts_destination", "mlflow_server_image",
    "workload_identity_server_ksa", "workload_identity_namespace", "workload_identity_bucket",
    "model_serving_image", "model_serving_tracking_uri_in_cluster", "model_serving_gateway_certificate_map",
]


def facts(environment: str) -> dict:
    """The values a play on the inventory gets (templated), for FACTS."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
    expression = "{{ {" + ", ".join(f"'{name}': {name}" for name in FACTS) + "} }}"
    proc = subprocess.run(
        ["ansible", "localhost", "-i", str(ROOT / "inventories" / environment), "-m", "ansible.builtin.debug",
         "-a", f"msg={expression}", "-e", "vault_mlflow_admin_password=not-a-secret"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]


class VarsLoader(yaml.SafeLoader):
    """Reads group_vars files, also ansible-vault ones (a `!vault` value is read as None)."""


VarsLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_the_inventory_is_the_shared_layer_plus_what_differs(environment):
    """group_vars/all holds the link to the shared layer, ENV.yml, and maybe the user's vault.yml: no file of it
    sets a key of the shared layer again."""
    folder = ROOT / "inventories" / environment / "group_vars" / "all"
    link = folder / "gke.yml"
    assert link.is_symlink() and link.resolve() == SHARED
    assert (folder / f"{environment}.yml").is_file()
    shared = set(yaml.load(SHARED.read_text(), Loader=VarsLoader))
    for own in folder.iterdir():
        if own.name != "gke.yml":
            both = shared & set(yaml.load(own.read_text(), Loader=VarsLoader) or {})
            assert not both, f"set in both {own.relative_to(ROOT)} and {SHARED.relative_to(ROOT)}: {sorted(both)}"


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_the_roles_agree_on_every_shared_fact(environment):
    got = facts(environment)
    assert got["mlplatform_environment"] == environment
    project, region, instance = got["gcp_project"], got["mlplatform_gcp_region"], got["cloudsql_db_instance_name"]
    # The Cloud SQL instance the cloudsql_db role makes is the one the server's proxy connects to.
    assert got["cloudsql_db_region"] == region
    assert got["mlflow_server_cloudsql_instance_connection_name"] == f"{project}:{region}:{instance}"
    assert got["mlflow_server_database_name"] == got["cloudsql_db_database_name"]
    # The server's connection budget is the instance's max_connections.
    assert int(got["mlflow_server_database_max_connections"]) == int(
        got["cloudsql_db_database_flags"]["max_connections"])
    # One Google service account: the IAM database user, the Workload Identity annotation.
    account = got["cloudsql_db_iam_service_account"]
    assert got["mlflow_server_database_user"] == account.removesuffix(".gserviceaccount.com")
    assert got["mlflow_server_service_account_annotations"]["iam.gke.io/gcp-service-account"] == account
    # One Kubernetes ServiceAccount and namespace: the one Workload Identity binds is the one the server runs as.
    assert got["workload_identity_server_ksa"] == got["mlflow_server_service_account_name"]
    assert got["workload_identity_namespace"] == got["mlflow_server_namespace"]
    # One bucket: the one Workload Identity grants is the one the server writes artifacts to.
    assert got["mlflow_server_artifacts_destination"].startswith(f"gs://{got['workload_identity_bucket']}/")
    assert got["workload_identity_bucket"] == got["gcp_resources_bucket_name"]
    assert got["model_serving_image"] == got["mlflow_server_image"]
    assert got["model_serving_tracking_uri_in_cluster"].startswith(f"http://mlflow.{got['mlflow_server_namespace']}.svc")
    assert got["cloudsql_db_labels"]["env"] == got["gcp_resources_labels"]["env"] == environment
    assert got["model_serving_gateway_certificate_map"] == f"mlplatform-{environment}"


def test_staging_and_prod_differ_where_environments_differ():
    staging, prod = facts("staging"), facts("prod")
    for name in ("cloudsql_db_instance_name", "mlplatform_gcp_region", "cloudsql_db_database_flags",
                 "model_serving_gateway_certificate_map"):
        assert staging[name] != prod[name], name
