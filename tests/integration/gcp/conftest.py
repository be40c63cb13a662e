"""Run the GCP roles with ansible-playbook against the discovery-checked fake of Google's APIs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
for extra in (ROOT / ".cache" / "collections", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from gcp_fake.server import FakeGoogle  # noqa: E402 - after the sys.path set-up above

DEPLOYER = "deployer@mlp-staging.iam.gserviceaccount.com"


@dataclasses.dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    recap: dict[str, int]
    writes: int  # write requests the fake received during this run


@pytest.fixture
def fake() -> t.Iterator[FakeGoogle]:
    """The fake with two projects, one poll per operation, and only tokens it issued itself accepted."""
    google = FakeGoogle({"mlp-staging": "123456789012", "mlp-prod": "210987654321"}, lro_polls=1, strict_tokens=True)
    google.start()
    try:
        yield google
    finally:
        google.stop()
    assert not google.violations, "requests that break Google's published contract:\n" + "\n".join(google.violations)


@pytest.fixture
def key_file(fake: FakeGoogle, tmp_path: Path) -> Path:
    """A throwaway service-account key generated now (never committed); its token_uri is the fake."""
    path = tmp_path / "deployer-key.json"
    path.write_text(json.dumps(fake.service_account_key(DEPLOYER)))
    path.chmod(0o600)
    return path


@pytest.fixture
def playbook(fake: FakeGoogle, key_file: Path, tmp_path: Path) -> t.Callable[..., Run]:
    """Run a playbook of this folder with a variables file; return rc, output, recap and the writes it caused."""

    def run(vars_file: str, *, name: str = "converge.yml", check: bool = False, extra: dict | None = None) -> Run:
        extra_vars = {
            "gcp_test_vars_file": str(HERE / vars_file),
            "gcp_test_key_file": str(key_file),
            "gcp_test_endpoint_overrides": fake.endpoint_overrides,
            "workload_identity_manage_kubernetes": False,
            **(extra or {}),
        }
        extra_path = tmp_path / "extra-vars.json"
        extra_path.write_text(json.dumps(extra_vars))
        cmd = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            str(HERE / name),
            "-e",
            f"@{extra_path}",
        ]
        if check:
            cmd += ["--check", "--diff"]
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }
        for key in [k for k in env if k.startswith("GCP_") or k == "GOOGLE_APPLICATION_CREDENTIALS"]:
            del env[key]
        before = len(fake.writes)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        match = re.search(r"localhost\s*:\s*(.*)", proc.stdout.split("PLAY RECAP")[-1])
        recap = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))} if match else {}
        return Run(proc.returncode, proc.stdout, proc.stderr, recap, len(fake.writes) - before)

    return run
