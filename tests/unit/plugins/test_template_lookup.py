"""The collection's template lookup: the task's variables, template_vars over them, includes beside the file."""

from __future__ import annotations

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template


def render(tmp_path, expression: str, variables: dict) -> str:
    loader = DataLoader()
    loader.set_basedir(str(tmp_path))
    templar = Templar(loader=loader, variables=variables)
    return templar.template(trust_as_template(expression))


def test_template_vars_lie_over_the_task_variables_which_stay_as_they_were(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "deployment.j2").write_text("{{ name }}-{{ track | default('stable') }}\n{% include 'part.j2' %}\n")
    (templates / "part.j2").write_text("part of {{ name }}: \\d+\n")
    variables = {"name": trust_as_template("iris"), "ansible_search_path": [str(tmp_path)]}
    stable = render(tmp_path, "{{ lookup('mlplatform.mlflow.template', 'deployment.j2') }}", variables)
    candidate = render(tmp_path, "{{ lookup('mlplatform.mlflow.template', 'deployment.j2', "
                                 "template_vars={'track': 'candidate'}) }}", variables)
    assert stable == "iris-stable\npart of iris: \\d+\n"  # blocks trimmed, backslashes kept
    assert candidate == "iris-candidate\npart of iris: \\d+\n"
    assert set(variables) == {"name", "ansible_search_path"}
