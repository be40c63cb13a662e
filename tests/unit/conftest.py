"""The collection is imported as Ansible imports it: through Ansible's collection loader, set up before any test
module imports it, so that its plugins are found by their full names too (the roles' templates call the
mlplatform.mlflow.template lookup)."""

from __future__ import annotations

from pathlib import Path

from ansible.plugins.loader import init_plugin_loader

init_plugin_loader([str(Path(__file__).resolve().parents[2] / ".cache" / "collections")])
