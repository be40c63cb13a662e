"""Every role's defaults and argument_specs agree: a default in argument_specs is documentation only."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
ROLE_NAMES = sorted(p.name for p in ROLES.iterdir() if (p / "meta" / "argument_specs.yml").exists())


def test_all_five_roles_have_an_interface():
    assert ROLE_NAMES == ["cloudsql_db", "gcp_resources", "mlflow_server", "model_serving", "workload_identity"]


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_defaults_equal_argument_spec_defaults(role):
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}
    options = specs["options"]
    documented = {name: o["default"] for name, o in options.items() if "default" in o}
    assert documented == defaults
    for name, option in options.items():
        assert name.startswith(f"{role}_"), f"{name} is not prefixed with the role name"
        assert option.get("description"), f"{name} has no description"
        assert option.get("required") or name in defaults, f"{name} is neither required nor defaulted"


def test_the_cloud_sql_proxy_default_is_the_version_the_local_image_is_built_from():
    import re

    images = (ROLES.parent / "cluster" / "images.sh").read_text()
    built = re.search(r"^CLOUD_SQL_PROXY_VERSION=v(\S+)", images, re.MULTILINE).group(1)
    default = yaml.safe_load((ROLES / "mlflow_server" / "defaults" / "main.yml").read_text())[
        "mlflow_server_cloudsql_proxy_image"]
    assert default == f"gcr.io/cloud-sql-connectors/cloud-sql-proxy:{built}"
