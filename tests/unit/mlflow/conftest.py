"""Fixtures for the MLflow client and module unit tests: no network, no sleeping."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The collection imports itself as ansible_collections.mlplatform.mlflow (scripts/bootstrap.sh makes the link).
COLLECTIONS = str(Path(__file__).resolve().parents[3] / ".cache" / "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

from mlflow_unit_fakes import FakeOpener  # noqa: E402 - after the sys.path set-up above

from ansible_collections.mlplatform.mlflow.plugins.module_utils import (  # noqa: E402 - after the sys.path set-up above
    mlflow as mlflow_utils,
)


@pytest.fixture
def fake_mlflow(monkeypatch: pytest.MonkeyPatch) -> FakeOpener:
    """Every request of the modules goes to this fake; retries do not sleep."""
    opener = FakeOpener()
    monkeypatch.setattr(mlflow_utils, "open_url", opener)
    monkeypatch.setattr(mlflow_utils.time, "sleep", lambda seconds: None)
    for name in ("URI", "USERNAME", "PASSWORD", "TOKEN"):
        monkeypatch.delenv(f"MLFLOW_TRACKING_{name}", raising=False)
    return opener
