"""inventories/staging and inventories/prod pass `site.yml --check` against the discovery-checked fake.

Only the Google side runs (tags gcp, db, identity; the Kubernetes part of workload_identity is off): check mode
must plan the whole project from empty, report changes, and send not one write request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("environment, project", [("staging", "mlp-staging"), ("prod", "mlp-prod")])
def test_inventory_passes_check_mode_without_writing(fake, key_file, tmp_path, environment, project):
    extra = {"gcp_project": project, "mlplatform_gcp_auth_kind": "serviceaccount",
             "mlplatform_gcp_service_account_file": str(key_file),
             "mlplatform_gcp_endpoint_overrides": fake.endpoint_overrides,
             "workload_identity_manage_kubernetes": False}
    extra_file = tmp_path / "extra.json"
    extra_file.write_text(json.dumps(extra))
    writes_before = len(fake.writes)
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(ROOT / "inventories" / environment),
               str(ROOT / "playbooks" / "site.yml"), "--check", "--diff", "--tags", "gcp,db,identity",
               "-e", f"@{extra_file}"]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "changed=0" not in output.split("PLAY RECAP")[-1], "check mode from an empty project planned nothing"
    assert len(fake.writes) == writes_before, f"check mode sent writes: {fake.writes[writes_before:][:5]}"
