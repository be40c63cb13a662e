"""Run playbooks from tests the way users do (ansible-playbook), and read the recap."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PlaybookResult:
    rc: int
    output: str

    @property
    def text(self) -> str:
        """The output with every run of whitespace made one space (callbacks wrap long messages)."""
        return " ".join(self.output.split())

    @property
    def changed(self) -> int:
        match = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", self.output)
        assert match, f"no play recap in the output:\n{self.output[-3000:]}"
        return int(match.group(1))


def run_playbook(playbook: str | Path, extra_vars: dict | None = None,
                 inventory: str = "tests/integration/inventory.yml", check: bool = False,
                 timeout: int = 1200) -> PlaybookResult:
    args = ["ansible-playbook", "-i", str(ROOT / inventory), str(ROOT / playbook)]
    if check:
        args += ["--check", "--diff"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(extra_vars or {}, f)
    args += ["-e", f"@{f.name}"]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0"}
    try:
        proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        os.unlink(f.name)
    return PlaybookResult(proc.returncode, proc.stdout + proc.stderr)
