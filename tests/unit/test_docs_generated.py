"""docs/variables.md is generated from the roles' argument specs, never edited by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_variables_doc", ROOT / "scripts" / "gen_variables_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_variables_reference_is_up_to_date():
    expected = _generator().render(ROOT)
    actual = (ROOT / "docs" / "variables.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/variables.md differs from the roles' argument specs: run `make docs`"


def test_variables_reference_lists_every_option_of_every_role():
    generator = _generator()
    text = generator.render(ROOT)
    for role, entry_points in generator.load_specs(ROOT).items():
        assert f"## {role}\n" in text
        for spec in entry_points.values():
            for name, option in (spec.get("options") or {}).items():
                assert f"| `{name}` |" in text, f"{role}: {name} missing"
                separator = "[]." if option.get("type") == "list" else "."
                for sub in option.get("options") or {}:
                    assert f"| `{name}{separator}{sub}` |" in text, f"{role}: {name}{separator}{sub} missing"


def test_output_is_deterministic_and_renders_ansible_markup():
    generator = _generator()
    assert generator.render(ROOT) == generator.render(ROOT)
    assert generator.markdown("O(a) C(b|c) V(d) I(e) B(f) U(https://x.y) L(text, https://z)") == \
        "`a` `b\\|c` `d` *e* **f** <https://x.y> [text](https://z)"
