"""gcp_resources, cloudsql_db and workload_identity run by ansible-playbook against the fake of Google's APIs.

The fake validates every request against Google's discovery documents (a violation fails the test), keeps
state, and logs every write. Authentication is real: a key generated at test time, a signed JWT exchanged at
the fake's token endpoint, and only tokens the fake issued are accepted. Nothing here talks to Google.
"""

from __future__ import annotations

import base64

from gcp_fake.server import FakeGoogle

STAGING = "group_vars_example.yml"
SERVER = "mlflow-server@mlp-staging.iam.gserviceaccount.com"
SERVING = "mlflow-serving@mlp-staging.iam.gserviceaccount.com"
BUCKET = "mlp-staging-mlflow-artifacts"


def members(fake: FakeGoogle, key: str, role: str) -> list[str]:
    for binding in (fake.state.policies.get(key) or {}).get("bindings") or []:
        if binding["role"] == role:
            return binding["members"]
    return []


def assert_staging_converged(fake: FakeGoogle) -> None:
    st = fake.state
    assert {svc for (project, svc), state in st.services.items() if state == "ENABLED"} >= {
        "sqladmin.googleapis.com",
        "iam.googleapis.com",
    }
    bucket = st.buckets[BUCKET]
    assert bucket["location"] == "EUROPE-WEST1" and bucket["versioning"] == {"enabled": True}
    assert bucket["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"] is True
    assert bucket["iamConfiguration"]["publicAccessPrevention"] == "enforced"
    assert len(bucket["lifecycle"]["rule"]) == 3 and bucket["labels"]["env"] == "staging"
    assert "projects/mlp-staging/locations/europe-west1/repositories/mlflow" in st.repositories
    assert {SERVER, SERVING} <= set(st.service_accounts)
    for secret in ("mlflow-db-password", "mlflow-flask-secret-key", "mlflow-admin-password"):
        versions = st.versions[f"projects/123456789012/secrets/{secret}"]
        assert len(versions) == 1 and len(versions[0]["data"]) == 32
    inst = st.instances[("mlp-staging", "mlflow-staging")]
    settings = inst["settings"]
    assert inst["databaseVersion"] == "POSTGRES_16" and settings["edition"] == "ENTERPRISE"
    assert settings["ipConfiguration"] == {
        "ipv4Enabled": False,
        "sslMode": "ENCRYPTED_ONLY",
        "privateNetwork": "projects/mlp-staging/global/networks/default",
    }
    backup = settings["backupConfiguration"]
    assert backup["enabled"] and backup["pointInTimeRecoveryEnabled"] and backup["startTime"] == "03:00"
    assert settings["maintenanceWindow"] == {"day": 7, "hour": 3} and settings["deletionProtectionEnabled"] is True
    assert ("mlp-staging", "mlflow-staging", "mlflow") in st.databases
    password = st.versions["projects/123456789012/secrets/mlflow-db-password"][0]["data"].decode()
    assert st.passwords[("mlp-staging", "mlflow-staging", "mlflow", "")] == password, (
        "the user's password is the secret's"
    )
    assert members(fake, f"sa/{SERVER}", "roles/iam.workloadIdentityUser") == [
        "serviceAccount:mlp-staging.svc.id.goog[mlflow/mlflow-server]"
    ]
    assert members(fake, f"sa/{SERVING}", "roles/iam.workloadIdentityUser") == [
        "serviceAccount:mlp-staging.svc.id.goog[mlflow/mlflow-serving]"
    ]
    assert members(fake, f"bucket/{BUCKET}", "roles/storage.objectUser") == [f"serviceAccount:{SERVER}"]
    assert members(fake, f"bucket/{BUCKET}", "roles/storage.objectViewer") == [f"serviceAccount:{SERVING}"]
    assert members(fake, f"bucket/{BUCKET}", "roles/storage.legacyBucketOwner"), "convenience bindings kept"
    assert members(fake, "project/mlp-staging", "roles/cloudsql.client") == [f"serviceAccount:{SERVER}"]
    project_roles = {b["role"] for b in fake.state.policies["project/mlp-staging"]["bindings"]}
    assert not any(r.startswith("roles/storage") for r in project_roles), "no project-wide storage role"


def test_staging_check_converge_idempotent_check(playbook, fake):
    planned = playbook(STAGING, check=True)
    assert planned.rc == 0, planned.stdout
    assert planned.recap["changed"] > 0 and planned.writes == 0, "check mode from empty reports changes, writes nothing"

    first = playbook(STAGING)
    assert first.rc == 0, first.stdout
    assert first.recap["changed"] >= 9
    assert_staging_converged(fake)
    assert {e.principal for e in fake.log} == {"deployer@mlp-staging.iam.gserviceaccount.com"}, "the key's identity"

    second = playbook(STAGING)
    assert second.rc == 0 and second.recap["changed"] == 0 and second.writes == 0, second.stdout

    check = playbook(STAGING, check=True)
    assert check.rc == 0 and check.recap["changed"] == 0 and check.writes == 0, check.stdout


def test_prod_like_iam_database_auth(playbook, fake):
    first = playbook("vars_prod_like.yml")
    assert first.rc == 0, first.stdout
    st = fake.state
    inst = st.instances[("mlp-prod", "mlflow-prod")]
    assert inst["settings"]["availabilityType"] == "REGIONAL"
    assert inst["settings"]["databaseFlags"] == [{"name": "cloudsql.iam_authentication", "value": "on"}]
    assert inst["settings"]["ipConfiguration"]["allocatedIpRange"] == "google-managed-services-prod-vpc"
    users = st.users[("mlp-prod", "mlflow-prod")]
    assert {"name": "mlflow-server@mlp-prod.iam", "type": "CLOUD_IAM_SERVICE_ACCOUNT",
            "databaseRoles": ["cloudsqlsuperuser"]}.items() <= users[-1].items()
    assert "projects/210987654321/secrets/mlflow-db-password" not in st.secrets, "no password secret with IAM auth"
    assert members(fake, "project/mlp-prod", "roles/cloudsql.instanceUser") == [
        "serviceAccount:mlflow-server@mlp-prod.iam.gserviceaccount.com"
    ]
    assert st.buckets["mlp-prod-mlflow-artifacts"]["location"] == "EU"
    repo = st.repositories["projects/mlp-prod/locations/europe-west4/repositories/mlflow"]
    assert repo["dockerConfig"]["immutableTags"] is True
    second = playbook("vars_prod_like.yml")
    assert second.rc == 0 and second.recap["changed"] == 0 and second.writes == 0, second.stdout


def test_existing_mysql_instance_only_database_and_user(playbook, fake):
    fake.state.lro_polls = 0
    from gcp_fake import services

    status, _body = services.sql_instance_insert(
        fake.state,
        services.Req(
            "sql.instances.insert", "POST", {"project": "mlp-staging"}, {},
            {"name": "shared-mysql", "region": "europe-west1", "databaseVersion": "MYSQL_8_0",
             "settings": {"tier": "db-custom-4-15360",
                          "databaseFlags": [{"name": "log_bin_trust_function_creators", "value": "on"}]}},
        ),
    )  # fmt: skip
    assert status == 200
    fake.state.lro_polls = 1
    first = playbook("vars_existing_mysql.yml")
    assert first.rc == 0, first.stdout
    instance_writes = [e for e in fake.writes if e.method_id.startswith("sql.instances")]
    assert instance_writes == [], "existing-instance mode never touches the instance"
    assert ("mlp-staging", "shared-mysql", "mlflow_team_a") in fake.state.databases
    user = next(u for u in fake.state.users[("mlp-staging", "shared-mysql")] if u["name"] == "mlflow_team_a")
    assert user["host"] == "%"
    second = playbook("vars_existing_mysql.yml")
    assert second.rc == 0 and second.recap["changed"] == 0 and second.writes == 0


def test_transient_errors_conflicts_and_new_accounts_are_handled(playbook, fake):
    """429, 503 and 500 answers, etag races on three kinds of IAM policy, and new accounts IAM cannot see yet."""
    faults = [
        fake.inject("serviceusage.services.get", 429, times=2),
        fake.inject("storage.buckets.insert", 503, times=1),
        fake.inject("sql.instances.insert", 503, times=1),
        fake.inject("secretmanager.projects.secrets.addVersion", 500, times=1),
        fake.inject_concurrent_iam_write("storage.buckets.setIamPolicy", f"bucket/{BUCKET}", times=1),
        fake.inject_concurrent_iam_write("cloudresourcemanager.projects.setIamPolicy", "project/mlp-staging", times=1),
        fake.inject_concurrent_iam_write("iam.projects.serviceAccounts.setIamPolicy", f"sa/{SERVER}", times=1),
    ]
    fake.state.sa_get_delay = 1.5  # a new account answers 404 to GET for 1.5 s ...
    fake.state.sa_policy_delay = 3600.0  # ... and "does not exist" as a policy member, until released below
    refusals: list[str] = []
    check_members = fake.state.check_members

    def refuse_twice_then_release(policy: dict):
        answer = check_members(policy)
        if answer is not None and "does not exist" in str(answer[1]):
            refusals.append(str(answer[1]))
            if len(refusals) >= 2:
                fake.state.sa_policy_delay = 0.0
        return answer

    fake.state.check_members = refuse_twice_then_release
    run = playbook(STAGING)
    assert run.rc == 0, run.stdout
    assert all(f.hits == f.times for f in faults), [(f.method_id, f.hits) for f in faults]
    assert len(refusals) >= 2, "the new-account refusals were exercised"
    statuses = [e.status for e in fake.calls("storage.buckets.setIamPolicy")]
    assert 412 in statuses and statuses[-1] == 200
    assert 409 in [e.status for e in fake.calls("cloudresourcemanager.projects.setIamPolicy")]
    assert 409 in [e.status for e in fake.calls("iam.projects.serviceAccounts.setIamPolicy")]
    assert [e.status for e in fake.calls("iam.projects.serviceAccounts.get")].count(404) >= 2
    assert members(fake, f"bucket/{BUCKET}", "roles/viewer") == ["user:other-writer@example.com"], (
        "other writers' bindings survive"
    )
    assert members(fake, "project/mlp-staging", "roles/viewer") == ["user:other-writer@example.com"]
    assert_staging_converged(fake)
    again = playbook(STAGING)
    assert again.rc == 0 and again.recap["changed"] == 0 and again.writes == 0, again.stdout


def test_409_on_create_of_existing_resources_is_adopted(playbook, fake):
    assert playbook(STAGING).rc == 0
    # Every read says "missing" once (a lagging read, or a resource created meanwhile): the creates answer 409.
    for method in (
        "storage.buckets.get",
        "artifactregistry.projects.locations.repositories.get",
        "iam.projects.serviceAccounts.get",
        "secretmanager.projects.secrets.get",
        "sql.instances.get",
        "sql.databases.get",
    ):
        fake.inject(method, 404, times=1)
    run = playbook(STAGING)
    assert run.rc == 0 and run.recap["changed"] == 0, run.stdout
    conflicts = sorted({e.method_id for e in fake.writes if e.status == 409})
    assert conflicts == [
        "artifactregistry.projects.locations.repositories.create",
        "iam.projects.serviceAccounts.create",
        "secretmanager.projects.secrets.create",
        "sql.databases.insert",
        "sql.instances.insert",
        "storage.buckets.insert",
    ]
    assert all(len(v) == 1 for v in fake.state.versions.values()), "no secret was rotated"


def test_permission_denied_names_permission_and_resource(playbook, fake):
    fake.inject("iam.projects.serviceAccounts.create", 403, permission="iam.serviceAccounts.create")
    run = playbook(STAGING)
    assert run.rc != 0 and run.recap["failed"] == 1
    assert (
        "missing permission iam.serviceAccounts.create on service account "
        "mlflow-server@mlp-staging.iam.gserviceaccount.com" in run.stdout
    )
    assert "HTTP 403 PERMISSION_DENIED" in run.stdout


def test_preflight_rejects_inconsistent_variables_before_any_request(playbook, fake):
    run = playbook(STAGING, extra={"cloudsql_db_engine": "mysql"})
    assert run.rc != 0 and "cloudsql_db_database_version must match cloudsql_db_engine" in run.stdout
    assert not any(e.method_id.startswith("sql.") for e in fake.log)
    bad_type = playbook(STAGING, extra={"gcp_resources_secret_length": "long"})
    assert bad_type.rc != 0 and "gcp_resources_secret_length" in bad_type.stdout
    wide = playbook(STAGING, extra={"workload_identity_server_project_roles": ["roles/storage.admin"]})
    assert wide.rc != 0 and "least privilege" in wide.stdout


def test_pre_migration_backup_once_per_description(playbook, fake):
    assert playbook(STAGING).rc == 0
    extra = {"cloudsql_db_backup_description": "before-mlflow-3.17.2"}
    first = playbook(STAGING, name="backup.yml", extra=extra)
    assert first.rc == 0 and first.recap["changed"] == 1, first.stdout
    second = playbook(STAGING, name="backup.yml", extra=extra)
    assert second.rc == 0 and second.recap["changed"] == 0 and second.writes == 0
    runs = fake.state.backup_runs[("mlp-staging", "mlflow-staging")]
    assert [(r["description"], r["status"]) for r in runs] == [("before-mlflow-3.17.2", "SUCCESSFUL")]


def test_secret_values_never_reach_the_output(playbook, fake):
    run = playbook(STAGING, check=False)
    assert run.rc == 0
    for versions in fake.state.versions.values():
        value = versions[0]["data"].decode()
        assert value not in run.stdout and value not in run.stderr
        assert base64.b64encode(versions[0]["data"]).decode() not in run.stdout
