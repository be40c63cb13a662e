# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canary analysis of a served model: its pods' own request metrics, read over a window, stable against canary.

The scoring server (images/mlflow/mlplatform_scoring.py) counts every prediction request by HTTP status and times
it in a histogram, per pod, on its metrics port. The analysis reads each pod of the model through the API server's
proxy at the start of the window and again at each interval, and compares each track's requests answered since:
a pod that restarted (its counters went down) counts from zero, a pod that appeared counts from zero too.
Pure functions but `read_tracks` and `analyse`; the module and its action call `run`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s
from ansible_collections.mlplatform.mlflow.plugins.module_utils.k8s_client import Client, K8sError

REQUESTS = "mlplatform_serving_requests_total"
BUCKETS = "mlplatform_serving_request_duration_seconds_bucket"
METRICS_PORT = 9090
TRACK_LABEL = "mlplatform.mlflow/track"
# Fewer canary answers than this never fail a window early: a first error must not end a promotion by itself.
EARLY_VERDICT_REQUESTS = 50

ANALYSIS_SPEC: dict[str, Any] = {
    **k8s.CONNECTION_SPEC,
    "namespace": {"type": "str", "required": True},
    "name": {"type": "str", "required": True},
    "hold_seconds": {"type": "int", "default": 60},
    "interval_seconds": {"type": "int", "default": 5},
    "max_error_rate": {"type": "float", "default": 0.01},
    "max_p99_ms": {"type": "float", "default": 1000.0},
    "min_requests": {"type": "int", "default": 0},
}

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class AnalysisError(Exception):
    """The window could not be read or judged; the message says why."""


def parse_metrics(text: str) -> dict[str, dict[str, float]]:
    """A pod's counts since it started: requests by status ({"200": n}) and the duration histogram ({le: n})."""
    requests: dict[str, float] = {}
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) not in (REQUESTS, BUCKETS):
            continue
        labels = dict(_LABEL.findall(match.group(2)))
        value = float(match.group(3))
        if match.group(1) == REQUESTS:
            requests[labels.get("status", "")] = requests.get(labels.get("status", ""), 0.0) + value
        else:
            buckets[labels.get("le", "")] = buckets.get(labels.get("le", ""), 0.0) + value
    return {"requests": requests, "buckets": buckets}


def _minus(last: dict[str, float], first: dict[str, float]) -> dict[str, float]:
    return {key: value - first.get(key, 0.0) for key, value in last.items()}


def since(first: dict[str, dict], last: dict[str, dict]) -> dict[str, dict[str, float]]:
    """One track's counts between two reads ({pod: parse_metrics(...)}), summed over its pods."""
    total: dict[str, dict[str, float]] = {"requests": {}, "buckets": {}}
    for pod, now in last.items():
        before = first.get(pod, {"requests": {}, "buckets": {}})
        if sum(now["requests"].values()) < sum(before["requests"].values()):  # the pod restarted
            before = {"requests": {}, "buckets": {}}
        for part in ("requests", "buckets"):
            for key, value in _minus(now[part], before[part]).items():
                total[part][key] = total[part].get(key, 0.0) + value
    return total


def quantile(q: float, buckets: dict[str, float]) -> float | None:
    """The q-quantile of a cumulative histogram in seconds, interpolated in its bucket as Prometheus's
    histogram_quantile does; None without observations."""
    bounds = sorted(((math.inf if le == "+Inf" else float(le)), count) for le, count in buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = q * bounds[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in bounds:
        if count >= rank:
            if math.isinf(upper_bound):
                return lower_bound  # beyond the last finite bucket: its bound is all that is known
            if count == lower_count:
                return upper_bound
            return lower_bound + (upper_bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = upper_bound, count
    return lower_bound


def summary(counts: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Requests answered, server errors (5xx) among them, their share, and the p99 in milliseconds."""
    requests = round(sum(counts["requests"].values()))
    errors = round(sum(v for status, v in counts["requests"].items() if status.startswith("5")))
    p99 = quantile(0.99, counts["buckets"])
    return {"requests": requests, "errors": errors, "error_rate": round(errors / requests, 4) if requests else 0.0,
            "p99_ms": round(p99 * 1000, 1) if p99 is not None else None}


def describe(track: str, figures: dict[str, Any]) -> str:
    p99 = "no p99" if figures["p99_ms"] is None else f"p99 {figures['p99_ms']} ms"
    return (f"{track}: {figures['requests']} requests, {figures['errors']} server errors "
            f"(error rate {figures['error_rate']:.2%}), {p99}")


def verdict(canary: dict[str, Any], limits: dict[str, Any], final: bool) -> str:
    """Why the canary fails the window ("" when it passes); before the end only an error rate measured over
    enough requests decides."""
    if canary["requests"] and canary["error_rate"] > limits["max_error_rate"] and (
            final or canary["requests"] >= max(limits["min_requests"], EARLY_VERDICT_REQUESTS)):
        return f"error rate {canary['error_rate']:.2%} is above max_error_rate {limits['max_error_rate']:.2%}"
    if not final:
        return ""
    if canary["p99_ms"] is not None and canary["p99_ms"] > limits["max_p99_ms"]:
        return f"p99 {canary['p99_ms']} ms is above max_p99_ms {limits['max_p99_ms']} ms"
    if canary["requests"] < limits["min_requests"]:
        return f"only {canary['requests']} requests reached it, fewer than min_requests {limits['min_requests']}"
    return ""


def read_tracks(client: Client, namespace: str, name: str) -> dict[str, dict[str, dict]]:
    """Each track's running pods of the served model, each with its counts: {track: {pod: parse_metrics()}}."""
    pods = k8s.list_objects(client, "v1", "Pod", namespace,
                            f"app.kubernetes.io/instance={name},app.kubernetes.io/component=model-server")
    tracks: dict[str, dict[str, dict]] = {}
    for pod in pods:
        meta = pod["metadata"]
        if pod.get("status", {}).get("phase") != "Running" or meta.get("deletionTimestamp"):
            continue
        path = f"/api/v1/namespaces/{namespace}/pods/{meta['name']}:{METRICS_PORT}/proxy/metrics"
        try:
            text = client.request("GET", path, text=True)
        except K8sError:
            continue  # not serving metrics yet (starting) or already stopping: its requests are not the window's
        tracks.setdefault(meta.get("labels", {}).get(TRACK_LABEL, ""), {})[meta["name"]] = parse_metrics(text)
    return tracks


def analyse(client: Client, params: dict[str, Any], clock: Callable[[], float] = time.time,
            sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Hold the window and judge the canary: {"canary": figures, "stable": figures, "share", "window", "problem"}."""
    namespace, name = params["namespace"], params["name"]
    started = clock()
    first = read_tracks(client, namespace, name)
    if not first.get("canary"):
        raise AnalysisError(f"{namespace}/{name}: no running canary pod answers on its metrics port")
    deadline = started + params["hold_seconds"]
    while True:
        now = clock()
        final = now >= deadline
        last = read_tracks(client, namespace, name)
        figures = {track: summary(since(first.get(track, {}), last.get(track, {})))
                   for track in ("canary", "stable")}
        problem = verdict(figures["canary"], params, final)
        if problem or final:
            break
        sleep(max(0.0, min(params["interval_seconds"], deadline - now)))
    answered = figures["canary"]["requests"] + figures["stable"]["requests"]
    return {**figures, "problem": problem,
            "share": round(figures["canary"]["requests"] / answered, 4) if answered else None,
            "window": {"start": round(started, 3), "end": round(now, 3), "seconds": round(now - started, 1)},
            "summary": f"{describe('candidate', figures['canary'])}; {describe('stable', figures['stable'])}"}


def run(client: Client, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """The module's result: the figures, failed with them in the message when the canary fails the window."""
    if check_mode:
        return {"changed": False, "msg": "check mode: no window held"}
    result = analyse(client, params)
    if result["problem"]:
        return {"changed": False, "failed": True, **result,
                "msg": f"the candidate of {params['name']} failed its analysis: {result['problem']} "
                       f"after {result['window']['seconds']} s ({result['summary']})"}
    return {"changed": False, **result}
