"""Shared fixtures for the unit and module tests of the gcp_* modules and module_utils/google.py."""

from __future__ import annotations

import json
import sys
import typing as t
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
for extra in (ROOT / ".cache" / "collections", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from ansible.module_utils.testing import patch_module_args  # noqa: E402 - after the sys.path set-up above
from gcp_fake import fixtures  # noqa: E402 - after the sys.path set-up above
from gcp_fake.server import FakeGoogle  # noqa: E402 - after the sys.path set-up above

PROJECT = "mlp-staging"
fake_google = fixtures.fake_google  # the fixture, made visible to these tests


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff sleeps of the client instead of sleeping."""
    from ansible_collections.mlplatform.mlflow.plugins.module_utils import google

    slept: list[float] = []
    monkeypatch.setattr(google.time, "sleep", slept.append)
    return slept


@pytest.fixture
def run_module(
    fake_google: FakeGoogle, capsys: pytest.CaptureFixture[str], no_sleep: list[float]
) -> t.Callable[..., dict]:
    """Run a module's main() against the fake with the given options; return its exit or fail JSON."""

    def run(module: t.Any, args: dict, *, check: bool = False, diff: bool = True, auth: dict | None = None) -> dict:
        full = {
            "project": PROJECT,
            "endpoint_overrides": fake_google.endpoint_overrides,
            **(auth or {"auth_kind": "accesstoken", "access_token": "test-token"}),
            **args,
            "_ansible_check_mode": check,
            "_ansible_diff": diff,
        }
        with patch_module_args(full), pytest.raises(SystemExit) as exc:
            module.main()
        result = json.loads(capsys.readouterr().out)
        result["exit_code"] = exc.value.code
        return result

    return run
