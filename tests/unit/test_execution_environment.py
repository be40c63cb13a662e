"""The collection as AAP and AWX users get it: its tarball, the execution environment's build context
(ansible-builder 3 `create`, which pulls nothing) and the dependencies ansible-builder will find in it, and the
checks Galaxy runs on an upload (galaxy-importer, in a virtualenv of its own: it pins an older ansible-core)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MLP_CACHE", "/var/cache/mlplatform"))
GALAXY_IMPORTER = "galaxy-importer==0.4.44"
# The test stack (requirements.txt) that must stay out of the execution environment.
TEST_STACK = ("mlflow", "pytest", "molecule", "ansible-lint", "playwright", "scikit-learn", "ruff",
              "gcp-storage-emulator")


def run(*args: str, env: dict | None = None, timeout: int = 600, cwd: Path = ROOT) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    """The collection built as `make build` builds it, at the path execution-environment.yml names."""
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    run("ansible-galaxy", "collection", "build", "--force", "--output-path", ".cache/dist")
    path = ROOT / ".cache" / "dist" / f"mlplatform-mlflow-{version}.tar.gz"
    assert path.is_file()
    return path


def test_the_build_context_installs_this_collection_on_the_pinned_ansible_core(tarball, tmp_path):
    definition = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    (build_file,) = definition["additional_build_files"]
    assert (ROOT / build_file["src"]) == tarball, "execution-environment.yml names another tarball than galaxy.yml"
    pins = (ROOT / "requirements-runtime.txt").read_text().splitlines()
    core = next(line for line in pins if line.startswith("ansible-core=="))
    assert definition["dependencies"]["ansible_core"]["package_pip"] == core

    context = tmp_path / "context"
    run("ansible-builder", "create", "-f", "execution-environment.yml", "--context", str(context))
    containerfile = next(path for path in (context / "Containerfile", context / "Dockerfile") if path.is_file())
    text = containerfile.read_text()
    assert f'ARG EE_BASE_IMAGE="{definition["images"]["base_image"]["name"]}"' in text
    assert core in text and 'ARG PYCMD="/usr/bin/python3.12"' in text
    assert "ansible-galaxy collection install" in text and "introspect.py introspect" in text
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    (entry,) = requirements["collections"]
    assert entry == {"name": f"collections/{tarball.name}", "type": "file"}
    assert (context / "_build" / "collections" / tarball.name).read_bytes() == tarball.read_bytes()


def test_the_execution_environment_gets_what_site_yml_needs_and_not_the_test_stack(tarball, tmp_path):
    """What ansible-builder's introspection finds once the tarball and the collections it depends on are installed,
    as the image build installs them."""
    collections = tmp_path / "collections"
    run("ansible-galaxy", "collection", "install", "--force", "--no-deps", "-p", str(collections), str(tarball))
    import ansible_collections

    bundled = next(Path(path) for path in ansible_collections.__path__ if (Path(path) / "kubernetes" / "core").is_dir())
    dependencies = yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"]
    assert set(dependencies) == {"kubernetes.core", "community.crypto"}
    for name in dependencies:
        namespace, collection = name.split(".")
        shutil.copytree(bundled / namespace / collection, collections / "ansible_collections" / namespace / collection)
    found = yaml.safe_load(run("ansible-builder", "introspect", "--sanitize", str(collections)).split("\n", 1)[1])
    python = {line.split()[0].split(">")[0].split("=")[0].split("<")[0] for line in found["python"]}
    assert {"kubernetes", "google-auth", "requests", "cryptography"} <= python, python
    assert not python & set(TEST_STACK), python
    assert any(line.startswith("ca-certificates ") for line in found["system"]), found["system"]


def test_galaxy_importer_accepts_the_tarball(tarball, tmp_path):
    venv = CACHE / "galaxy-importer" / GALAXY_IMPORTER.split("==")[1]
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        run(sys.executable, "-m", "venv", str(venv))
        run(str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", GALAXY_IMPORTER)
        (venv / ".complete").touch()
    config = tmp_path / "galaxy-importer.cfg"
    config.write_text("[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = True\n"
                      "REQUIRE_V1_OR_GREATER = False\n")
    # Its ansible-doc and ansible-lint are the virtualenv's own.
    env = {"GALAXY_IMPORTER_CONFIG": str(config), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
           "ANSIBLE_COLLECTIONS_PATH": "", "HOME": str(tmp_path)}
    # (It writes importer_result.json into its working directory.)
    output = run(str(python), "-m", "galaxy_importer.main", str(tarball), env=env, timeout=900, cwd=tmp_path)
    assert "Importer processing completed successfully" in output, output[-3000:]
    assert "ERROR" not in output, [line for line in output.splitlines() if "ERROR" in line]
