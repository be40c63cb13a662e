"""Draw docs/benchmarks-*.svg from benchmarks/results/*.json (plain SVG bars; no plotting library needed)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bars(title: str, unit: str, values: dict[str, float]) -> str:
    width, bar_h, gap, left = 640, 26, 12, 230
    top = 40
    height = top + len(values) * (bar_h + gap) + 20
    peak = max(values.values()) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="Helvetica" '
             f'font-size="12">', f'<text x="10" y="22" font-size="14" font-weight="bold">{title}</text>']
    for i, (label, value) in enumerate(values.items()):
        y = top + i * (bar_h + gap)
        length = (width - left - 90) * value / peak
        parts.append(f'<text x="10" y="{y + 17}">{label}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar_h}" fill="#4a7bd0"/>')
        parts.append(f'<text x="{left + length + 6:.1f}" y="{y + 17}">{value:g} {unit}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    results = ROOT / "benchmarks" / "results"
    serving = json.loads((results / "serving.json").read_text())
    labels = {"mlflow_models_serve_default": "mlflow models serve (defaults)", "role_workers_1": "role pod (1 worker)",
              "role_workers_2": "role pod (2 workers)"}
    for metric, unit, title in (("rps", "req/s", "Predictions per second, one pod, 1 CPU"),
                                ("p99_ms", "ms", "p99 latency, one pod, 1 CPU")):
        values = {labels[k]: serving[k][metric] for k in labels if k in serving}
        (ROOT / "docs" / f"benchmarks-serving-{metric}.svg").write_text(bars(title, unit, values))
    converge = json.loads((results / "converge.json").read_text())
    values = {"role: first converge to Ready": converge["role_first_converge_s"],
              "kubectl apply to Ready": converge["kubectl_first_apply_to_ready_s"],
              "role: no-op converge (median)": sorted(converge["role_noop_converge_s"])[1],
              "kubectl apply no-op (median)": sorted(converge["kubectl_noop_apply_s"])[1]}
    (ROOT / "docs" / "benchmarks-converge.svg").write_text(bars("mlflow_server converge", "s", values))


if __name__ == "__main__":
    main()
