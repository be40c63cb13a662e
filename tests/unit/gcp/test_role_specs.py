"""The GCP roles' public interface: argument_specs and defaults agree, variables are prefixed, templates render."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLES = ["gcp_resources", "cloudsql_db", "workload_identity"]


def load(path: Path):
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("role", ROLES)
def test_defaults_equal_argument_spec_defaults(role):
    spec = load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = load(ROOT / "roles" / role / "defaults" / "main.yml")
    spec_defaults = {name: opt["default"] for name, opt in spec.items() if "default" in opt}
    assert defaults == spec_defaults
    required = {name for name, opt in spec.items() if opt.get("required")}
    assert not required & set(defaults), "a required variable has no default"
    assert set(spec) == set(defaults) | required, "every option is either defaulted or required"


@pytest.mark.parametrize("role", ROLES)
def test_every_variable_is_prefixed_typed_and_documented(role):
    specs = load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
    for entry in specs.values():
        for name, opt in entry["options"].items():
            assert name.startswith(f"{role}_"), name
            assert opt.get("type") and opt.get("description"), name
            if opt["type"] == "list":
                assert opt.get("elements"), name
    for path in (ROOT / "roles" / role / "vars").glob("*.yml"):
        assert all(name.startswith(f"_{role}_") for name in load(path)), path


def test_serviceaccount_template_renders_annotated_objects():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT / "roles" / "workload_identity" / "templates"))
    text = env.get_template("serviceaccounts.yaml.j2").render(
        workload_identity_namespace="mlflow",
        workload_identity_instance="mlflow",
        _workload_identity_accounts=[
            {"component": "server", "ksa": "mlflow-server", "gsa": "mlflow-server@p-123456.iam.gserviceaccount.com"},
            {"component": "serving", "ksa": "mlflow-serving", "gsa": "mlflow-serving@p-123456.iam.gserviceaccount.com"},
        ],
    )
    objects = [o for o in yaml.safe_load_all(text) if o]
    assert [o["metadata"]["name"] for o in objects] == ["mlflow-server", "mlflow-serving"]
    for obj in objects:
        assert obj["kind"] == "ServiceAccount" and obj["metadata"]["namespace"] == "mlflow"
        assert obj["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].startswith(
            obj["metadata"]["name"] + "@"
        )
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlplatform.mlflow"
        assert obj["automountServiceAccountToken"] is False


def test_group_vars_example_sets_every_required_variable():
    example = load(ROOT / "tests" / "integration" / "gcp" / "group_vars_example.yml")
    for role in ROLES:
        spec = load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
        required = {name for name, opt in spec.items() if opt.get("required")}
        assert required <= set(example), (role, required - set(example))
