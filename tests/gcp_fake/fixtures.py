"""pytest fixtures for the fake; conftest files import them (`from gcp_fake.fixtures import fake_google`)."""

from __future__ import annotations

import collections.abc as cabc

import pytest

from gcp_fake.server import FakeGoogle


@pytest.fixture
def fake_google() -> cabc.Iterator[FakeGoogle]:
    """A fresh fake per test, on a free port of 127.0.0.1. Any contract violation fails the test."""
    fake = FakeGoogle(lro_polls=2).start()
    try:
        yield fake
    finally:
        fake.stop()
    assert not fake.violations, "requests that break Google's published contract:\n" + "\n".join(fake.violations)
