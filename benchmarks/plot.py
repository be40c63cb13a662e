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
    labels = {"mlflow_models_serve_default": "mlflow models serve (defaults)",
              "mlserver_adaptive_batching": "MLServer 1.7.1 (adaptive batching)",
              "mlplatform_unbatched": "role pod, batching off", "mlplatform_batching": "role pod (defaults)"}
    for metric, unit, title in (("rps", "req/s", "Predictions per second, one pod, 1 CPU, 16 clients"),
                                ("p99_ms", "ms", "p99 latency, one pod, 1 CPU, 16 clients"),
                                ("memory_mib", "MiB", "Memory of the pod after the load")):
        values = {labels[k]: serving[k][metric] for k in labels if k in serving}
        (ROOT / "docs" / f"benchmarks-serving-{metric}.svg").write_text(bars(title, unit, values))
    converge = json.loads((results / "converge.json").read_text())
    before_path = results / "converge-before.json"
    before = json.loads(before_path.read_text()) if before_path.exists() else {}
    noop = {"site.yml no-op, before (median)": before.get("noop_site_median_s"),
            "site.yml no-op, now (median)": converge["noop_site_median_s"],
            "site.yml --check --diff, now": converge["check_diff_site_median_s"],
            "helm upgrade no-op (chart)": converge.get("helm_noop_upgrade_median_s"),
            "kubectl apply --server-side no-op": converge["kubectl_noop_apply_median_s"]}
    (ROOT / "docs" / "benchmarks-converge.svg").write_text(
        bars("No-op converge, whole platform with one served model (s)", "s",
             {k: v for k, v in noop.items() if v is not None}))
    first = {"role: server + database to Ready": converge.get("first_converge_role_median_s"),
             "helm install --wait (chart)": converge.get("helm_install_wait_median_s"),
             "kubectl apply to Ready": converge.get("first_apply_kubectl_median_s")}
    (ROOT / "docs" / "benchmarks-converge-first.svg").write_text(
        bars("First converge to Ready (s)", "s", {k: v for k, v in first.items() if v is not None}))

if __name__ == "__main__":
    main()
