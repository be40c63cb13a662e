"""The modules' "what would change" decisions, as pure functions, without any I/O."""

from __future__ import annotations

from ansible_collections.mlplatform.mlflow.plugins.modules import (
    gcp_artifact_registry_repository as ar,
)
from ansible_collections.mlplatform.mlflow.plugins.modules import (
    gcp_iam_member,
    gcp_project_service,
    gcp_secret,
    gcp_sql_backup,
    gcp_sql_database,
    gcp_sql_instance,
    gcp_sql_user,
    gcp_storage_bucket,
)
from ansible_collections.mlplatform.mlflow.plugins.modules import (
    gcp_service_account as sa,
)


def test_services_to_change():
    current = {"a.googleapis.com": "ENABLED", "b.googleapis.com": "DISABLED"}
    assert gcp_project_service.services_to_change(current, list(current), "present") == ["b.googleapis.com"]
    assert gcp_project_service.services_to_change(current, list(current), "absent") == ["a.googleapis.com"]


BUCKET_OPTS = {
    "name": "b",
    "location": "EU",
    "storage_class": None,
    "uniform_bucket_level_access": True,
    "public_access_prevention": "enforced",
    "versioning": True,
    "lifecycle_rules": None,
    "purge_lifecycle_rules": False,
    "labels": None,
    "purge_labels": False,
}
LIVE_BUCKET = {
    "name": "b",
    "location": "EU",
    "metageneration": "3",
    "iamConfiguration": {
        "uniformBucketLevelAccess": {"enabled": True, "lockedTime": "2099-01-01T00:00:00Z"},
        "bucketPolicyOnly": {"enabled": True},
        "publicAccessPrevention": "enforced",
    },
    "versioning": {"enabled": True},
    "labels": {"app": "mlflow", "team": "data"},
    "lifecycle": {"rule": [{"action": {"type": "Delete"}, "condition": {"age": 30}}]},
}


def test_bucket_patch_nothing_when_converged():
    assert gcp_storage_bucket.bucket_patch(LIVE_BUCKET, BUCKET_OPTS) == {}
    assert gcp_storage_bucket.bucket_patch(LIVE_BUCKET, {**BUCKET_OPTS, "labels": {"app": "mlflow"}}) == {}


def test_bucket_patch_sends_only_drift():
    opts = {**BUCKET_OPTS, "public_access_prevention": "inherited", "versioning": False}
    assert gcp_storage_bucket.bucket_patch(LIVE_BUCKET, opts) == {
        "iamConfiguration": {"publicAccessPrevention": "inherited"},
        "versioning": {"enabled": False},
    }


def test_bucket_patch_labels_purge_sends_nulls():
    opts = {**BUCKET_OPTS, "labels": {"app": "mlflow"}, "purge_labels": True}
    assert gcp_storage_bucket.bucket_patch(LIVE_BUCKET, opts) == {"labels": {"app": "mlflow", "team": None}}


def test_bucket_patch_lifecycle_replaces_whole_list():
    rule = {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 7}}
    merged = gcp_storage_bucket.bucket_patch(LIVE_BUCKET, {**BUCKET_OPTS, "lifecycle_rules": [rule]})
    assert merged == {"lifecycle": {"rule": [*LIVE_BUCKET["lifecycle"]["rule"], rule]}}
    purged = gcp_storage_bucket.bucket_patch(
        LIVE_BUCKET, {**BUCKET_OPTS, "lifecycle_rules": [rule], "purge_lifecycle_rules": True}
    )
    assert purged == {"lifecycle": {"rule": [rule]}}


def test_bucket_rule_validation():
    assert gcp_storage_bucket.check_rules([{"action": {"type": "Delete"}, "condition": {"age": 1}}]) is None
    assert gcp_storage_bucket.check_rules([{"action": {"type": "Delete"}, "condition": {"olderThan": 1}}])
    assert gcp_storage_bucket.check_rules([{"action": {"type": "Delete"}}])
    assert gcp_storage_bucket.check_rules([{"action": {"type": "Delete"}, "condition": {"age": 1}, "x": 1}])


AR_OPTS = {"format": "DOCKER", "description": None, "labels": None, "purge_labels": False, "immutable_tags": None}


def test_repository_update_mask():
    current = {"format": "DOCKER", "description": "d", "labels": {"a": "1"}}
    assert ar.update_mask(current, ar.desired_repository(AR_OPTS, current)) == []
    want = ar.desired_repository({**AR_OPTS, "description": "new", "immutable_tags": True}, current)
    assert ar.update_mask(current, want) == ["description", "dockerConfig.immutableTags"]
    want = ar.desired_repository({**AR_OPTS, "labels": {"b": "2"}, "purge_labels": True}, current)
    assert want["labels"] == {"b": "2"} and ar.update_mask(current, want) == ["labels"]


def test_service_account_update_fields():
    current = {"displayName": "x", "description": ""}
    assert sa.update_fields(current, {"display_name": "x", "description": None}) == {}
    assert sa.update_fields(current, {"display_name": "y", "description": "d"}) == {
        "displayName": "y",
        "description": "d",
    }


def test_secret_needs_version():
    assert gcp_secret.needs_version(0, None, None, "on_create")
    assert not gcp_secret.needs_version(1, None, "v", "on_create"), "never rotated implicitly"
    assert not gcp_secret.needs_version(1, b"v", "v", "always")
    assert gcp_secret.needs_version(1, b"old", "v", "always")
    body = gcp_secret.payload("abc")
    assert body == {"payload": {"data": "YWJj", "dataCrc32c": "910901175"}}


def test_iam_member_resource_checks():
    assert gcp_iam_member.check_resource("bucket", "Bad", None)
    assert gcp_iam_member.check_resource("service_account", "mlflow-server", None)
    assert gcp_iam_member.check_resource("service_account", "mlflow-server", "mlp-staging") is None
    assert gcp_iam_member.check_resource("secret", "s", None)
    assert gcp_iam_member.check_condition({"title": "t", "expression": "e", "extra": 1})


SQL_OPTS = {
    "tier": "db-custom-1-3840",
    "edition": None,
    "availability_type": None,
    "disk_type": None,
    "disk_autoresize": None,
    "deletion_protection": True,
    "disk_size_gb": 20,
    "ipv4_enabled": False,
    "private_network": "projects/p/global/networks/default",
    "allocated_ip_range": None,
    "ssl_mode": None,
    "backup_enabled": True,
    "backup_start_time": "03:00",
    "point_in_time_recovery": True,
    "transaction_log_retention_days": None,
    "retained_backups": 7,
    "maintenance_window": {"day": 7, "hour": 3},
    "database_flags": {"log_bin_trust_function_creators": "on"},
    "purge_database_flags": False,
    "labels": None,
    "purge_labels": False,
    "region": "europe-west1",
    "database_version": "MYSQL_8_0",
    "name": "mlflow",
    "root_password": None,
}


def test_sql_create_body_mysql():
    body = gcp_sql_instance.create_body(SQL_OPTS)
    settings = body["settings"]
    assert settings["edition"] == "ENTERPRISE"
    assert settings["dataDiskSizeGb"] == "20", "int64 travels as a string"
    assert settings["backupConfiguration"] == {
        "enabled": True,
        "startTime": "03:00",
        "binaryLogEnabled": True,
        "backupRetentionSettings": {"retentionUnit": "COUNT", "retainedBackups": 7},
    }
    assert settings["databaseFlags"] == [{"name": "log_bin_trust_function_creators", "value": "on"}]


def test_sql_instance_patch_is_empty_when_converged_and_minimal_otherwise():
    body = gcp_sql_instance.create_body(SQL_OPTS)
    live = {
        "databaseVersion": "MYSQL_8_0",
        "region": "europe-west1",
        "settings": {**body["settings"], "settingsVersion": "4", "kind": "sql#settings"},
    }
    live["settings"]["backupConfiguration"] = {
        **body["settings"]["backupConfiguration"],
        "transactionLogRetentionDays": 7,
    }
    assert gcp_sql_instance.instance_patch(live, SQL_OPTS) == {}
    patch = gcp_sql_instance.instance_patch(
        live, {**SQL_OPTS, "backup_start_time": "04:00", "database_flags": {"max_connections": "100"}}
    )
    assert patch == {
        "settings": {
            "backupConfiguration": {"startTime": "04:00"},
            "databaseFlags": [
                {"name": "log_bin_trust_function_creators", "value": "on"},
                {"name": "max_connections", "value": "100"},
            ],
        }
    }
    purge = gcp_sql_instance.instance_patch(live, {**SQL_OPTS, "database_flags": {}, "purge_database_flags": True})
    assert purge == {"settings": {"databaseFlags": []}}


def test_sql_immutables():
    live = {"region": "europe-west1", "databaseVersion": "POSTGRES_16"}
    assert gcp_sql_instance.immutable_changes(live, {"region": "europe-west1", "database_version": "postgres_16"}) == []
    assert len(gcp_sql_instance.immutable_changes(live, {"region": "us-east1", "database_version": "POSTGRES_17"})) == 2


def test_sql_database_mismatches():
    assert gcp_sql_database.mismatches({"charset": "UTF8"}, {"charset": "utf8", "collation": None}) == []
    assert gcp_sql_database.mismatches({"charset": "UTF8"}, {"charset": "LATIN1", "collation": None})


def test_sql_user_names():
    email = "mlflow-server@p.iam.gserviceaccount.com"
    assert gcp_sql_user.db_user_name(email, "CLOUD_IAM_SERVICE_ACCOUNT", "POSTGRES") == "mlflow-server@p.iam"
    assert gcp_sql_user.db_user_name(email, "CLOUD_IAM_SERVICE_ACCOUNT", "MYSQL") == email
    assert gcp_sql_user.db_user_name("mlflow", "BUILT_IN", "POSTGRES") == "mlflow"
    users = [{"name": "root", "host": "%"}, {"name": "mlflow", "host": "10.0.0.1"}, {"name": "mlflow", "host": "%"}]
    assert gcp_sql_user.find_user(users, "mlflow", "%") == users[2]
    assert gcp_sql_user.find_user(users, "mlflow", None) == users[1]
    assert gcp_sql_user.secret_version_path("s", "p") == "projects/p/secrets/s/versions/latest"
    assert gcp_sql_user.secret_version_path("projects/q/secrets/s/versions/3", "p") == "projects/q/secrets/s/versions/3"


def test_sql_backup_pick():
    runs = [
        {"type": "ON_DEMAND", "description": "pre", "status": "FAILED", "id": "3"},
        {"type": "AUTOMATED", "description": "pre", "status": "SUCCESSFUL", "id": "2"},
        {"type": "ON_DEMAND", "description": "pre", "status": "SUCCESSFUL", "id": "1"},
    ]
    assert gcp_sql_backup.pick_backup(runs, "pre")["id"] == "1"
    assert gcp_sql_backup.pick_backup(runs[:2], "pre") is None
    assert gcp_sql_backup.pick_backup([{"type": "ON_DEMAND", "description": "pre", "status": "RUNNING"}], "pre")
