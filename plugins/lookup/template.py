# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: template
short_description: A template file rendered with the task's variables, without copying them
version_added: 0.2.0
description:
  - Returns the text of each template file named, rendered with every variable of the task, as
    C(ansible.builtin.template) renders it (found in the role's C(templates/) folder and the search path,
    C({% include %}) resolved there, blocks trimmed, backslashes kept).
  - The builtin lookup deep-copies all the task's variables for every file it renders (measured 16 to 120 ms a
    file on the bundled cluster, a second of each no-op converge); this one lays an empty layer over them instead.
    It does not add C(template_path), C(template_host) or C(ansible_managed), which the collection's templates do
    not use.
options:
  _terms:
    description: The template files, by name (for example C(deployment.yaml.j2)).
    required: true
  template_vars:
    description: Variables for the templates only, over the task's.
    type: dict
    default: {}
"""

EXAMPLES = r"""
definitions:
  - "{{ lookup('mlplatform.mlflow.template', 'deployment.yaml.j2') | ansible.builtin.from_yaml }}"
  - "{{ lookup('mlplatform.mlflow.template', 'deployment.yaml.j2', template_vars={'track': 'candidate'}) | from_yaml }}"
"""

RETURN = r"""
_raw:
  description: The rendered text of each file.
  type: list
  elements: str
"""

import collections
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.template import trust_as_template


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        self.set_options(var_options=variables, direct=kwargs)
        layer = self.get_option("template_vars")
        rendered = []
        for name in terms:
            path = self.find_file_in_search_path(variables, "templates", name)
            if not path:
                raise AnsibleLookupError(f"the template file {name} was not found in the search path")
            # {% include %} looks beside the file first, then in each search path's templates/ folder and itself.
            searchpath = [os.path.dirname(path)]
            for folder in variables.get("ansible_search_path", []):
                searchpath += [os.path.join(folder, "templates"), folder]
            templar = self._templar.copy_with_new_env(available_variables=collections.ChainMap(dict(layer), variables),
                                                      searchpath=searchpath)
            source = trust_as_template(self._loader.get_text_file_contents(path))
            rendered.append(templar.template(source, escape_backslashes=False))
        return rendered
