"""The reliability suite's tally: inputs tried, faults injected, requests sent, failures, connections denied, alerts
fired and resolved, backups restored; printed at the end."""

from __future__ import annotations

from collections import Counter

import pytest

TALLY: Counter = Counter()


@pytest.fixture
def tally() -> Counter:
    return TALLY


def pytest_terminal_summary(terminalreporter):
    if TALLY:
        terminalreporter.write_line(
            f"reliability: {TALLY['inputs']} bad inputs tried, {TALLY['faults']} faults injected, "
            f"{TALLY['requests']} requests sent, {TALLY['failed_requests']} failed requests, "
            f"{TALLY['secret_leaks']} secret leaks, {TALLY['policy_denials']} connections NetworkPolicies denied, "
            f"{TALLY['alerts']} alerts fired and resolved, {TALLY['restores']} backups restored")
