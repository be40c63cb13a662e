"""mlflow_model_alias and mlflow_model_version_info through ansible-playbook against a real MLflow server."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import typing as t
import urllib.request
from pathlib import Path

import yaml
from mlflow_live_server import MODEL_NAME, MlflowServer, free_port

ROOT = Path(__file__).resolve().parents[3]
FQCN = "mlplatform.mlflow."


def run_module(
    tmp_path: Path,
    module: str,
    args: dict[str, t.Any],
    *,
    connection: dict[str, t.Any] | None = None,
    check: bool = False,
    diff: bool = False,
    extra_env: dict[str, str] | None = None,
) -> dict[str, t.Any]:
    """Run one module task with ansible-playbook (local connection); return its registered result.

    ``connection`` goes into module_defaults for group/mlplatform.mlflow.mlflow, as playbooks do it.
    """
    workdir = Path(tmp_path) / f"run-{len(list(Path(tmp_path).glob('run-*')))}"
    workdir.mkdir()
    out = workdir / "result.json"
    play = {
        "name": "Run one mlflow module",
        "hosts": "localhost",
        "gather_facts": False,
        "module_defaults": {f"group/{FQCN}mlflow": connection or {}},
        "tasks": [
            {
                "name": "Run the module",
                FQCN + module: args,
                "register": "result",
                "ignore_errors": True,
            },
            {
                "name": "Save the result",
                "ansible.builtin.copy": {
                    "content": "{{ result | to_json }}",
                    "dest": str(out),
                    "mode": "0600",
                },
                "check_mode": False,
                "diff": False,
            },
        ],
    }
    playbook = workdir / "play.yml"
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")
    }
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".cache" / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    env.update(extra_env or {})
    command = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        str(playbook),
    ]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    completed = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.exists(), (
        f"the playbook did not finish:\n{completed.stdout}\n{completed.stderr}"
    )
    return json.loads(out.read_text())


def aliases(mlflow_client: t.Any) -> dict[str, int]:
    """The model's aliases as MLflow's own client sees them."""
    model = mlflow_client.get_registered_model(MODEL_NAME)
    return {alias: int(version) for alias, version in model.aliases.items()}


def test_alias_lifecycle(
    tmp_path: Path,
    connection: dict[str, t.Any],
    mlflow_client: t.Any,
    registered_model: dict[int, str],
) -> None:
    alias = "champion"
    present_v1 = {"name": MODEL_NAME, "alias": alias, "version": 1}
    assert alias not in aliases(mlflow_client)

    # Check mode from the unaliased state: reports the change, writes nothing.
    result = run_module(
        tmp_path,
        "mlflow_model_alias",
        present_v1,
        connection=connection,
        check=True,
        diff=True,
    )
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert result["previous_version"] is None and result["version"] == 1
    assert result["diff"]["before"] == {} and result["diff"]["after"] == {alias: 1}
    assert alias not in aliases(mlflow_client)

    # For real, then again: changed once, then not.
    result = run_module(
        tmp_path, "mlflow_model_alias", present_v1, connection=connection, diff=True
    )
    assert result["changed"] is True, result
    assert aliases(mlflow_client)[alias] == 1
    result = run_module(
        tmp_path, "mlflow_model_alias", present_v1, connection=connection
    )
    assert result["changed"] is False, result
    assert result["previous_version"] == 1 and result["version"] == 1

    # Check mode on the converged state: nothing to do.
    result = run_module(
        tmp_path, "mlflow_model_alias", present_v1, connection=connection, check=True
    )
    assert result["changed"] is False, result

    # The alias resolves to v1 and its run.
    info = run_module(
        tmp_path,
        "mlflow_model_version_info",
        {"name": MODEL_NAME, "alias": alias},
        connection=connection,
    )
    assert not info.get("failed"), info
    assert info["version"] == 1 and info["run_id"] == registered_model[1]
    assert info["model_uri"] == f"models:/{MODEL_NAME}/1"
    assert info["status"] == "READY" and alias in info["aliases"]

    # Move it to v2: changed, previous_version tells the runbook where to roll back to.
    result = run_module(
        tmp_path,
        "mlflow_model_alias",
        {**present_v1, "version": 2},
        connection=connection,
        diff=True,
    )
    assert result["changed"] is True, result
    assert result["previous_version"] == 1 and result["version"] == 2
    assert result["diff"] == {
        "before": {alias: 1},
        "after": {alias: 2},
        "before_header": f"registered model {MODEL_NAME}: alias {alias}",
        "after_header": f"registered model {MODEL_NAME}: alias {alias}",
    }
    assert aliases(mlflow_client)[alias] == 2
    info = run_module(
        tmp_path,
        "mlflow_model_version_info",
        {"name": MODEL_NAME, "alias": alias},
        connection=connection,
    )
    assert info["version"] == 2 and info["run_id"] == registered_model[2]

    # A guarded delete that names the old version leaves the alias alone.
    absent_v1 = {"name": MODEL_NAME, "alias": alias, "state": "absent", "version": 1}
    result = run_module(
        tmp_path, "mlflow_model_alias", absent_v1, connection=connection
    )
    assert result["changed"] is False and result["version"] == 2, result
    assert aliases(mlflow_client)[alias] == 2

    # Delete in check mode (nothing written), for real, then again (unchanged).
    absent = {"name": MODEL_NAME, "alias": alias, "state": "absent"}
    result = run_module(
        tmp_path, "mlflow_model_alias", absent, connection=connection, check=True
    )
    assert result["changed"] is True and aliases(mlflow_client)[alias] == 2
    result = run_module(
        tmp_path, "mlflow_model_alias", absent, connection=connection, diff=True
    )
    assert result["changed"] is True and result["previous_version"] == 2, result
    assert result["diff"]["after"] == {} and result["version"] is None
    assert alias not in aliases(mlflow_client)
    result = run_module(tmp_path, "mlflow_model_alias", absent, connection=connection)
    assert result["changed"] is False and result["previous_version"] is None, result


def test_version_info_explicit_and_latest(
    tmp_path: Path, connection: dict[str, t.Any], registered_model: dict[int, str]
) -> None:
    latest = run_module(
        tmp_path,
        "mlflow_model_version_info",
        {"name": MODEL_NAME, "version": "latest"},
        connection=connection,
    )
    assert not latest.get("failed"), latest
    assert latest["version"] == 2 and latest["run_id"] == registered_model[2]
    assert latest["resolved_from"] == "version:latest"
    assert latest["source"] and latest["creation_timestamp"] > 0

    first = run_module(
        tmp_path,
        "mlflow_model_version_info",
        {"name": MODEL_NAME, "version": 1},
        connection=connection,
    )
    assert first["version"] == 1 and first["run_id"] == registered_model[1]
    assert first["changed"] is False


def test_connection_from_environment(
    tmp_path: Path, mlflow_server: MlflowServer, registered_model: dict[int, str]
) -> None:
    """MLFLOW_TRACKING_URI/USERNAME/PASSWORD are enough, as for MLflow's own client."""
    result = run_module(
        tmp_path,
        "mlflow_model_version_info",
        {"name": MODEL_NAME, "version": 2},
        extra_env={
            "MLFLOW_TRACKING_URI": mlflow_server.url,
            "MLFLOW_TRACKING_USERNAME": mlflow_server.username,
            "MLFLOW_TRACKING_PASSWORD": mlflow_server.password,
        },
    )
    assert not result.get("failed"), result
    assert result["run_id"] == registered_model[2]


def test_wrong_password_is_a_clear_401(
    tmp_path: Path,
    connection: dict[str, t.Any],
    mlflow_client: t.Any,
    registered_model: dict[int, str],
) -> None:
    result = run_module(
        tmp_path,
        "mlflow_model_alias",
        {
            "name": MODEL_NAME,
            "alias": "challenger",
            "version": 2,
            "password": "not-the-password",
        },
        connection=connection,
    )
    assert result["failed"] is True
    assert result["status"] == 401
    assert (
        f"authentication failed for user 'admin' at {connection['tracking_uri']}"
        in result["msg"]
    )
    assert "not-the-password" not in json.dumps(result)
    assert "challenger" not in aliases(mlflow_client)


def test_unknown_model_and_alias_are_named(
    tmp_path: Path, connection: dict[str, t.Any], registered_model: dict[int, str]
) -> None:
    result = run_module(
        tmp_path,
        "mlflow_model_alias",
        {"name": "no-such-model", "alias": "champion", "version": 1},
        connection=connection,
    )
    assert result["failed"] is True and result["status"] == 404
    assert "registered model 'no-such-model' not found" in result["msg"]
    assert result["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    result = run_module(
        tmp_path,
        "mlflow_model_version_info",
        {"name": "no-such-model", "alias": "champion"},
        connection=connection,
    )
    assert (
        result["failed"] is True
        and "registered model 'no-such-model' not found" in result["msg"]
    )

    result = run_module(
        tmp_path,
        "mlflow_model_version_info",
        {"name": MODEL_NAME, "alias": "nobody-set-this"},
        connection=connection,
    )
    assert result["failed"] is True
    assert (
        f"registered model '{MODEL_NAME}' has no alias 'nobody-set-this'"
        in result["msg"]
    )

    result = run_module(
        tmp_path,
        "mlflow_model_alias",
        {"name": MODEL_NAME, "alias": "champion", "version": 99},
        connection=connection,
        check=True,
    )
    assert (
        result["failed"] is True
        and f"version 99 of registered model '{MODEL_NAME}' not found" in result["msg"]
    )


def test_bad_alias_fails_before_any_request(
    tmp_path: Path, connection: dict[str, t.Any]
) -> None:
    """Nothing listens on the tracking_uri: only validation can produce these messages."""
    nowhere = {**connection, "tracking_uri": f"http://127.0.0.1:{free_port()}"}
    for alias, reason in (
        ("latest", "reserved"),
        ("v3", "reserved"),
        ("bad alias!", "only contain alphanumerics"),
    ):
        result = run_module(
            tmp_path,
            "mlflow_model_alias",
            {"name": MODEL_NAME, "alias": alias, "version": 1},
            connection=nowhere,
        )
        assert result["failed"] is True, result
        assert reason in result["msg"] and "cannot reach" not in result["msg"], result[
            "msg"
        ]
    result = run_module(
        tmp_path,
        "mlflow_model_alias",
        {"name": MODEL_NAME, "alias": "champion", "version": 0},
        connection=nowhere,
    )
    assert result["failed"] is True and "positive integer" in result["msg"], result


def test_unreachable_server_is_reported(
    tmp_path: Path, connection: dict[str, t.Any]
) -> None:
    nowhere = {
        **connection,
        "tracking_uri": f"http://127.0.0.1:{free_port()}",
        "timeout": 2,
    }
    result = run_module(
        tmp_path,
        "mlflow_model_version_info",
        {"name": MODEL_NAME, "version": 1},
        connection=nowhere,
    )
    assert result["failed"] is True
    assert f"cannot reach MLflow at {nowhere['tracking_uri']}" in result["msg"], result[
        "msg"
    ]


def test_disallowed_host_header_gets_the_hint(
    tmp_path: Path, connection: dict[str, t.Any], mlflow_server: MlflowServer
) -> None:
    """The server allows only 127.0.0.1, so the same server as 'localhost' answers 403 Invalid Host header."""
    as_localhost = {
        **connection,
        "tracking_uri": f"http://localhost:{mlflow_server.port}",
    }
    result = run_module(
        tmp_path,
        "mlflow_model_version_info",
        {"name": MODEL_NAME, "version": 1},
        connection=as_localhost,
    )
    assert result["failed"] is True and result["status"] == 403, result
    assert "Invalid Host header" in result["msg"]
    assert (
        f"Add 'localhost:{mlflow_server.port}'" in result["msg"]
        and "allowed hosts" in result["msg"]
    )


def test_read_only_user_is_denied_with_a_clear_403(
    tmp_path: Path,
    connection: dict[str, t.Any],
    mlflow_server: MlflowServer,
    mlflow_client: t.Any,
    registered_model: dict[int, str],
) -> None:
    """The server's default permission is READ: a new user may resolve versions but not move aliases."""
    password = secrets.token_urlsafe(18)
    mlflow_server.api(
        "POST", "users/create", {"username": "reader", "password": password}
    )
    reader = {**connection, "username": "reader", "password": password}

    info = run_module(
        tmp_path,
        "mlflow_model_version_info",
        {"name": MODEL_NAME, "version": 1},
        connection=reader,
    )
    assert not info.get("failed"), info
    assert info["run_id"] == registered_model[1]

    args = {"name": MODEL_NAME, "alias": "reader-pick", "version": 1}
    result = run_module(tmp_path, "mlflow_model_alias", args, connection=reader)
    assert result["failed"] is True and result["status"] == 403, result
    assert "permission denied for user 'reader' on alias 'reader-pick'" in result["msg"]
    assert "reader-pick" not in aliases(mlflow_client)


def test_bad_alias_sends_nothing_to_a_live_server(
    tmp_path: Path, connection: dict[str, t.Any], mlflow_server: MlflowServer
) -> None:
    """The server's access log shows no registry request for a rejected alias name."""
    before = mlflow_server.log_path.read_text(errors="replace").count(
        "registered-models/"
    )
    args = {"name": MODEL_NAME, "alias": "v7", "version": 1}
    result = run_module(tmp_path, "mlflow_model_alias", args, connection=connection)
    assert result["failed"] is True and "reserved" in result["msg"]
    # A request that did reach the server is logged by the time the next one is answered.
    with urllib.request.urlopen(f"{mlflow_server.url}/health", timeout=10):
        pass
    assert (
        mlflow_server.log_path.read_text(errors="replace").count("registered-models/")
        == before
    )


def test_model_uri_info_pins_every_uri_form(
    tmp_path: Path, connection: dict[str, t.Any], registered_model: dict[int, str], mlflow_client: t.Any
) -> None:
    mlflow_client.set_registered_model_alias(MODEL_NAME, "uri-test", "1")
    expected = {
        f"models:/{MODEL_NAME}@uri-test": (f"models:/{MODEL_NAME}/1", 1),
        f"models:/{MODEL_NAME}/2": (f"models:/{MODEL_NAME}/2", 2),
        f"models:/{MODEL_NAME}/latest": (f"models:/{MODEL_NAME}/2", 2),
    }
    for uri, (pinned, version) in expected.items():
        result = run_module(tmp_path, "mlflow_model_uri_info", {"uri": uri}, connection=connection)
        assert not result.get("failed"), result
        assert (result["model_uri"], result["version"], result["source"]) == (pinned, version, "registry"), result
        assert result["run_id"] == registered_model[version] and result["resolved_from"] == uri
        assert result["experiment_id"] == mlflow_client.get_run(result["run_id"]).info.experiment_id != "", result

    # An MLflow 3 logged model, found through the run that produced it (what runs:/RUN_ID/model loads).
    run_id = registered_model[1]
    result = run_module(tmp_path, "mlflow_model_uri_info", {"uri": f"runs:/{run_id}/model"}, connection=connection)
    assert not result.get("failed"), result
    assert result["model_uri"] == f"runs:/{run_id}/model" and result["source"] == "run" and result["version"] == 0
    assert result["model_id"].startswith("m-") and result["artifact_path"] == "model"
    assert result["experiment_id"] == mlflow_client.get_run(run_id).info.experiment_id, result


def test_model_uri_info_finds_a_model_in_run_artifacts(
    tmp_path: Path, connection: dict[str, t.Any], mlflow_server: MlflowServer, mlflow_client: t.Any
) -> None:
    """A model saved as plain run artifacts (MLmodel under a folder), as older MLflow and custom flows do."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_experiment("mlflow-modules-integration")
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder), artifact_path="exported")
    uri = f"runs:/{run.info.run_id}/exported"
    result = run_module(tmp_path, "mlflow_model_uri_info", {"uri": uri}, connection=connection)
    assert not result.get("failed"), result
    assert result["model_uri"] == uri and "model_id" not in result

    missing = run_module(tmp_path, "mlflow_model_uri_info", {"uri": f"runs:/{run.info.run_id}/nothing"},
                         connection=connection)
    assert missing["failed"] is True and "has no model 'nothing'" in missing["msg"], missing


def test_model_uri_info_names_bad_uris(tmp_path: Path, connection: dict[str, t.Any]) -> None:
    unknown_run = run_module(tmp_path, "mlflow_model_uri_info", {"uri": "runs:/" + "0" * 32 + "/model"},
                             connection=connection)
    assert unknown_run["failed"] is True and unknown_run["status"] == 404, unknown_run
    assert "run " + "0" * 32 in unknown_run["msg"]
    for bad in ("models:/iris", "runs:/not-a-run/model", "runs:/" + "a" * 32, "s3://bucket/model",
                "models:/iris@v3", "models:/iris/0"):
        result = run_module(tmp_path, "mlflow_model_uri_info", {"uri": bad}, connection=connection)
        assert result["failed"] is True and result["msg"].startswith("invalid uri: a model URI must be"), result
        assert "status" not in result, f"{bad} reached the server: {result}"


def test_user_lifecycle(
    tmp_path: Path, connection: dict[str, t.Any], mlflow_server: MlflowServer, registered_model: dict[int, str]
) -> None:
    """mlflow_user creates a user with grants, changes nothing the second time, tells the truth in check mode,
    moves a changed password and permission, purges what is no longer listed, and deletes the user."""
    password = secrets.token_urlsafe(18)
    model_grant = {"resource_type": "registered_model", "resource_id": MODEL_NAME, "permission": "READ"}
    experiment_grant = {"resource_type": "experiment", "resource_id": "0", "permission": "READ"}
    user = {"name": "svc-reader", "user_password": password, "permissions": [model_grant, experiment_grant],
            "purge_permissions": True}

    created = run_module(tmp_path, "mlflow_user", user, connection=connection, diff=True)
    assert not created.get("failed"), created
    assert created["changed"] and created["actions"] == [
        "create user", "grant READ on experiment 0", f"grant READ on registered_model {MODEL_NAME}"], created
    assert password not in json.dumps(created)
    again = run_module(tmp_path, "mlflow_user", user, connection=connection)
    assert not again.get("failed") and not again["changed"], again

    # The user logs in with that password, reads, and cannot write.
    reader = {**connection, "username": "svc-reader", "password": password}
    info = run_module(tmp_path, "mlflow_model_version_info", {"name": MODEL_NAME, "version": 1}, connection=reader)
    assert not info.get("failed"), info
    refused = run_module(tmp_path, "mlflow_model_alias", {"name": MODEL_NAME, "alias": "svc", "version": 1},
                         connection=reader)
    assert refused["failed"] and refused["status"] == 403, refused

    new_password = secrets.token_urlsafe(18)
    changed = {**user, "user_password": new_password, "permissions": [{**model_grant, "permission": "EDIT"}]}
    preview = run_module(tmp_path, "mlflow_user", changed, connection=connection, check=True, diff=True)
    assert preview["changed"] and preview["actions"] == [
        "set password", "revoke the grant on experiment 0", f"revoke the grant on registered_model {MODEL_NAME}",
        f"grant EDIT on registered_model {MODEL_NAME}"], preview
    assert preview["diff"]["after"]["permissions"] == [f"EDIT on registered_model {MODEL_NAME}"], preview
    assert new_password not in json.dumps(preview)
    still = run_module(tmp_path, "mlflow_user", user, connection=connection)
    assert not still["changed"], f"check mode changed something: {still}"

    applied = run_module(tmp_path, "mlflow_user", changed, connection=connection)
    assert applied["changed"] and applied["actions"] == preview["actions"], applied
    assert not run_module(tmp_path, "mlflow_user", changed, connection=connection)["changed"]
    grants = mlflow_server.api("GET", "/api/3.0/mlflow/users/permissions/list?username=svc-reader")["permissions"]
    assert [(g["resource_type"], g["resource_pattern"], g["permission"]) for g in grants] == [
        ("registered_model", MODEL_NAME, "EDIT")], grants

    gone = run_module(tmp_path, "mlflow_user", {"name": "svc-reader", "state": "absent"}, connection=connection)
    assert gone["changed"] and gone["actions"] == ["delete user"], gone
    assert not run_module(tmp_path, "mlflow_user", {"name": "svc-reader", "state": "absent"},
                          connection=connection)["changed"]
    missing = run_module(tmp_path, "mlflow_user", {"name": "nobody"}, connection=connection)
    assert missing["failed"] and "give user_password to create it" in missing["msg"], missing
