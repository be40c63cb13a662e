"""The fake itself: it enforces Google's published contract and keeps state; it is not a stub."""

from __future__ import annotations

import pytest
import requests
from gcp_fake.contract import Contract
from gcp_fake.server import FakeGoogle

AUTH = {"Authorization": "Bearer t"}


@pytest.fixture
def fake():
    f = FakeGoogle().start()
    yield f
    f.stop()


def call(fake, method, path, **kw):
    return requests.request(method, fake.url + path, headers=AUTH, timeout=5, **kw)


def test_every_handler_is_a_real_discovery_method():
    from gcp_fake import services

    contract = Contract()
    ids = {m.id for api in contract.apis.values() for m in api.methods}
    assert set(services.HANDLERS) <= ids


@pytest.mark.parametrize(
    ("method", "path", "body", "needle"),
    [
        (
            "POST",
            "/storage/storage/v1/b?project=mlp-staging",
            {"name": "abc", "locationx": "EU"},
            "unknown field 'locationx'",
        ),
        (
            "POST",
            "/storage/storage/v1/b?project=mlp-staging&bogus=1",
            {"name": "abc"},
            "query parameter 'bogus' is not declared",
        ),
        ("POST", "/storage/storage/v1/b/abc", None, "the path exists only for"),
        ("GET", "/storage/storage/v2/b/abc", None, "no method of storage v1 has this path"),
        (
            "POST",
            "/sqladmin/v1/projects/mlp-staging/instances",
            {"name": "x", "settings": {"tier": "db-f1-micro", "edition": "ENTERPRISE_PLUSS"}},
            "is not one of",
        ),
        (
            "POST",
            "/sqladmin/v1/projects/mlp-staging/instances",
            {"name": "x", "settings": {"tier": 5}},
            "expected a string",
        ),
        (
            "POST",
            "/sqladmin/v1/projects/mlp-staging/instances",
            {"name": "x", "settings": {"dataDiskSizeGb": "20GB"}},
            "expected an int64",
        ),
        (
            "POST",
            "/iam/v1/projects/mlp-staging/serviceAccounts",
            {"accountId": "abcdef", "serviceAccount": {"displayname": "x"}},
            "unknown field 'displayname'",
        ),
        ("GET", "/storage/storage/v1/b/abc?projection=full&ifMetagenerationMatch=x1", None, "expected an int64"),
        ("POST", "/nosuchapi/v1/things", {}, "no API 'nosuchapi'"),
    ],
)
def test_contract_violations_are_rejected_and_recorded(fake, method, path, body, needle):
    response = call(fake, method, path, json=body)
    assert response.status_code in (400, 404, 405)
    assert any(needle in v for v in fake.violations), fake.violations
    assert needle in response.json()["error"]["message"]


def test_implemented_but_unknown_method_answers_501(fake):
    response = call(fake, "GET", "/storage/storage/v1/b?project=mlp-staging")  # storage.buckets.list: not modelled
    assert response.status_code == 501 and "the fake does not implement this method" in fake.violations[0]


def test_requests_need_a_bearer_token(fake):
    assert requests.get(fake.url + "/storage/storage/v1/b/abc", timeout=5).status_code == 401
    fake.strict_tokens = True
    assert call(fake, "GET", "/storage/storage/v1/b/abc").status_code == 401


def test_state_etags_and_write_log(fake):
    assert call(fake, "POST", "/storage/storage/v1/b?project=mlp-staging", json={"name": "abc-1"}).status_code == 200
    assert call(fake, "POST", "/storage/storage/v1/b?project=mlp-staging", json={"name": "abc-1"}).status_code == 409
    assert call(fake, "GET", "/storage/storage/v1/b/abc-1").json()["location"] == "US", "server-side default"
    policy = call(fake, "GET", "/storage/storage/v1/b/abc-1/iam").json()
    stale = dict(policy)
    assert call(fake, "PUT", "/storage/storage/v1/b/abc-1/iam", json={**policy, "bindings": []}).status_code == 200
    assert call(fake, "PUT", "/storage/storage/v1/b/abc-1/iam", json=stale).status_code == 412
    assert [(e.method_id, e.status) for e in fake.writes] == [
        ("storage.buckets.insert", 200),
        ("storage.buckets.insert", 409),
        ("storage.buckets.setIamPolicy", 200),
        ("storage.buckets.setIamPolicy", 412),
    ]
    assert fake.violations == []


def test_iam_policy_etag_conflict_is_409_aborted(fake):
    policy = call(fake, "POST", "/cloudresourcemanager/v1/projects/mlp-staging:getIamPolicy", json={}).json()
    body = {"policy": {**policy, "bindings": [{"role": "roles/viewer", "members": ["user:a@example.com"]}]}}
    assert (
        call(fake, "POST", "/cloudresourcemanager/v1/projects/mlp-staging:setIamPolicy", json=body).status_code == 200
    )
    again = call(fake, "POST", "/cloudresourcemanager/v1/projects/mlp-staging:setIamPolicy", json=body)
    assert again.status_code == 409 and again.json()["error"]["status"] == "ABORTED"


def test_sql_operation_in_progress(fake):
    body = {
        "name": "db1",
        "region": "europe-west1",
        "databaseVersion": "POSTGRES_15",
        "settings": {"tier": "db-custom-1-3840"},
    }
    op = call(fake, "POST", "/sqladmin/v1/projects/mlp-staging/instances", json=body).json()
    assert op["status"] == "PENDING"
    busy = call(
        fake,
        "PATCH",
        "/sqladmin/v1/projects/mlp-staging/instances/db1",
        json={"settings": {"tier": "db-custom-2-7680"}},
    )
    assert busy.status_code == 409 and busy.json()["error"]["errors"][0]["reason"] == "operationInProgress"
    statuses = [
        call(fake, "GET", f"/sqladmin/v1/projects/mlp-staging/operations/{op['name']}").json()["status"]
        for poll in range(2)
    ]
    assert statuses == ["RUNNING", "DONE"]
    inst = call(fake, "GET", "/sqladmin/v1/projects/mlp-staging/instances/db1").json()
    assert inst["state"] == "RUNNABLE" and inst["settings"]["edition"] == "ENTERPRISE"


def test_sql_postgres16_defaults_to_enterprise_plus(fake):
    body = {
        "name": "db2",
        "region": "europe-west1",
        "databaseVersion": "POSTGRES_16",
        "settings": {"tier": "db-custom-1-3840"},
    }
    response = call(fake, "POST", "/sqladmin/v1/projects/mlp-staging/instances", json=body)
    assert response.status_code == 400 and "ENTERPRISE_PLUS" in response.json()["error"]["message"]


def test_fault_injection(fake):
    fake.inject("storage.buckets.get", 503, times=1)
    assert call(fake, "GET", "/storage/storage/v1/b/abc").status_code == 503
    assert call(fake, "GET", "/storage/storage/v1/b/abc").status_code == 404
    fake.inject("storage.buckets.get", 403, permission="storage.buckets.get")
    err = call(fake, "GET", "/storage/storage/v1/b/abc").json()["error"]
    assert "storage.buckets.get" in err["message"] and err["code"] == 403
