"""Every Molecule scenario (converge, idempotence, verify, cleanup) on the cluster under test."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario, kubeconfig):
    env = {**os.environ, "KUBECONFIG": kubeconfig, "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0"}
    result = subprocess.run(["molecule", "test", "-s", scenario], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=1800, check=False)
    log = ROOT / ".cache" / "reports" / f"molecule-{scenario}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"molecule test -s {scenario} failed; tail of {log}:\n" + \
        "\n".join((result.stdout + result.stderr).splitlines()[-60:])
