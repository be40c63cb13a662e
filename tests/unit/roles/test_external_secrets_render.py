"""mlflow_server with secret_source=external_secrets, and its Cloud SQL maintenance pods: what the templates
render, without a cluster.

The templates are rendered by Ansible's own templating with the role's defaults and vars, as a run renders them.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles" / "mlflow_server"
sys.path.insert(0, str(ROOT / ".cache" / "collections"))

from ansible.parsing.dataloader import DataLoader  # noqa: E402
from ansible.template import Templar, trust_as_template  # noqa: E402

from ansible_collections.mlplatform.mlflow.plugins.filter import platform  # noqa: E402

PASSWORD = "p@ss:w/rd%1"  # what a run of the kubernetes source would put into the URI, URL-encoded
NO_PASSWORD_URI = "postgresql+psycopg2://mlflow@mlflow-db:5432/mlflow?" + platform.CONNECTION_OPTIONS["postgresql"]
FACTS = {
    "mlflow_server_image": "docker.io/mlplatform/mlflow:3.17.2",
    "_mlflow_server_workers": 1,
    "_mlflow_server_artifacts_destination": "/mlflow-artifacts",
    "_mlflow_server_config_checksum": "0" * 64,
    "_mlflow_server_db_port": 5432,
    "_mlflow_server_db_host": "mlflow-db",
    "_mlflow_server_allowed_hosts": ["mlflow"],
    "_mlflow_server_cloudsql_key": "",
    "_mlflow_server_cloudsql_key_checksum": "",
}


def trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [trusted(v) for v in value]
    return value


def render(template: str, **overrides) -> list[dict]:
    variables = {
        **yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
        **yaml.safe_load((ROLE / "vars" / "main.yml").read_text()),
        **FACTS,
        **overrides,
    }
    source = overrides.get("mlflow_server_secret_source", "kubernetes")
    password = "" if source == "external_secrets" or variables["mlflow_server_cloudsql_iam_auth"] else PASSWORD
    # What vars/main.yml assembles with the collection's database_uri filter (not loaded by this bare Templar).
    uri = platform.database_uri("postgresql", "mlflow", password, "mlflow-db", 5432, "mlflow")
    variables["_mlflow_server_db_uri"] = overrides.get("_mlflow_server_db_uri", uri)
    variables.setdefault("_mlflow_server_credentials", {"database-password": PASSWORD, "admin-password": "admin-pw",
                                                        "flask-secret-key": "flask-key"})
    variables["ansible_search_path"] = [str(ROLE)]
    loader = DataLoader()
    loader.set_basedir(str(ROLE))
    templar = Templar(loader=loader, variables=trusted(variables))
    # As the role renders them: the template lookup, which also resolves the includes.
    text = templar.template(trust_as_template(f"{{{{ lookup('mlplatform.mlflow.template', '{template}') }}}}"))
    return [doc for doc in yaml.safe_load_all(text) if doc]


ES = {"mlflow_server_secret_source": "external_secrets", "mlflow_server_external_secrets_store_name": "gcp-sm"}


def external_secret(**overrides) -> dict:
    docs = [d for d in render("foundation.yaml.j2", **{**ES, **overrides}) if d["kind"] in ("ExternalSecret", "Secret")]
    assert len(docs) == 1, "the foundation set holds the ExternalSecret instead of the Secret, never both"
    return docs[0]


def secret_keys_read(docs: list[dict], secret: str) -> set[str]:
    """Every key of `secret` that the objects read (env, volumes, ServiceMonitor style references)."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("secretKeyRef")
            if ref and ref.get("name") == secret:
                found.add(ref["key"])
            vol = node.get("secret")
            if isinstance(vol, dict) and vol.get("secretName") == secret:
                found.update(item["key"] for item in vol.get("items", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(docs)
    return found


def test_external_secret_reads_each_credential_from_secret_manager_through_the_store():
    es = external_secret()
    assert es["apiVersion"] == "external-secrets.io/v1"
    assert es["metadata"]["name"] == "mlflow-credentials"
    spec = es["spec"]
    assert spec["secretStoreRef"] == {"name": "gcp-sm", "kind": "SecretStore"}
    assert spec["refreshInterval"] == "1h"
    assert spec["target"]["name"] == "mlflow-credentials"
    assert spec["target"]["creationPolicy"] == "Owner"
    assert {d["secretKey"]: d["remoteRef"]["key"] for d in spec["data"]} == {
        "database-password": "mlflow-db-password",
        "flask-secret-key": "mlflow-flask-secret-key",
        "admin-password": "mlflow-admin-password",
    }
    template = spec["target"]["template"]
    assert template["mergePolicy"] == "Merge" and template["engineVersion"] == "v2"
    # The operator copies the template's labels onto the Secret: never the set label, or the set would prune it.
    assert "mlplatform.mlflow/object-set" not in template["metadata"]["labels"]
    assert template["metadata"]["labels"]["app.kubernetes.io/component"] == "server"
    assert set(template["data"]) == {"admin-username", "backend-store-uri", "basic_auth.ini"}
    assert template["data"]["backend-store-uri"] == NO_PASSWORD_URI
    assert f"database_uri = {NO_PASSWORD_URI}" in template["data"]["basic_auth.ini"]
    # Literal template data holds no secret and nothing the operator's Go templates would interpret.
    rendered = yaml.safe_dump(es)
    assert PASSWORD not in rendered and "admin-pw" not in rendered and "flask-key" not in rendered
    assert all("{{" not in value for value in template["data"].values())


def test_remote_names_follow_the_server_name_and_the_variables():
    es = external_secret(mlflow_server_name="tracking", mlflow_server_external_secrets_store_kind="ClusterSecretStore",
                         mlflow_server_external_secrets_admin_password_secret="ops-admin",
                         mlflow_server_external_secrets_refresh_interval="15m")
    spec = es["spec"]
    assert es["metadata"]["name"] == spec["target"]["name"] == "tracking-credentials"
    assert spec["secretStoreRef"] == {"name": "gcp-sm", "kind": "ClusterSecretStore"}
    assert spec["refreshInterval"] == "15m"
    assert {d["secretKey"]: d["remoteRef"]["key"] for d in spec["data"]} == {
        "database-password": "tracking-db-password",
        "flask-secret-key": "tracking-flask-secret-key",
        "admin-password": "ops-admin",
    }


@pytest.mark.parametrize(("overrides", "keys", "literal"), [
    ({"mlflow_server_cloudsql_iam_auth": True, "mlflow_server_database_mode": "cloudsql"},
     {"flask-secret-key", "admin-password"}, {"admin-username", "backend-store-uri", "basic_auth.ini"}),
    ({"mlflow_server_auth_enabled": False}, {"database-password", "flask-secret-key"},
     {"admin-username", "backend-store-uri"}),
])
def test_only_the_credentials_in_use_are_read(overrides, keys, literal):
    spec = external_secret(**overrides)["spec"]
    assert {d["secretKey"] for d in spec["data"]} == keys
    assert set(spec["target"]["template"]["data"]) == literal


@pytest.mark.parametrize("auth", [True, False])
def test_the_secret_the_operator_writes_has_every_key_the_server_reads(auth):
    """Same Secret name, and every key the Deployment and the upgrade Job read exists in the synced Secret."""
    overrides = {**ES, "mlflow_server_auth_enabled": auth, "_mlflow_server_upgrade_job": "mlflow-upgrade-x"}
    spec = external_secret(mlflow_server_auth_enabled=auth)["spec"]
    synced = {d["secretKey"] for d in spec["data"]} | set(spec["target"]["template"]["data"])
    readers = render("deployment.yaml.j2", **overrides) + render("job-upgrade.yaml.j2", **overrides)
    read = secret_keys_read(readers, "mlflow-credentials")
    assert read and read <= synced, f"read but never synced: {read - synced}"
    kubernetes = render("secret-credentials.yaml.j2", mlflow_server_auth_enabled=auth)[0]
    assert read <= set(kubernetes["data"]), "the kubernetes source must offer the same keys"


def test_the_password_reaches_the_pods_as_pgpassword_only_with_external_secrets():
    def env(**overrides):
        deployment = render("deployment.yaml.j2", **overrides)[0]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e for e in container["env"]}

    external = env(**ES)
    assert external["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-credentials", "key": "database-password"}
    assert "PGPASSWORD" not in env()  # kubernetes source: the URI carries the password, as before
    iam = env(**ES, mlflow_server_cloudsql_iam_auth=True, mlflow_server_database_mode="cloudsql",
              mlflow_server_cloudsql_instance_connection_name="p:r:i")
    assert "PGPASSWORD" not in iam  # IAM authentication has no password at all


def test_the_kubernetes_source_still_renders_the_secret():
    docs = [d for d in render("foundation.yaml.j2") if d["kind"] in ("ExternalSecret", "Secret")]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [("Secret", "mlflow-credentials")]


def test_with_iam_authentication_the_kubernetes_secret_holds_no_password():
    """credentials.yml settles no database password with IAM auth: the Secret must not need one."""
    iam = {"mlflow_server_cloudsql_iam_auth": True, "mlflow_server_database_mode": "cloudsql",
           "mlflow_server_cloudsql_instance_connection_name": "p:r:i",
           "_mlflow_server_credentials": {"admin-password": "admin-pw", "flask-secret-key": "flask-key"}}
    data = render("secret-credentials.yaml.j2", **iam)[0]["data"]
    assert "database-password" not in data
    assert base64.b64decode(data["backend-store-uri"]).decode() == NO_PASSWORD_URI
    readers = render("deployment.yaml.j2", **iam) + render("job-upgrade.yaml.j2", **iam,
                                                           _mlflow_server_upgrade_job="mlflow-upgrade-x")
    assert secret_keys_read(readers, "mlflow-credentials") <= set(data)


def test_gc_cronjob_reaches_cloud_sql_through_the_proxy():
    """mlflow gc connects to 127.0.0.1 like the server: with Cloud SQL it needs the Auth Proxy beside it."""
    cloudsql = {"mlflow_server_gc_enabled": True, "mlflow_server_database_mode": "cloudsql",
                "mlflow_server_cloudsql_instance_connection_name": "p:europe-west1:mlflow",
                "_mlflow_server_db_host": "127.0.0.1", "_mlflow_server_cloudsql_key": '{"type": "service_account"}'}
    pod = render("cronjob-gc.yaml.j2", **cloudsql)[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    proxy = pod["initContainers"][0]
    assert proxy["name"] == "cloud-sql-proxy" and proxy["restartPolicy"] == "Always"
    assert "--credentials-file=/var/run/secrets/cloudsql/credentials.json" in proxy["args"]
    assert {"name": "cloudsql-credentials"}.items() <= pod["volumes"][-1].items()
    in_cluster = render("cronjob-gc.yaml.j2", mlflow_server_gc_enabled=True)[0]
    assert "initContainers" not in in_cluster["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_gc_cronjob_deletes_proxied_artifacts_through_the_server_as_the_admin():
    """mlflow gc resolves mlflow-artifacts:/ URIs through a tracking URI (it stops without one) and needs the admin's
    credentials when auth is on; without auth it gets none."""
    def gc_env(**variables) -> dict:
        pod = render("cronjob-gc.yaml.j2", mlflow_server_gc_enabled=True, **variables)[0]
        return {e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"]
                for e in pod["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}

    env = gc_env(mlflow_server_auth_enabled=True)
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.mlflow.svc"
    assert env["MLFLOW_TRACKING_USERNAME"] == "admin"
    assert env["MLFLOW_TRACKING_PASSWORD"] == {"name": "mlflow-credentials", "key": "admin-password"}
    assert "MLFLOW_TRACKING_PASSWORD" not in gc_env(mlflow_server_auth_enabled=False)


CLOUDSQL_IAM = {"mlflow_server_database_mode": "cloudsql", "mlflow_server_cloudsql_iam_auth": True,
                "mlflow_server_cloudsql_instance_connection_name": "p:europe-west1:mlflow",
                "mlflow_server_artifacts_destination": "gs://mlp-artifacts/mlflow",
                "_mlflow_server_uses_gcs": True, "_mlflow_server_backup_store": "gs://mlp-artifacts/backups",
                "_mlflow_server_db_host": "127.0.0.1", "_mlflow_server_cloudsql_key": '{"type": "service_account"}'}


def test_scheduled_backup_of_cloud_sql_dumps_through_the_proxy_without_a_password():
    cronjob = render("cronjob-backup.yaml.j2", mlflow_server_backup_schedule="47 2 * * *", **CLOUDSQL_IAM)[0]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    proxy, dump = pod["initContainers"]
    assert (proxy["name"], proxy["restartPolicy"], dump["name"]) == ("cloud-sql-proxy", "Always", "dump")
    assert "--auto-iam-authn" in proxy["args"]
    env = {e["name"]: e.get("value") for e in dump["env"]}
    assert env["PGHOST"] == "127.0.0.1" and "PGPASSWORD" not in env
    assert {"name": "cloudsql-credentials"}.items() <= pod["volumes"][-1].items()
    store = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert store["MLPLATFORM_BACKUP_STORE"] == "gs://mlp-artifacts/backups"
    in_cluster = render("cronjob-backup.yaml.j2", mlflow_server_backup_schedule="47 2 * * *")[0]
    in_cluster_pod = in_cluster["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert [c["name"] for c in in_cluster_pod["initContainers"]] == ["dump"]
    assert "PGPASSWORD" in {e["name"] for e in in_cluster_pod["initContainers"][0]["env"]}


@pytest.mark.parametrize("mode", ["cloudsql", "in_cluster"])
def test_a_restore_job_fetches_the_scheduled_dump_before_its_task(mode):
    """The dump is copied from the backup store into an emptyDir by the server's image and identity; the task (the
    database's image) reads it there, through the proxy with Cloud SQL."""
    variables = CLOUDSQL_IAM if mode == "cloudsql" else {}
    job = {"name": "mlflow-restore-x", "task": "restore", "fetch": "newest", "script": "true"}
    pod = render("job-db-task.yaml.j2", _mlflow_server_job=job, **variables)[0]["spec"]["template"]["spec"]
    names = [c["name"] for c in pod["initContainers"]]
    assert names == (["cloud-sql-proxy", "fetch"] if mode == "cloudsql" else ["fetch"])
    fetch, task = pod["initContainers"][-1], pod["containers"][0]
    assert fetch["command"] == ["python", "/scripts/backups.py", "fetch", "newest", "/fetched"]
    assert fetch["image"] == "docker.io/mlplatform/mlflow:3.17.2" != task["image"]
    assert pod["serviceAccountName"] == "mlflow-server"
    assert {"name": "fetched", "mountPath": "/fetched", "readOnly": True} in task["volumeMounts"]
    # The folder store is the backups volume (artifacts on a volume): the fetch reads it there.
    volumes = {v["name"] for v in pod["volumes"]}
    assert ("backups" in volumes) == (mode == "in_cluster")
    env = {e["name"] for e in task["env"]}
    assert ("PGPASSWORD" in env) == (mode == "in_cluster")
