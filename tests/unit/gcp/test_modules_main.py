"""Module tests: drive each gcp_* module's main() against the discovery-checked fake, assert on exit/fail JSON."""

from __future__ import annotations

import time

import pytest

from ansible_collections.mlplatform.mlflow.plugins.modules import (
    gcp_artifact_registry_repository,
    gcp_iam_member,
    gcp_project_service,
    gcp_secret,
    gcp_service_account,
    gcp_sql_backup,
    gcp_sql_database,
    gcp_sql_instance,
    gcp_sql_user,
    gcp_storage_bucket,
)

SA = "mlflow-server@mlp-staging.iam.gserviceaccount.com"
BUCKET = {
    "name": "mlp-staging-mlflow-artifacts",
    "location": "europe-west1",
    "versioning": True,
    "lifecycle_rules": [{"action": {"type": "Delete"}, "condition": {"daysSinceNoncurrentTime": 30}}],
    "labels": {"app": "mlflow"},
}
PG = {
    "name": "mlflow",
    "region": "europe-west1",
    "database_version": "POSTGRES_16",
    "tier": "db-custom-1-3840",
    "private_network": "projects/mlp-staging/global/networks/default",
    "backup_start_time": "03:00",
    "point_in_time_recovery": True,
    "maintenance_window": {"day": 7, "hour": 3},
    "database_flags": {"cloudsql.iam_authentication": "on"},
}


REAL_SLEEP = time.sleep


def no_sleep_until(seconds: float) -> None:
    """The fake's eventual consistency runs on real time: let the client's backoff sleep for real, briefly."""
    from ansible_collections.mlplatform.mlflow.plugins.module_utils import google

    deadline = time.monotonic() + seconds
    google.time.sleep = lambda _s: REAL_SLEEP(0.05) if time.monotonic() < deadline + 1 else None


def converge(run_module, fake, module, args) -> tuple[dict, dict, dict]:
    """check from empty, apply, apply again, check on converged; assert the four-step contract."""
    writes = len(fake.writes)
    planned = run_module(module, args, check=True)
    assert planned["changed"] is True, planned
    assert len(fake.writes) == writes, "check mode must not write"
    first = run_module(module, args)
    assert first["changed"] is True, first
    second = run_module(module, args)
    assert second["changed"] is False, second
    writes = len(fake.writes)
    again = run_module(module, args, check=True)
    assert again["changed"] is False and len(fake.writes) == writes
    return planned, first, second


# ------------------------------------------------------------------------------------- project service
def test_project_service_enables_and_is_idempotent(run_module, fake_google):
    args = {"services": ["sqladmin.googleapis.com", "secretmanager.googleapis.com"]}
    planned, first = converge(run_module, fake_google, gcp_project_service, args)[:2]
    assert planned["enabled"] == args["services"]
    assert first["diff"]["after"] == dict.fromkeys(args["services"], "ENABLED")
    assert [op["status"] for op in first["operations"]] == ["DONE", "DONE"]


def test_project_service_rejects_bad_name_before_any_request(run_module, fake_google):
    out = run_module(gcp_project_service, {"services": ["sqladmin"]})
    assert out["failed"] and "option services" in out["msg"]
    assert fake_google.log == []


# --------------------------------------------------------------------------------------------- bucket
def test_bucket_converges(run_module, fake_google):
    first = converge(run_module, fake_google, gcp_storage_bucket, BUCKET)[1]
    bucket = fake_google.state.buckets[BUCKET["name"]]
    assert bucket["location"] == "EUROPE-WEST1"
    assert bucket["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"] is True
    assert bucket["iamConfiguration"]["publicAccessPrevention"] == "enforced"
    assert bucket["versioning"] == {"enabled": True}
    assert first["diff"]["before"] == {}


def test_bucket_patches_only_drift_and_keeps_foreign_labels(run_module, fake_google):
    run_module(gcp_storage_bucket, BUCKET)
    fake_google.state.buckets[BUCKET["name"]]["labels"]["team"] = "data"
    fake_google.state.buckets[BUCKET["name"]]["versioning"] = {"enabled": False}
    out = run_module(gcp_storage_bucket, BUCKET)
    assert out["changed"]
    patch = fake_google.calls("storage.buckets.patch")[-1]
    assert patch.body == {"versioning": {"enabled": True}}
    assert fake_google.state.buckets[BUCKET["name"]]["labels"] == {"app": "mlflow", "team": "data"}
    purge = run_module(gcp_storage_bucket, {**BUCKET, "purge_labels": True})
    assert purge["changed"] and fake_google.calls("storage.buckets.patch")[-1].body == {
        "labels": {"app": "mlflow", "team": None}
    }
    assert fake_google.state.buckets[BUCKET["name"]]["labels"] == {"app": "mlflow"}


def test_bucket_lifecycle_purge_flag(run_module, fake_google):
    run_module(gcp_storage_bucket, BUCKET)
    extra = {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 7}}
    out = run_module(gcp_storage_bucket, {**BUCKET, "lifecycle_rules": [extra]})
    assert out["changed"] and len(fake_google.state.buckets[BUCKET["name"]]["lifecycle"]["rule"]) == 2
    out = run_module(gcp_storage_bucket, {**BUCKET, "lifecycle_rules": [extra], "purge_lifecycle_rules": True})
    assert out["changed"] and fake_google.state.buckets[BUCKET["name"]]["lifecycle"]["rule"] == [extra]


def test_bucket_location_is_immutable(run_module, fake_google):
    run_module(gcp_storage_bucket, BUCKET)
    out = run_module(gcp_storage_bucket, {**BUCKET, "location": "US"})
    assert out["failed"] and "location cannot change" in out["msg"]


def test_bucket_name_taken_by_another_project(run_module, fake_google):
    fake_google.state.foreign_buckets.add("someone-elses-bucket")
    out = run_module(gcp_storage_bucket, {**BUCKET, "name": "someone-elses-bucket"})
    assert out["failed"] and "may belong to another project" in out["msg"]
    assert out["permission"] == "storage.buckets.get"


@pytest.mark.parametrize(
    "name", ["UPPER-case", "ab", "goog-artifacts", "my-google-bucket", "-leading", "192.168.1.1", "a" * 64, "has space"]
)
def test_bucket_invalid_names_fail_before_any_request(run_module, fake_google, name):
    out = run_module(gcp_storage_bucket, {**BUCKET, "name": name})
    assert out["failed"] and out["msg"].startswith("option name:")
    assert fake_google.log == []


def test_bucket_bad_lifecycle_rule(run_module, fake_google):
    out = run_module(
        gcp_storage_bucket, {**BUCKET, "lifecycle_rules": [{"action": {"type": "Remove"}, "condition": {"age": 1}}]}
    )
    assert out["failed"] and out["msg"].startswith("option lifecycle_rules:")
    assert fake_google.log == []


def test_bucket_absent(run_module, fake_google):
    run_module(gcp_storage_bucket, BUCKET)
    assert run_module(gcp_storage_bucket, {"name": BUCKET["name"], "state": "absent"})["changed"]
    assert BUCKET["name"] not in fake_google.state.buckets
    assert not run_module(gcp_storage_bucket, {"name": BUCKET["name"], "state": "absent"})["changed"]


# ------------------------------------------------------------------------------------ artifact registry
def test_repository_converges_and_updates_labels(run_module, fake_google):
    args = {"name": "mlflow", "location": "europe-west1", "description": "MLflow images", "labels": {"app": "mlflow"}}
    first = converge(run_module, fake_google, gcp_artifact_registry_repository, args)[1]
    assert first["registry"] == "europe-west1-docker.pkg.dev/mlp-staging/mlflow"
    assert first["repository"]["format"] == "DOCKER"
    out = run_module(gcp_artifact_registry_repository, {**args, "immutable_tags": True, "labels": {"env": "staging"}})
    assert out["changed"]
    assert fake_google.calls("artifactregistry.projects.locations.repositories.patch")[-1].query["updateMask"] == [
        "labels,dockerConfig.immutableTags"
    ]
    repo = fake_google.state.repositories["projects/mlp-staging/locations/europe-west1/repositories/mlflow"]
    assert repo["labels"] == {"app": "mlflow", "env": "staging"} and repo["dockerConfig"]["immutableTags"] is True


def test_repository_format_is_immutable(run_module, fake_google):
    run_module(gcp_artifact_registry_repository, {"name": "mlflow", "location": "europe-west1"})
    out = run_module(
        gcp_artifact_registry_repository, {"name": "mlflow", "location": "europe-west1", "format": "PYTHON"}
    )
    assert out["failed"] and "format cannot change" in out["msg"]


def test_repository_create_conflict_409_is_adopted(run_module, fake_google):
    """The GET did not see the repository, the create answers 409: the existing one is adopted and updated."""
    args = {"name": "mlflow", "location": "europe-west1", "labels": {"app": "mlflow"}}
    run_module(gcp_artifact_registry_repository, {"name": "mlflow", "location": "europe-west1"})
    fake_google.inject("artifactregistry.projects.locations.repositories.get", 404, times=1)
    out = run_module(gcp_artifact_registry_repository, args)
    assert out["changed"] and out["repository"]["labels"] == {"app": "mlflow"}
    assert [c.status for c in fake_google.calls("artifactregistry.projects.locations.repositories.create")] == [
        200,
        409,
    ]


def test_create_conflict_that_cannot_be_read_back_fails(run_module, fake_google):
    fake_google.inject(
        "artifactregistry.projects.locations.repositories.create", 409, message="the repository already exists"
    )
    out = run_module(gcp_artifact_registry_repository, {"name": "mlflow", "location": "europe-west1"})
    assert out["failed"] and out["status"] == 409 and "cannot be read back" in out["msg"]


@pytest.mark.parametrize(
    ("module", "args", "get_method"),
    [
        (gcp_secret, {"name": "mlflow-db-password"}, "secretmanager.projects.secrets.get"),
        (gcp_sql_instance, PG, "sql.instances.get"),
    ],
)
def test_create_conflict_409_adopts_existing(run_module, fake_google, module, args, get_method):
    run_module(module, args)
    writes = len(fake_google.writes)
    fake_google.inject(get_method, 404, times=1)
    out = run_module(module, args)
    assert out["changed"] is False, out
    assert [w.status for w in fake_google.writes[writes:]] == [409]


def test_sql_database_and_user_409_adopt(run_module, fake_google):
    run_module(gcp_sql_instance, PG)
    run_module(gcp_sql_database, {"instance": "mlflow", "name": "mlflow"})
    fake_google.inject("sql.databases.get", 404, times=1)
    assert run_module(gcp_sql_database, {"instance": "mlflow", "name": "mlflow"})["changed"] is False
    users = fake_google.state.users[("mlp-staging", "mlflow")]
    someone = {
        "kind": "sql#user",
        "name": "mlflow",
        "instance": "mlflow",
        "project": "mlp-staging",
        "etag": "x",
        "type": "BUILT_IN",
    }
    fake_google.inject("sql.users.insert", 0, action=lambda: users.append(someone))  # created between list and insert
    out = run_module(gcp_sql_user, {"instance": "mlflow", "name": "mlflow", "password": "pw-first"})
    assert out["changed"] is False, out
    assert [c.status for c in fake_google.calls("sql.users.insert")] == [409] and not fake_google.calls(
        "sql.users.update"
    )


# ------------------------------------------------------------------------------------- service account
def test_service_account_converges(run_module, fake_google):
    args = {"name": "mlflow-server", "display_name": "MLflow server"}
    first = converge(run_module, fake_google, gcp_service_account, args)[1]
    assert first["email"] == SA
    out = run_module(gcp_service_account, {**args, "description": "runs the tracking server"})
    assert out["changed"] and out["diff"]["after"]["description"] == "runs the tracking server"
    assert fake_google.calls("iam.projects.serviceAccounts.patch")[-1].body["updateMask"] == "description"


def test_service_account_waits_until_visible(run_module, fake_google):
    fake_google.state.sa_get_delay = 0.3
    no_sleep_until(0.4)
    out = run_module(gcp_service_account, {"name": "mlflow-server"})
    assert out["changed"] and out["email"] == SA
    gets = fake_google.calls("iam.projects.serviceAccounts.get")
    assert gets[0].status == 404 and gets[1].status == 404, "not visible right after the create"
    assert gets[-1].status == 200 and gets[-2].status == 200, "two successful reads in a row end the wait"


def test_service_account_409_on_create_is_not_a_failure(run_module, fake_google):
    """The GET does not see the account yet, the create answers 409: the account is adopted, not an error."""
    run_module(gcp_service_account, {"name": "mlflow-server"})
    fake_google.inject("iam.projects.serviceAccounts.get", 404, times=1)
    out = run_module(gcp_service_account, {"name": "mlflow-server"})
    assert out["changed"] is False and out["email"] == SA
    assert [c.status for c in fake_google.calls("iam.projects.serviceAccounts.create")] == [200, 409]


@pytest.mark.parametrize(
    "name",
    [
        "short",
        "Upper-case-name",
        "ends-with-",
        "1starts-with-digit",
        "x" * 31,
        "other@elsewhere.iam.gserviceaccount.com",
    ],
)
def test_service_account_invalid_ids(run_module, fake_google, name):
    out = run_module(gcp_service_account, {"name": name})
    assert out["failed"] and out["msg"].startswith("option name:")
    assert fake_google.log == []


def test_permission_denied_names_permission_and_resource(run_module, fake_google):
    fake_google.inject("iam.projects.serviceAccounts.create", 403, permission="iam.serviceAccounts.create")
    out = run_module(gcp_service_account, {"name": "mlflow-server"})
    assert out["failed"] and out["status"] == 403 and out["permission"] == "iam.serviceAccounts.create"
    assert "missing permission iam.serviceAccounts.create" in out["msg"]
    assert f"service account {SA}" in out["msg"]


# --------------------------------------------------------------------------------------------- secrets
def test_secret_generated_once_never_returned(run_module, fake_google):
    first = converge(
        run_module, fake_google, gcp_secret, {"name": "mlflow-db-password", "labels": {"app": "mlflow"}}
    )[1]
    key = "projects/123456789012/secrets/mlflow-db-password"
    assert first["secret"] == key and first["version"] == f"{key}/versions/1"
    value = fake_google.state.versions[key][0]["data"].decode()
    assert len(value) == 32
    for result in (first,):
        assert value not in str(result)
    assert len(fake_google.state.versions[key]) == 1


def test_secret_value_is_no_log_and_update_always(run_module, fake_google):
    args = {"name": "admin-password", "value": "s3cret-Value!", "update_value": "always"}
    first = run_module(gcp_secret, args)
    assert first["changed"] and "s3cret-Value!" not in str(first)
    assert run_module(gcp_secret, args)["changed"] is False
    changed = run_module(gcp_secret, {**args, "value": "another-Value"})
    assert changed["changed"] and changed["version"].endswith("/versions/2")
    on_create = run_module(gcp_secret, {"name": "admin-password", "value": "third"})
    assert on_create["changed"] is False


def test_secret_update_always_needs_value(run_module, fake_google):
    out = run_module(gcp_secret, {"name": "x-secret", "update_value": "always"})
    assert out["failed"] and "needs option value" in out["msg"] and fake_google.log == []


def test_secret_invalid_id(run_module, fake_google):
    out = run_module(gcp_secret, {"name": "bad/secret"})
    assert out["failed"] and out["msg"].startswith("option name:") and fake_google.log == []


# ------------------------------------------------------------------------------------------ iam member
@pytest.mark.parametrize(
    ("resource_type", "resource", "role", "member"),
    [
        ("project", "mlp-staging", "roles/cloudsql.client", f"serviceAccount:{SA}"),
        ("bucket", "mlp-staging-mlflow-artifacts", "roles/storage.objectUser", f"serviceAccount:{SA}"),
        (
            "service_account",
            SA,
            "roles/iam.workloadIdentityUser",
            "serviceAccount:mlp-staging.svc.id.goog[mlflow/mlflow-server]",
        ),
        ("secret", "mlflow-db-password", "roles/secretmanager.secretAccessor", f"serviceAccount:{SA}"),
    ],
)
def test_iam_member_each_resource_type(run_module, fake_google, resource_type, resource, role, member):
    run_module(gcp_service_account, {"name": "mlflow-server"})
    run_module(gcp_storage_bucket, BUCKET)
    run_module(gcp_secret, {"name": "mlflow-db-password"})
    args = {"resource_type": resource_type, "resource": resource, "role": role, "member": member}
    first = converge(run_module, fake_google, gcp_iam_member, args)[1]
    assert member in first["members"] and first["diff"]["before"]["members"] == []
    removed = run_module(gcp_iam_member, {**args, "state": "absent"})
    assert removed["changed"] and member not in removed["members"]
    assert run_module(gcp_iam_member, {**args, "state": "absent"})["changed"] is False


def test_iam_member_bucket_keeps_convenience_members(run_module, fake_google):
    run_module(gcp_storage_bucket, BUCKET)
    run_module(gcp_service_account, {"name": "mlflow-server"})
    run_module(
        gcp_iam_member,
        {
            "resource_type": "bucket",
            "resource": BUCKET["name"],
            "role": "roles/storage.objectViewer",
            "member": f"serviceAccount:{SA}",
        },
    )
    policy = fake_google.state.policies[f"bucket/{BUCKET['name']}"]
    roles = {b["role"]: b["members"] for b in policy["bindings"]}
    assert roles["roles/storage.legacyBucketOwner"] == ["projectEditor:mlp-staging", "projectOwner:mlp-staging"]


def test_iam_member_concurrent_writer_412_on_bucket(run_module, fake_google):
    run_module(gcp_storage_bucket, BUCKET)
    run_module(gcp_service_account, {"name": "mlflow-server"})
    fake_google.inject_concurrent_iam_write("storage.buckets.setIamPolicy", f"bucket/{BUCKET['name']}")
    out = run_module(
        gcp_iam_member,
        {
            "resource_type": "bucket",
            "resource": BUCKET["name"],
            "role": "roles/storage.objectViewer",
            "member": f"serviceAccount:{SA}",
        },
    )
    assert out["changed"] and any("etag conflict (HTTP 412)" in r for r in out["retries"])
    sets = fake_google.calls("storage.buckets.setIamPolicy")
    assert [s.status for s in sets] == [412, 200]
    members = {b["role"]: b["members"] for b in fake_google.state.policies[f"bucket/{BUCKET['name']}"]["bindings"]}
    assert members["roles/viewer"] == ["user:other-writer@example.com"], "the other writer's binding must survive"


def test_iam_member_concurrent_writer_409_on_project(run_module, fake_google):
    run_module(gcp_service_account, {"name": "mlflow-server"})
    fake_google.inject_concurrent_iam_write(
        "cloudresourcemanager.projects.setIamPolicy", "project/mlp-staging", times=2
    )
    out = run_module(
        gcp_iam_member,
        {
            "resource_type": "project",
            "resource": "mlp-staging",
            "role": "roles/cloudsql.client",
            "member": f"serviceAccount:{SA}",
        },
    )
    assert out["changed"]
    assert [s.status for s in fake_google.calls("cloudresourcemanager.projects.setIamPolicy")] == [409, 409, 200]
    set_body = fake_google.calls("cloudresourcemanager.projects.setIamPolicy")[-1].body
    assert set_body["updateMask"] == "bindings,etag" and set_body["policy"]["etag"]


def test_iam_member_new_sa_not_yet_visible(run_module, fake_google, no_sleep):
    run_module(gcp_service_account, {"name": "mlflow-server"})
    fake_google.state.sa_created[SA] = time.monotonic()
    fake_google.state.sa_policy_delay = 0.5
    no_sleep.clear()
    no_sleep_until(0.6)
    out = run_module(
        gcp_iam_member,
        {
            "resource_type": "project",
            "resource": "mlp-staging",
            "role": "roles/cloudsql.client",
            "member": f"serviceAccount:{SA}",
        },
    )
    assert out["changed"] and any("not visible yet (HTTP 400)" in r for r in out["retries"])
    statuses = [s.status for s in fake_google.calls("cloudresourcemanager.projects.setIamPolicy")]
    assert statuses[0] == 400 and statuses[-1] == 200


def test_iam_member_gives_up_on_missing_account(run_module, fake_google):
    out = run_module(
        gcp_iam_member,
        {
            "resource_type": "project",
            "resource": "mlp-staging",
            "role": "roles/cloudsql.client",
            "member": "serviceAccount:nobody@mlp-staging.iam.gserviceaccount.com",
            "consistency_timeout": 0,
        },
    )
    assert (
        out["failed"]
        and out["status"] == 400
        and "nobody@mlp-staging.iam.gserviceaccount.com does not exist" in out["msg"]
    )


def test_iam_member_workload_pool_missing(run_module, fake_google):
    run_module(gcp_service_account, {"name": "mlflow-server"})
    fake_google.state.workload_pools.clear()
    out = run_module(
        gcp_iam_member,
        {
            "resource_type": "service_account",
            "resource": SA,
            "role": "roles/iam.workloadIdentityUser",
            "member": "serviceAccount:mlp-staging.svc.id.goog[mlflow/mlflow-server]",
        },
    )
    assert out["failed"] and "Identity Pool does not exist" in out["msg"]
    assert len(fake_google.calls("iam.projects.serviceAccounts.setIamPolicy")) == 1, "a missing pool is not retried"


@pytest.mark.parametrize(
    ("option", "args"),
    [
        ("role", {"role": "storage.objectViewer"}),
        ("role", {"role": "roles/storage objectViewer"}),
        ("member", {"member": "mlflow-server@mlp-staging.iam.gserviceaccount.com"}),
        ("member", {"member": "serviceAccount:not-an-email"}),
        ("member", {"member": "serviceAccount:mlp-staging.svc.id.goog[mlflow]"}),
        ("member", {"member": "projectOwner:mlp-staging"}),
        ("resource", {"resource_type": "bucket", "resource": "Bad_Bucket"}),
        ("resource", {"resource_type": "project", "resource": "P"}),
        ("resource", {"resource_type": "service_account", "resource": "someone@example.com"}),
        ("condition", {"condition": {"title": "x"}}),
    ],
)
def test_iam_member_bad_inputs_fail_before_any_request(run_module, fake_google, option, args):
    base = {
        "resource_type": "project",
        "resource": "mlp-staging",
        "role": "roles/viewer",
        "member": f"serviceAccount:{SA}",
    }
    out = run_module(gcp_iam_member, {**base, **args})
    assert out["failed"] and out["msg"].startswith(f"option {option}:"), out["msg"]
    assert fake_google.log == []


# ----------------------------------------------------------------------------------------------- Cloud SQL
def test_sql_instance_converges_with_visible_operations(run_module, fake_google):
    first = converge(run_module, fake_google, gcp_sql_instance, PG)[1]
    inst = fake_google.state.instances[("mlp-staging", "mlflow")]
    settings = inst["settings"]
    assert settings["edition"] == "ENTERPRISE", (
        "edition must be sent: the API default for POSTGRES_16 is ENTERPRISE_PLUS"
    )
    assert settings["backupConfiguration"]["pointInTimeRecoveryEnabled"] is True
    assert settings["maintenanceWindow"] == {"day": 7, "hour": 3}
    assert settings["ipConfiguration"]["ipv4Enabled"] is False
    assert settings["deletionProtectionEnabled"] is True
    assert first["connection_name"] == "mlp-staging:europe-west1:mlflow" and first["private_ip"] == "10.20.0.3"
    assert first["operations"][0]["kind"] == "sqladmin operation" and first["operations"][0]["polls"] == 2


def test_sql_instance_mysql_flags_and_binlog(run_module, fake_google):
    args = {**PG, "database_version": "MYSQL_8_0", "database_flags": {"log_bin_trust_function_creators": "on"}}
    assert run_module(gcp_sql_instance, args)["changed"]
    settings = fake_google.state.instances[("mlp-staging", "mlflow")]["settings"]
    assert settings["databaseFlags"] == [{"name": "log_bin_trust_function_creators", "value": "on"}]
    assert settings["backupConfiguration"]["binaryLogEnabled"] is True
    assert "pointInTimeRecoveryEnabled" not in settings["backupConfiguration"]


def test_sql_instance_patch_only_drift_and_retry_busy(run_module, fake_google):
    run_module(gcp_sql_instance, PG)
    fake_google.inject(
        "sql.instances.patch",
        409,
        reason="operationInProgress",
        message="Operation failed because another operation was already in progress.",
    )
    out = run_module(gcp_sql_instance, {**PG, "tier": "db-custom-2-7680", "database_flags": {"max_connections": "200"}})
    assert out["changed"] and any("HTTP 409" in r for r in out["retries"])
    body = fake_google.calls("sql.instances.patch")[-1].body
    assert body == {
        "settings": {
            "tier": "db-custom-2-7680",
            "databaseFlags": [
                {"name": "cloudsql.iam_authentication", "value": "on"},
                {"name": "max_connections", "value": "200"},
            ],
        }
    }


def test_sql_instance_immutable_region(run_module, fake_google):
    run_module(gcp_sql_instance, PG)
    out = run_module(gcp_sql_instance, {**PG, "region": "us-central1"})
    assert out["failed"] and "cannot be changed in place" in out["msg"]


def test_sql_instance_operation_failure_is_reported(run_module, fake_google):
    fake_google.state.lro_polls = 1
    original = fake_google.state.new_lro

    def failing(name, op, on_done, **kw):
        return original(
            name, op, lambda: {"errors": [{"code": "INTERNAL_ERROR", "message": "disk quota exceeded"}]}, **kw
        )

    fake_google.state.new_lro = failing
    out = run_module(gcp_sql_instance, PG)
    assert out["failed"] and "disk quota exceeded" in out["msg"] and out["operations"][0]["status"] == "FAILED"


def test_sql_instance_operation_timeout(run_module, fake_google):
    fake_google.state.lro_polls = 1000
    out = run_module(gcp_sql_instance, {**PG, "operation_timeout": 0})
    assert out["failed"] and "still not done after 0s" in out["msg"] and out["operations"][0]["status"] == "TIMEOUT"


@pytest.mark.parametrize(
    ("option", "args"),
    [
        ("name", {"name": "Mlflow_DB"}),
        ("name", {"name": "mlflow-"}),
        ("database_version", {"database_version": "POSTGRES"}),
        ("backup_start_time", {"backup_start_time": "3am"}),
        ("maintenance_window", {"maintenance_window": {"day": 8, "hour": 3}}),
        ("private_network", {"private_network": "default"}),
        ("tier", {"tier": "n1-standard-1"}),
        ("labels", {"labels": {"App": "x"}}),
    ],
)
def test_sql_instance_bad_inputs(run_module, fake_google, option, args):
    out = run_module(gcp_sql_instance, {**PG, **args})
    assert out["failed"] and out["msg"].startswith(f"option {option}:"), out["msg"]
    assert fake_google.log == []


def test_sql_database_user_backup(run_module, fake_google):
    run_module(gcp_sql_instance, PG)
    converge(run_module, fake_google, gcp_sql_database, {"instance": "mlflow", "name": "mlflow"})
    assert fake_google.state.databases[("mlp-staging", "mlflow", "mlflow")]["charset"] == "UTF8"
    run_module(gcp_secret, {"name": "mlflow-db-password"})
    user = {"instance": "mlflow", "name": "mlflow", "password_secret": "mlflow-db-password"}
    converge(run_module, fake_google, gcp_sql_user, user)
    stored = fake_google.state.passwords[("mlp-staging", "mlflow", "mlflow", "")]
    assert stored == fake_google.state.versions["projects/123456789012/secrets/mlflow-db-password"][0]["data"].decode()
    iam = {"instance": "mlflow", "name": SA, "type": "CLOUD_IAM_SERVICE_ACCOUNT",
           "database_roles": ["cloudsqlsuperuser"]}
    first = converge(run_module, fake_google, gcp_sql_user, iam)[1]
    assert first["db_user"] == "mlflow-server@mlp-staging.iam"
    assert fake_google.calls("sql.users.insert")[-1].body["databaseRoles"] == ["cloudsqlsuperuser"]
    assert first["diff"]["after"]["databaseRoles"] == ["cloudsqlsuperuser"]
    backup = {"instance": "mlflow", "description": "before-mlflow-3.17.2-migration"}
    first, second = converge(run_module, fake_google, gcp_sql_backup, backup)[1:]
    assert first["backup_run"]["status"] == "SUCCESSFUL" and second["backup_run"]["id"] == first["backup_run"]["id"]


def test_sql_user_check_mode_before_the_instance_exists(run_module, fake_google):
    out = run_module(gcp_sql_user, {"instance": "mlflow", "name": "mlflow", "password": "pw-first"}, check=True)
    assert out["changed"] and out["db_user"] == "" and fake_google.writes == []
    out = run_module(gcp_sql_user, {"instance": "mlflow", "name": "mlflow", "password": "pw-first"})
    assert out["failed"] and "does not exist; create it first" in out["msg"]


def test_sql_user_update_password_always(run_module, fake_google):
    run_module(gcp_sql_instance, PG)
    args = {"instance": "mlflow", "name": "mlflow", "password": "first-pass", "update_password": "always"}
    run_module(gcp_sql_user, args)
    out = run_module(gcp_sql_user, {**args, "password": "second-pass"})
    assert out["changed"] and "second-pass" not in str(out)
    assert fake_google.state.passwords[("mlp-staging", "mlflow", "mlflow", "")] == "second-pass"
    assert fake_google.calls("sql.users.update")[-1].query == {"name": ["mlflow"]}


def test_sql_user_mysql_host_and_iam_name(run_module, fake_google):
    run_module(
        gcp_sql_instance,
        {**PG, "database_version": "MYSQL_8_0", "database_flags": {"cloudsql_iam_authentication": "on"}},
    )
    assert run_module(gcp_sql_user, {"instance": "mlflow", "name": "mlflow", "password": "pw-1"})["changed"]
    assert fake_google.calls("sql.users.insert")[-1].body["host"] == "%"
    out = run_module(gcp_sql_user, {"instance": "mlflow", "name": SA, "type": "CLOUD_IAM_SERVICE_ACCOUNT"})
    assert out["db_user"] == SA


@pytest.mark.parametrize(
    ("option", "args"),
    [
        ("password", {"name": "mlflow"}),
        ("name", {"name": "mlflow-server", "type": "CLOUD_IAM_SERVICE_ACCOUNT"}),
        ("password", {"name": SA, "type": "CLOUD_IAM_SERVICE_ACCOUNT", "password": "x"}),
        ("instance", {"instance": "Bad_Instance", "name": "u", "password": "long-password"}),
    ],
)
def test_sql_user_bad_inputs(run_module, fake_google, option, args):
    out = run_module(gcp_sql_user, {"instance": "mlflow", **args})
    assert out["failed"] and out["msg"].startswith(f"option {option}:"), out["msg"]
    assert fake_google.log == []


def test_sql_user_iam_without_flag_reports_google_reason(run_module, fake_google):
    run_module(gcp_sql_instance, {**PG, "database_flags": {}})
    out = run_module(gcp_sql_user, {"instance": "mlflow", "name": SA, "type": "CLOUD_IAM_SERVICE_ACCOUNT"})
    assert out["failed"] and "cloudsql.iam_authentication flag must be on" in out["msg"]


# ------------------------------------------------------------------------------------------- transient
@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_are_retried(run_module, fake_google, no_sleep, status):
    fake_google.inject("storage.buckets.insert", status, times=2)
    out = run_module(gcp_storage_bucket, BUCKET)
    assert out["changed"] and len(out["retries"]) == 2 and f"HTTP {status}" in out["retries"][0]
    assert [c.status for c in fake_google.calls("storage.buckets.insert")] == [status, status, 200]
    assert no_sleep[0] >= 1.0 and no_sleep[1] >= 2.0, "exponential backoff"


def test_transient_errors_give_up_after_retries(run_module, fake_google):
    fake_google.inject("storage.buckets.get", 503, times=10)
    out = run_module(gcp_storage_bucket, {**BUCKET, "retries": 2})
    assert out["failed"] and out["status"] == 503 and len(fake_google.calls("storage.buckets.get")) == 3


def test_service_account_key_file_auth_and_impersonation(run_module, fake_google, tmp_path):
    import json

    key = fake_google.service_account_key("deployer@mlp-staging.iam.gserviceaccount.com")
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    fake_google.strict_tokens = True
    auth = {"auth_kind": "serviceaccount", "service_account_file": str(path)}
    out = run_module(gcp_project_service, {"services": ["iam.googleapis.com"]}, auth=auth)
    assert out["changed"], out
    assert fake_google.token_requests[0]["iss"] == "deployer@mlp-staging.iam.gserviceaccount.com"
    assert {e.principal for e in fake_google.log} == {"deployer@mlp-staging.iam.gserviceaccount.com"}
    run_module(gcp_service_account, {"name": "mlflow-admin"}, auth=auth)
    imp = run_module(
        gcp_project_service,
        {"services": ["sqladmin.googleapis.com"]},
        auth={**auth, "impersonate_service_account": "mlflow-admin@mlp-staging.iam.gserviceaccount.com"},
    )
    assert imp["changed"]
    assert fake_google.log[-1].principal == "mlflow-admin@mlp-staging.iam.gserviceaccount.com"
    assert fake_google.calls("iamcredentials.projects.serviceAccounts.generateAccessToken")
