"""The MLflow REST client: URL building, auth headers, retries, and the error messages users read."""

from __future__ import annotations

import base64
import re
import ssl
import urllib.error

import pytest
from mlflow_unit_fakes import BASE, FakeOpener, http_error, mlflow_error, model_version

from ansible_collections.mlplatform.mlflow.plugins.module_utils import mlflow as m


def client(
    opener: FakeOpener, sleeps: list[float] | None = None, **connection
) -> m.MlflowClient:
    settings = {"tracking_uri": BASE, **connection}
    recorder = sleeps if sleeps is not None else []
    return m.MlflowClient(
        m.MlflowConnection(**settings), opener=opener, sleep=recorder.append
    )


# ------------------------------------------------------------------------------------------ URLs


@pytest.mark.parametrize(
    ("uri", "base"),
    [
        ("http://mlflow.test:5000", "http://mlflow.test:5000"),
        ("https://mlflow.example.com/", "https://mlflow.example.com"),
        ("https://example.com/mlflow/", "https://example.com/mlflow"),
        ("  http://10.0.0.5:5000  ", "http://10.0.0.5:5000"),
    ],
)
def test_tracking_uri_keeps_prefix_and_drops_trailing_slash(
    uri: str, base: str
) -> None:
    assert m.validate_tracking_uri(uri) == base


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("file:///tmp/mlruns", "not an http(s) URL"),
        ("databricks", "not an http(s) URL"),
        ("sqlite:///mlflow.db", "not an http(s) URL"),
        ("http://", "not an http(s) URL"),
        ("https://admin:secret@mlflow.test", "must not carry credentials"),
        ("http://mlflow.test?x=1", "query or fragment"),
    ],
)
def test_unusable_tracking_uri_is_rejected(uri: str, reason: str) -> None:
    with pytest.raises(m.MlflowConfigError, match=re.escape(reason)) as error:
        m.validate_tracking_uri(uri)
    assert "secret" not in str(error.value)


def test_build_url_encodes_query_and_drops_none() -> None:
    url = m.build_url(
        "https://example.com/mlflow",
        "registered-models/alias",
        {"name": "a b&c/d", "alias": None},
    )
    assert (
        url
        == "https://example.com/mlflow/api/2.0/mlflow/registered-models/alias?name=a+b%26c%2Fd"
    )
    assert (
        m.build_url(BASE, "/model-versions/get")
        == f"{BASE}/api/2.0/mlflow/model-versions/get"
    )


def test_search_filter_quotes_model_names() -> None:
    assert m.filter_for_model("iris") == "name = 'iris'"
    assert m.filter_for_model("bob's model") == 'name = "bob\'s model"'
    with pytest.raises(m.MlflowConfigError):
        m.filter_for_model("""both ' and " """)


# --------------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize(
    "alias", ["champion", "challenger-2", "prod_eu", "v1a", "version1", "Ünïcode"]
)
def test_valid_alias_names(alias: str) -> None:
    assert m.alias_name_problem(alias) is None


@pytest.mark.parametrize(
    ("alias", "reason"),
    [
        ("", "cannot be empty"),
        ("latest", "reserved"),
        ("LaTeSt", "reserved"),
        ("v1", "v<digits>"),
        ("V12", "v<digits>"),
        ("bad alias", "only contain alphanumerics"),
        ("a/b", "only contain alphanumerics"),
        ("a.b", "only contain alphanumerics"),
        ("x" * 256, "longer than 255"),
    ],
)
def test_invalid_alias_names_follow_mlflow(alias: str, reason: str) -> None:
    problem = m.alias_name_problem(alias)
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        ("2", 2),
        (" 3 ", 3),
        (0, None),
        (-1, None),
        ("0", None),
        (True, None),
        ("1.0", None),
        ("abc", None),
        ("²", None),
        (None, None),
        (2.0, None),
    ],
)
def test_parse_version(value: object, expected: int | None) -> None:
    assert m.parse_version(value) == expected


def test_latest_version_compares_numbers_not_strings() -> None:
    versions = [model_version(9), model_version(10), model_version(2)]
    assert m.latest_version(versions)["version"] == "10"
    assert m.latest_version([]) is None


def test_aliases_of_registered_model() -> None:
    model = {
        "aliases": [
            {"alias": "champion", "version": "3"},
            {"alias": "b", "version": "1"},
        ]
    }
    assert m.aliases_of(model) == {"champion": 3, "b": 1}
    assert m.aliases_of({"name": "iris"}) == {}


def test_backoff_is_exponential_capped_and_honours_retry_after() -> None:
    assert [m.backoff_delay(n, 1.0, 10.0) for n in range(1, 6)] == [1, 2, 4, 8, 10]
    assert m.backoff_delay(1, 1.0, 10.0, "3") == 3.0
    assert m.backoff_delay(1, 1.0, 10.0, "600") == 10.0
    assert m.backoff_delay(2, 1.0, 10.0, "Wed, 21 Oct 2015 07:28:00 GMT") == 2.0


# ----------------------------------------------------------------------------- requests


def test_basic_auth_header_and_transport_options() -> None:
    opener = FakeOpener().on(
        "GET", "registered-models/get", {"registered_model": {"name": "iris"}}
    )
    api = client(
        opener,
        username="deployer",
        password="s3cret",
        validate_certs=False,
        ca_path="/ca.pem",
        timeout=7,
    )
    assert api.get_registered_model("iris") == {"name": "iris"}
    call = opener.calls[0]
    assert call.url == f"{BASE}/api/2.0/mlflow/registered-models/get?name=iris"
    assert (
        call.headers["Authorization"]
        == "Basic " + base64.b64encode(b"deployer:s3cret").decode()
    )
    assert call.kwargs["validate_certs"] is False
    assert call.kwargs["ca_path"] == "/ca.pem"
    assert call.kwargs["timeout"] == 7
    assert call.kwargs["use_netrc"] is False


@pytest.mark.parametrize(
    ("connection", "header"),
    [
        ({"token": "tok"}, "Bearer tok"),
        (
            {"username": "u", "password": "p", "token": "tok"},
            "Basic " + base64.b64encode(b"u:p").decode(),
        ),
        ({}, None),
        ({"username": "u"}, None),
    ],
)
def test_authorization_header_choice(connection: dict, header: str | None) -> None:
    assert m.MlflowConnection(tracking_uri=BASE, **connection).authorization() == header


def test_set_and_delete_alias_send_json_bodies() -> None:
    opener = (
        FakeOpener()
        .on("POST", "registered-models/alias", {})
        .on("DELETE", "registered-models/alias", {})
    )
    api = client(opener)
    api.set_alias("iris", "champion", 2)
    api.delete_alias("iris", "champion")
    post, delete = opener.calls
    assert post.body == {"name": "iris", "alias": "champion", "version": "2"}
    assert post.headers["Content-Type"] == "application/json"
    assert delete.method == "DELETE" and delete.body == {
        "name": "iris",
        "alias": "champion",
    }


def test_get_alias_and_version() -> None:
    opener = (
        FakeOpener()
        .on(
            "GET",
            "registered-models/alias",
            {"model_version": model_version(2, aliases=["champion"])},
        )
        .on("GET", "model-versions/get", {"model_version": model_version(1)})
    )
    api = client(opener)
    assert api.get_model_version_by_alias("iris", "champion")["version"] == "2"
    assert api.get_model_version("iris", 1)["run_id"] == "run1"
    assert opener.calls[0].query == {"name": "iris", "alias": "champion"}
    assert opener.calls[1].query == {"name": "iris", "version": "1"}


def test_search_follows_page_tokens() -> None:
    opener = FakeOpener().on(
        "GET",
        "model-versions/search",
        {
            "model_versions": [model_version(1), model_version(2)],
            "next_page_token": "p2",
        },
        {"model_versions": [model_version(3)]},
    )
    versions = client(opener).search_model_versions("iris")
    assert [v["version"] for v in versions] == ["1", "2", "3"]
    assert opener.calls[0].query["filter"] == "name = 'iris'"
    assert "page_token" not in opener.calls[0].query
    assert opener.calls[1].query["page_token"] == "p2"


# ------------------------------------------------------------------------------------- retries


def test_retries_5xx_then_succeeds_with_backoff() -> None:
    opener = FakeOpener().on(
        "GET",
        "registered-models/get",
        http_error(503),
        http_error(502),
        {"registered_model": {"name": "iris"}},
    )
    sleeps: list[float] = []
    assert client(opener, sleeps).get_registered_model("iris")["name"] == "iris"
    assert len(opener.calls) == 3
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


def test_429_honours_retry_after() -> None:
    opener = FakeOpener().on(
        "GET",
        "registered-models/get",
        http_error(429, b"slow down", {"Retry-After": "3"}),
        {"registered_model": {}},
    )
    sleeps: list[float] = []
    client(opener, sleeps).get_registered_model("iris")
    assert sleeps == [3.0]


def test_retries_are_bounded() -> None:
    opener = FakeOpener().on(
        "GET",
        "registered-models/get",
        mlflow_error(500, "INTERNAL_ERROR", "db is gone"),
    )
    sleeps: list[float] = []
    with pytest.raises(m.MlflowHTTPError) as error:
        client(opener, sleeps).get_registered_model("iris")
    assert len(opener.calls) == 4 and len(sleeps) == 3
    assert error.value.status == 500 and error.value.error_code == "INTERNAL_ERROR"
    assert "registered model 'iris'" in str(
        error.value
    ) and "INTERNAL_ERROR: db is gone" in str(error.value)


def test_client_errors_are_not_retried() -> None:
    opener = FakeOpener().on(
        "GET", "model-versions/get", mlflow_error(400, "INVALID_PARAMETER_VALUE", "bad")
    )
    with pytest.raises(m.MlflowHTTPError):
        client(opener).get_model_version("iris", 1)
    assert len(opener.calls) == 1


def test_connection_errors_are_retried_then_reported() -> None:
    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    opener = FakeOpener().on("GET", "registered-models/get", refused)
    sleeps: list[float] = []
    with pytest.raises(m.MlflowConnectionError) as error:
        client(opener, sleeps).get_registered_model("iris")
    assert len(opener.calls) == 4 and len(sleeps) == 3
    assert str(error.value).startswith(
        f"cannot reach MLflow at {BASE} for registered model 'iris' after 4 attempts"
    )


def test_timeout_then_success() -> None:
    opener = FakeOpener().on(
        "GET",
        "registered-models/get",
        TimeoutError("timed out"),
        {"registered_model": {}},
    )
    assert client(opener).get_registered_model("iris") == {}
    assert len(opener.calls) == 2


def test_certificate_errors_are_not_retried_and_hint_at_ca_path() -> None:
    failure = urllib.error.URLError(
        ssl.SSLCertVerificationError("certificate verify failed")
    )
    opener = FakeOpener().on("GET", "registered-models/get", failure)
    with pytest.raises(m.MlflowConnectionError, match="Set ca_path"):
        client(opener).get_registered_model("iris")
    assert len(opener.calls) == 1


# --------------------------------------------------------------------------------------- errors


def test_401_names_user_and_url_never_the_password() -> None:
    opener = FakeOpener().on(
        "GET", "registered-models/get", http_error(401, b"You are not authenticated.")
    )
    with pytest.raises(m.MlflowAuthenticationError) as error:
        client(
            opener, username="deployer", password="hunter2hunter2"
        ).get_registered_model("iris")
    message = str(error.value)
    assert message.startswith(
        f"authentication failed for user 'deployer' at {BASE} (HTTP 401)"
    )
    assert "check username and password" in message and "hunter2" not in message
    assert error.value.status == 401


def test_401_without_credentials_says_how_to_give_them() -> None:
    opener = FakeOpener().on(
        "GET", "registered-models/get", http_error(401, b"You are not authenticated.")
    )
    with pytest.raises(m.MlflowAuthenticationError, match="no credentials were given"):
        client(opener).get_registered_model("iris")


def test_403_invalid_host_header_hints_at_allowed_hosts() -> None:
    body = b"Invalid Host header - possible DNS rebinding attack detected"
    opener = FakeOpener().on("GET", "registered-models/get", http_error(403, body))
    with pytest.raises(m.MlflowPermissionError) as error:
        client(opener, username="u", password="p").get_registered_model("iris")
    message = str(error.value)
    assert "rejected the Host header 'mlflow.test:5000'" in message
    assert (
        "Add 'mlflow.test:5000' (or 'mlflow.test:*') to the server's allowed hosts"
        in message
    )
    assert "--allowed-hosts" in message and "MLFLOW_SERVER_ALLOWED_HOSTS" in message


def test_403_permission_denied_names_user_and_resource() -> None:
    opener = FakeOpener().on(
        "POST", "registered-models/alias", http_error(403, b"Permission denied")
    )
    with pytest.raises(m.MlflowPermissionError) as error:
        client(opener, username="reader", password="p").set_alias("iris", "champion", 2)
    message = str(error.value)
    assert (
        "permission denied for user 'reader' on alias 'champion' of registered model 'iris'"
        in message
    )
    assert "EDIT" in message


def test_404_names_resource_and_mlflow_error() -> None:
    error_response = mlflow_error(
        404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=nope not found"
    )
    opener = FakeOpener().on("GET", "registered-models/get", error_response)
    with pytest.raises(m.MlflowNotFoundError) as error:
        client(opener).get_registered_model("nope")
    assert str(error.value).startswith(f"registered model 'nope' not found at {BASE}")
    assert "RESOURCE_DOES_NOT_EXIST" in str(error.value)
    assert error.value.details() == {
        "status": 404,
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "url": f"{BASE}/api/2.0/mlflow/registered-models/get?name=nope",
    }


def test_non_json_answer_suggests_wrong_url() -> None:
    opener = FakeOpener().on("GET", "registered-models/get", b"<html>login</html>")
    with pytest.raises(m.MlflowError, match="not JSON"):
        client(opener).get_registered_model("iris")


# ------------------------------------------------------------------------------- module wrapper


def test_argument_spec_is_a_copy() -> None:
    spec = m.mlflow_argument_spec()
    spec["timeout"]["default"] = 1
    spec["extra"] = {}
    assert m.MLFLOW_CONNECTION_SPEC["timeout"]["default"] == 30
    assert "extra" not in m.MLFLOW_CONNECTION_SPEC
    assert m.MLFLOW_CONNECTION_SPEC["password"]["no_log"] is True
    assert m.MLFLOW_CONNECTION_SPEC["token"]["no_log"] is True


def test_module_options_may_not_shadow_connection_options() -> None:
    with pytest.raises(ValueError, match="tracking_uri"):
        m.MlflowModule({"tracking_uri": {"type": "str"}})
