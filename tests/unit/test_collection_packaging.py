"""The collection builds, and ansible-doc renders every module, filter and role."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())


def test_galaxy_build_produces_a_tarball_without_tests_or_inventories(tmp_path):
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, text=True)
    [tarball] = tmp_path.glob("mlplatform-mlflow-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "plugins/modules/k8s_object_set.py" in names and "roles/mlflow_server/tasks/main.yml" in names
    assert not [n for n in names if n.split("/")[0] in ("tests", "inventories", "molecule", "cluster", "benchmarks")]


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_module(module):
    out = subprocess.run(["ansible-doc", f"mlplatform.mlflow.{module}"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "EXAMPLES" in out.stdout and "RETURN VALUES" in out.stdout


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_renders_role(role):
    out = subprocess.run(["ansible-doc", "-t", "role", f"mlplatform.mlflow.{role}"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "OPTIONS" in out.stdout or "options" in out.stdout.lower()
