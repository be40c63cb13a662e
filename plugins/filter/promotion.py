# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of a model promotion: the registry gates a candidate must pass before it takes any request."""

from __future__ import annotations

from typing import Any

_LIMITS = ("min", "max", "max_regression")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def gate_problems(gates: Any, candidate: dict | None, stable: dict | None) -> list[str] | None:
    if not isinstance(gates, list):
        return None
    problems = []
    for gate in gates:
        limits = [key for key in _LIMITS if key in gate] if isinstance(gate, dict) else []
        if (len(limits) != 1 or not isinstance(gate.get("metric"), str) or not gate["metric"]
                or _number(gate[limits[0]]) is None or not isinstance(gate.get("higher_is_better", True), bool)
                or set(gate) - {"metric", "higher_is_better", *_LIMITS}):
            return None
        metric, kind, limit = gate["metric"], limits[0], _number(gate[limits[0]])
        value = _number((candidate or {}).get(metric))
        if value is None:
            problems.append(f"the candidate's run has no metric {metric}")
        elif kind == "min" and value < limit:
            problems.append(f"{metric} {value:g} is below the gate's min {limit:g}")
        elif kind == "max" and value > limit:
            problems.append(f"{metric} {value:g} is above the gate's max {limit:g}")
        elif kind == "max_regression" and stable is not None:
            reference = _number(stable.get(metric))
            if reference is None:
                problems.append(f"the stable version's run has no metric {metric} to compare with")
                continue
            higher = gate.get("higher_is_better", True)
            worse_by = (reference - value) if higher else (value - reference)
            if worse_by > limit:
                problems.append(f"{metric} {value:g} is {worse_by:g} worse than the stable version's {reference:g} "
                                f"(max_regression {limit:g})")
    return problems


class FilterModule:
    def filters(self):
        return {"gate_problems": gate_problems}
