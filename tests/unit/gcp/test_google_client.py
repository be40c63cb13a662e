"""Unit tests of plugins/module_utils/google.py: validation, error parsing, IAM policy logic, client behaviour."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.mlplatform.mlflow.plugins.module_utils import google as g

# ----------------------------------------------------------------------------------------- validation
GOOD_BUCKETS = ["abc", "my-bucket_1", "a.b.c", "mlp-staging-mlflow-artifacts", "x" * 63]
BAD_BUCKETS = ["ab", "Abc", "-abc", "abc-", "goog-x", "my-google", "my-g00gle", "10.0.0.1", "x" * 64, "a b", "a/b", ""]


@pytest.mark.parametrize("name", GOOD_BUCKETS)
def test_good_bucket_names(name):
    assert g.check_bucket_name(name) is None


@pytest.mark.parametrize("name", BAD_BUCKETS)
def test_bad_bucket_names(name):
    assert "not a valid bucket name" in g.check_bucket_name(name)


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (g.check_project_id, ["mlp-staging", "abcdef"], ["abc", "Upper-case", "ends-", "1digit", "x" * 31]),
        (g.check_account_id, ["mlflow-server", "abcdef"], ["short", "UPPER-x", "ends-with-", "x" * 31, "a_b_cdef"]),
        (g.check_sql_instance_name, ["mlflow", "a", "mlflow-pg-16"], ["Mlflow", "1db", "db-", "db_x", ""]),
        (g.check_repository_id, ["mlflow", "docker-1"], ["Mlflow", "-x", "x_y"]),
        (g.check_secret_id, ["mlflow-db-password", "A_b-1"], ["a/b", "", "x" * 256, "a.b"]),
        (
            g.check_service_name,
            ["sqladmin.googleapis.com", "iamcredentials.googleapis.com"],
            ["sqladmin", "x.example.com"],
        ),
    ],
)
def test_validators(check, good, bad):
    assert all(check(v) is None for v in good)
    assert all(check(v) for v in bad)


@pytest.mark.parametrize(
    "role", ["roles/storage.objectViewer", "projects/mlp-staging/roles/custom_role", "organizations/123/roles/x.y"]
)
def test_good_roles(role):
    assert g.check_role(role) is None


@pytest.mark.parametrize("role", ["storage.objectViewer", "roles/", "roles/a b", "projects/P/roles/x", "role/x"])
def test_bad_roles(role):
    assert "is not an IAM role name" in g.check_role(role)


@pytest.mark.parametrize(
    "member",
    [
        "user:me@example.com",
        "serviceAccount:sa@p-123456.iam.gserviceaccount.com",
        "group:team@example.com",
        "domain:example.com",
        "serviceAccount:mlp-staging.svc.id.goog[mlflow/mlflow-server]",
        "principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/subject/x",
        "allUsers",
        "projectViewer:mlp-staging",
    ],
)
def test_good_members(member):
    assert g.check_member(member) is None


@pytest.mark.parametrize(
    "member",
    [
        "me@example.com",
        "user:not-an-email",
        "serviceAccount:mlp-staging.svc.id.goog[mlflow]",
        "serviceAccount:Bad_Project.svc.id.goog[ns/ksa]",
        "robot:x@example.com",
        "",
    ],
)
def test_bad_members(member):
    assert g.check_member(member)


def test_labels_validation():
    assert g.check_labels({"app": "mlflow", "env": ""}) is None
    assert "label key 'App'" in g.check_labels({"App": "x"})
    assert "invalid value" in g.check_labels({"app": "ML Flow"})


def test_service_account_email():
    assert g.service_account_email("mlflow-server", "p-123456") == "mlflow-server@p-123456.iam.gserviceaccount.com"
    assert g.service_account_email("x@y.iam.gserviceaccount.com", None) == "x@y.iam.gserviceaccount.com"
    with pytest.raises(g.GoogleError, match="project"):
        g.service_account_email("mlflow-server", None)


# ------------------------------------------------------------------------------------------ errors
def test_parse_error_permission_from_error_info():
    body = {
        "error": {
            "code": 403,
            "message": "Permission denied.",
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "IAM_PERMISSION_DENIED",
                    "metadata": {"permission": "iam.serviceAccounts.create"},
                }
            ],
        }
    }
    assert g.parse_error_body(json.dumps(body)) == (
        "Permission denied.",
        "PERMISSION_DENIED",
        "IAM_PERMISSION_DENIED",
        "iam.serviceAccounts.create",
    )


def test_parse_error_permission_from_storage_message():
    body = {
        "error": {
            "code": 403,
            "message": "ci@p.iam.gserviceaccount.com does not have storage.buckets.create access to the Google Cloud "
            "project.",
            "errors": [{"reason": "forbidden", "domain": "global", "message": "..."}],
        }
    }
    _message, status, reason, permission = g.parse_error_body(json.dumps(body))
    assert (status, reason, permission) == ("", "forbidden", "storage.buckets.create")


def test_parse_error_non_json_and_oauth():
    assert g.parse_error_body("<html>bad gateway</html>")[0] == "<html>bad gateway</html>"
    assert g.parse_error_body('{"error": "invalid_grant", "error_description": "Invalid JWT"}')[:2] == (
        "Invalid JWT",
        "invalid_grant",
    )


def test_error_message_names_resource_status_reason_and_permission():
    err = g.GoogleApiError(
        403,
        method="POST",
        url="u",
        resource="service account x@p.iam.gserviceaccount.com",
        message="Permission 'iam.serviceAccounts.create' denied on resource (or it may not exist).",
        status_name="PERMISSION_DENIED",
        reason="IAM_PERMISSION_DENIED",
        permission="iam.serviceAccounts.create",
    )
    text = str(err)
    assert text.startswith("POST service account x@p.iam.gserviceaccount.com failed: HTTP 403 PERMISSION_DENIED")
    assert "missing permission iam.serviceAccounts.create on service account x@p" in text


# ------------------------------------------------------------------------------------ pure helpers
def test_desired_changes_only_touches_set_fields():
    current = {"a": 1, "b": {"c": True, "d": "x"}, "e": [1, 2], "size": "20"}
    assert g.desired_changes(current, {"b": {"c": True}, "size": 20}) is None
    assert g.desired_changes(current, {"b": {"c": False}}) == {"b": {"c": False}}
    assert g.desired_changes(current, {"e": [2, 1]}) == {"e": [2, 1]}
    assert g.desired_changes(current, {"new": {"x": 1}}) == {"new": {"x": 1}}
    assert g.desired_changes(current, {"a": True}) == {"a": True}, "bool True is not int 1 here"


def test_merge_labels_and_lists():
    assert g.merge_labels({"a": "1", "b": "2"}, {"a": "9"}, purge=False) == {"a": "9", "b": "2"}
    assert g.merge_labels({"a": "1", "b": "2"}, {"a": "9"}, purge=True) == {"a": "9"}
    rule = {"action": {"type": "Delete"}, "condition": {"age": 7}}
    other = {"action": {"type": "Delete"}, "condition": {"age": 30}}
    assert g.merge_list([rule], [{"action": {"type": "Delete"}, "condition": {"age": "7"}}], purge=False) == [rule]
    assert g.merge_list([rule], [other], purge=False) == [rule, other]
    assert g.merge_list([rule], [other], purge=True) == [other]


def test_crc32c_known_vector():
    assert g.crc32c(b"123456789") == 0xE3069283
    assert g.crc32c(b"") == 0


# --------------------------------------------------------------------------------------- IAM logic
POLICY = {
    "version": 1,
    "etag": "BwX1",
    "bindings": [
        {"role": "roles/storage.legacyBucketOwner", "members": ["projectOwner:p", "projectEditor:p"]},
        {"role": "roles/storage.objectViewer", "members": ["serviceAccount:A@p.iam.gserviceaccount.com"]},
    ],
    "auditConfigs": [{"service": "allServices"}],
}


def test_policy_add_keeps_everything_else():
    new, changed = g.policy_with_member(
        POLICY, "roles/storage.objectUser", "serviceAccount:b@p.iam.gserviceaccount.com", present=True
    )
    assert changed and new["etag"] == "BwX1" and new["auditConfigs"] == POLICY["auditConfigs"]
    assert new["bindings"][:2] == POLICY["bindings"]
    assert new["bindings"][2] == {
        "role": "roles/storage.objectUser",
        "members": ["serviceAccount:b@p.iam.gserviceaccount.com"],
    }
    assert POLICY["bindings"][1]["members"] == ["serviceAccount:A@p.iam.gserviceaccount.com"], "input not mutated"


def test_policy_add_is_case_insensitive_for_emails():
    new, changed = g.policy_with_member(
        POLICY, "roles/storage.objectViewer", "serviceAccount:a@p.iam.gserviceaccount.com", present=True
    )
    assert not changed and new["bindings"] == POLICY["bindings"]


def test_policy_remove_drops_empty_binding():
    new, changed = g.policy_with_member(
        POLICY, "roles/storage.objectViewer", "serviceAccount:a@p.iam.gserviceaccount.com", present=False
    )
    assert changed and [b["role"] for b in new["bindings"]] == ["roles/storage.legacyBucketOwner"]
    _policy, again = g.policy_with_member(
        new, "roles/storage.objectViewer", "serviceAccount:a@p.iam.gserviceaccount.com", present=False
    )
    assert not again


def test_policy_conditions_are_separate_bindings_and_bump_version():
    cond = {"title": "only-mlflow", "expression": 'resource.name == "projects/p/instances/mlflow"'}
    new, changed = g.policy_with_member(
        POLICY, "roles/storage.objectViewer", "user:x@example.com", present=True, condition=cond
    )
    assert changed and new["version"] == 3
    assert g.binding_members(new, "roles/storage.objectViewer") == ["serviceAccount:a@p.iam.gserviceaccount.com"]
    assert g.binding_members(new, "roles/storage.objectViewer", cond) == ["user:x@example.com"]


def test_iam_targets_match_the_discovery_paths():
    assert g.iam_target("project", "p-123456").get_path == "v1/projects/p-123456:getIamPolicy"
    bucket = g.iam_target("bucket", "b1")
    assert (bucket.get_method, bucket.set_method, bucket.wraps_policy) == ("GET", "PUT", False)
    sa = g.iam_target("service_account", "mlflow-server", "p-123456")
    assert (
        sa.set_path
        == "v1/projects/p-123456/serviceAccounts/mlflow-server@p-123456.iam.gserviceaccount.com:setIamPolicy"
    )
    assert sa.get_params == {"options.requestedPolicyVersion": 3}
    assert g.iam_target("secret", "s", "p-123456").get_method == "GET"
    with pytest.raises(g.GoogleError):
        g.iam_target("dataset", "x")


# ------------------------------------------------------------------------------------------ client
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def client(fake_google):
    clock = FakeClock()
    c = g.GoogleClient(
        {"auth_kind": "accesstoken", "access_token": "t", "endpoint_overrides": fake_google.endpoint_overrides},
        sleep=clock.sleep,
        clock=clock.clock,
        jitter=lambda: 0.0,
    )
    c.fake_clock = clock
    return c


def test_endpoint_overrides():
    c = g.GoogleClient(
        {"endpoint_overrides": {"all": "https://{api}-psc.p.googleapis.com", "storage": "http://127.0.0.1:9/"}}
    )
    assert (
        c.url("sqladmin", "v1/projects/p/instances") == "https://sqladmin-psc.p.googleapis.com/v1/projects/p/instances"
    )
    assert c.url("storage", "storage/v1/b") == "http://127.0.0.1:9/storage/v1/b"
    assert g.GoogleClient({}).url("iam", "v1/x") == "https://iam.googleapis.com/v1/x"


def test_retry_backoff_is_exponential_and_bounded(client, fake_google):
    fake_google.inject("storage.buckets.get", 503, times=3)
    assert client.get("storage", "storage/v1/b/nothing", resource="bucket nothing") is None
    assert client.fake_clock.slept == [1.0, 2.0, 4.0]
    client.max_delay = 3.0
    fake_google.inject("storage.buckets.get", 429, times=3)
    client.get("storage", "storage/v1/b/nothing", resource="bucket nothing")
    assert client.fake_clock.slept[3:] == [1.0, 2.0, 3.0]


def test_no_retry_on_client_errors(client, fake_google):
    fake_google.inject("storage.buckets.get", 403, permission="storage.buckets.get")
    with pytest.raises(g.GoogleApiError) as exc:
        client.get("storage", "storage/v1/b/x-bucket", resource="bucket x-bucket")
    assert exc.value.status == 403 and exc.value.permission == "storage.buckets.get"
    assert client.fake_clock.slept == [] and len(fake_google.log) == 1


def test_retry_if_predicate(client, fake_google):
    fake_google.state.instances[("mlp-staging", "db")] = {"name": "db"}
    fake_google.inject("sql.instances.get", 409, reason="operationInProgress", times=2)
    assert client.request(
        "GET", "sqladmin", "v1/projects/mlp-staging/instances/db", resource="i", retry_if=g.is_sql_busy
    )
    assert len(client.retry_log) == 2


def test_connection_errors_are_retried_then_reported():
    clock = FakeClock()
    c = g.GoogleClient(
        {
            "auth_kind": "accesstoken",
            "access_token": "t",
            "endpoint_overrides": {"all": "http://127.0.0.1:9"},
            "retries": 2,
            "request_timeout": 2,
        },
        sleep=clock.sleep,
        clock=clock.clock,
        jitter=lambda: 0.0,
    )
    with pytest.raises(g.GoogleError, match=r"no answer from http://127\.0\.0\.1:9/v1/x after 3 attempts"):
        c.request("GET", "iam", "v1/x", resource="thing")
    assert clock.slept == [1.0, 2.0]


def test_longrunning_operation_polls_until_done(client, fake_google):
    fake_google.state.lro_polls = 3
    op = client.request(
        "POST", "serviceusage", "v1/projects/mlp-staging/services/iam.googleapis.com:enable", body={}, resource="svc"
    )
    response = client.wait_operation("serviceusage", op, resource="service iam")
    assert response["service"]["state"] == "ENABLED"
    assert client.operations[0]["polls"] == 3 and client.operations[0]["status"] == "DONE"
    assert client.fake_clock.slept == [1.0, 2.0]


def test_longrunning_operation_error_and_timeout(client, fake_google):
    with pytest.raises(g.OperationError, match="failed: code 9: precondition"):
        client.wait_operation(
            "serviceusage",
            {"name": "operations/x", "done": True, "error": {"code": 9, "message": "precondition"}},
            resource="r",
        )
    fake_google.state.lro_polls = 10**6
    client.operation_timeout = 20
    op = client.request(
        "POST", "serviceusage", "v1/projects/mlp-staging/services/iam.googleapis.com:enable", body={}, resource="svc"
    )
    with pytest.raises(g.OperationError, match="still not done after 20s"):
        client.wait_operation("serviceusage", op, resource="service iam")
    assert client.operations[-1]["status"] == "TIMEOUT"
    assert max(client.fake_clock.slept) <= 15.0


def test_sql_operation_done_with_errors(client):
    with pytest.raises(g.OperationError, match=r"CREATE.*instance quota"):
        client.wait_sql_operation(
            "p",
            {
                "name": "op1",
                "status": "DONE",
                "operationType": "CREATE",
                "error": {"errors": [{"code": "QUOTA", "message": "instance quota"}]},
            },
            resource="r",
        )


def test_iam_read_modify_write_retries_conflicts(client, fake_google):
    fake_google.state.buckets["b-1x"] = {"name": "b-1x"}
    fake_google.state.policies["bucket/b-1x"] = {"version": 1, "etag": "BwX0", "bindings": []}
    fake_google.inject_concurrent_iam_write("storage.buckets.setIamPolicy", "bucket/b-1x", times=3)
    result = client.iam_member(
        g.iam_target("bucket", "b-1x"), "roles/storage.objectViewer", "user:a@example.com", present=True
    )
    assert result == {"changed": True, "before": [], "after": ["user:a@example.com"]}
    assert [c.status for c in fake_google.calls("storage.buckets.setIamPolicy")] == [412, 412, 412, 200]
    assert client.fake_clock.slept == [1.0, 2.0, 4.0]


def test_iam_read_modify_write_gives_up_after_max_conflicts(client, fake_google):
    fake_google.state.buckets["b-1x"] = {"name": "b-1x"}
    fake_google.inject("storage.buckets.setIamPolicy", 412, times=100)
    with pytest.raises(g.GoogleApiError) as exc:
        client.iam_member(
            g.iam_target("bucket", "b-1x"), "roles/x", "user:a@example.com", present=True, max_conflicts=3
        )
    assert exc.value.status == 412 and len(fake_google.calls("storage.buckets.setIamPolicy")) == 4


def test_iam_check_mode_sends_no_set(client, fake_google):
    result = client.iam_member(
        g.iam_target("project", "mlp-staging"), "roles/viewer", "user:a@example.com", present=True, check_mode=True
    )
    assert result["changed"] and fake_google.writes == []


def test_iam_visibility_retry_is_bounded_by_time(client, fake_google):
    with pytest.raises(g.GoogleApiError, match="does not exist"):
        client.iam_member(
            g.iam_target("project", "mlp-staging"),
            "roles/viewer",
            "serviceAccount:ghost@mlp-staging.iam.gserviceaccount.com",
            present=True, consistency_timeout=10,
        )  # fmt: skip
    assert 10 <= sum(client.fake_clock.slept) <= 20


def test_google_module_does_not_mutate_shared_spec(monkeypatch):
    before = copy.deepcopy(g.AUTH_ARGUMENT_SPEC)
    from ansible.module_utils.testing import patch_module_args

    with patch_module_args({"name": "x", "access_token": "t", "auth_kind": "accesstoken"}):
        module = g.GoogleModule({"name": {"type": "str"}, "project": {"type": "str", "required": False}})
    assert module.params["name"] == "x"
    assert before == g.AUTH_ARGUMENT_SPEC


def test_iam_check_mode_on_a_resource_still_to_be_created(client, fake_google):
    target = g.iam_target("bucket", "not-yet-bucket")
    result = client.iam_member(
        target, "roles/storage.objectViewer", "user:A@example.com", present=True, check_mode=True
    )
    assert result == {"changed": True, "before": [], "after": ["user:a@example.com"]}
    with pytest.raises(g.GoogleApiError) as exc:
        client.iam_member(target, "roles/storage.objectViewer", "user:a@example.com", present=True)
    assert exc.value.status == 404 and "bucket not-yet-bucket" in str(exc.value)
