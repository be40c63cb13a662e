"""The canary analysis: reading the scoring server's metrics, counting a window, and judging the candidate."""

from __future__ import annotations

import pytest

from ansible_collections.mlplatform.mlflow.plugins.module_utils import serving_analysis as sa

LIMITS = {"max_error_rate": 0.01, "max_p99_ms": 100.0, "min_requests": 0}


def exposition(ok: int, errors: int, buckets: dict[str, int]) -> str:
    """What a pod of the scoring server answers on /metrics (prometheus_client, multiprocess)."""
    lines = ["# HELP mlplatform_serving_requests_total Prediction requests answered, by HTTP status.",
             "# TYPE mlplatform_serving_requests_total counter",
             f'mlplatform_serving_requests_total{{model="iris",status="200",version="2"}} {float(ok)}']
    if errors:
        lines.append(f'mlplatform_serving_requests_total{{model="iris",status="500",version="2"}} {float(errors)}')
    lines += [f'mlplatform_serving_request_duration_seconds_bucket{{le="{le}",model="iris",version="2"}} {float(n)}'
              for le, n in buckets.items()]
    lines.append('mlplatform_serving_batch_size_bucket{le="1.0",model="iris",version="2"} 7.0')
    return "\n".join(lines) + "\n"


def test_parse_metrics_reads_requests_by_status_and_the_duration_histogram():
    parsed = sa.parse_metrics(exposition(90, 10, {"0.005": 80, "0.01": 99, "+Inf": 100}))
    assert parsed == {"requests": {"200": 90.0, "500": 10.0}, "buckets": {"0.005": 80.0, "0.01": 99.0, "+Inf": 100.0}}


def test_a_window_counts_each_pod_since_the_first_read_and_a_restarted_or_new_pod_from_zero():
    first = {"a": sa.parse_metrics(exposition(100, 0, {"+Inf": 100})),
             "b": sa.parse_metrics(exposition(500, 0, {"+Inf": 500}))}
    last = {"a": sa.parse_metrics(exposition(150, 5, {"+Inf": 155})),
            "b": sa.parse_metrics(exposition(20, 0, {"+Inf": 20})),  # restarted
            "c": sa.parse_metrics(exposition(7, 0, {"+Inf": 7}))}  # new
    counted = sa.since(first, last)
    assert counted["requests"] == {"200": 50 + 20 + 7, "500": 5}
    assert counted["buckets"] == {"+Inf": 55 + 20 + 7}


def test_quantile_interpolates_within_the_bucket_as_prometheus_does():
    buckets = {"0.001": 0, "0.0025": 50, "0.005": 90, "0.01": 100, "+Inf": 100}
    assert sa.quantile(0.5, buckets) == pytest.approx(0.0025)
    assert sa.quantile(0.99, buckets) == pytest.approx(0.005 + 0.005 * 9 / 10)
    assert sa.quantile(0.99, {"0.01": 0, "+Inf": 10}) == 0.01  # beyond the last bound: the bound
    assert sa.quantile(0.99, {"+Inf": 0}) is None


def test_summary_counts_server_errors_only():
    figures = sa.summary({"requests": {"200": 90, "400": 5, "503": 5}, "buckets": {"0.01": 100, "+Inf": 100}})
    assert figures == {"requests": 100, "errors": 5, "error_rate": 0.05, "p99_ms": 9.9}


@pytest.mark.parametrize("canary, final, problem", [
    ({"requests": 60, "errors": 30, "error_rate": 0.5, "p99_ms": 5.0}, False, "error rate 50.00%"),
    ({"requests": 10, "errors": 5, "error_rate": 0.5, "p99_ms": 5.0}, False, ""),  # too few to stop early
    ({"requests": 10, "errors": 5, "error_rate": 0.5, "p99_ms": 5.0}, True, "error rate 50.00%"),
    ({"requests": 600, "errors": 0, "error_rate": 0.0, "p99_ms": 250.0}, False, ""),  # p99 judged at the end
    ({"requests": 600, "errors": 0, "error_rate": 0.0, "p99_ms": 250.0}, True, "p99 250.0 ms"),
    ({"requests": 0, "errors": 0, "error_rate": 0.0, "p99_ms": None}, True, ""),
])
def test_verdict(canary, final, problem):
    assert sa.verdict(canary, LIMITS, final).startswith(problem)
    assert bool(sa.verdict(canary, LIMITS, final)) == bool(problem)


def test_too_few_requests_fail_when_a_minimum_is_asked():
    canary = {"requests": 3, "errors": 0, "error_rate": 0.0, "p99_ms": 5.0}
    assert "fewer than min_requests 50" in sa.verdict(canary, {**LIMITS, "min_requests": 50}, True)


class FakeCluster:
    """Pods of two tracks whose counters grow at each read, through the proxy path the analysis uses."""

    def __init__(self, canary_errors_per_read: int):
        self.reads = 0
        self.canary_errors = canary_errors_per_read
        self.pods = [{"metadata": {"name": name, "labels": {sa.TRACK_LABEL: track}}, "status": {"phase": "Running"}}
                     for name, track in (("iris-1", "stable"), ("iris-2", "stable"), ("iris-canary-1", "canary"))]

    def resource(self, api_version, kind):
        return ("pods", True)

    def namespaced(self, api_version, kind):
        return True

    def path(self, api_version, kind, namespace=None, name=None):
        return f"/api/v1/namespaces/{namespace}/pods"

    def request(self, method, path, body=None, query=None, content_type="", text=False):
        if not text:
            self.reads += 1
            return {"items": self.pods}
        n = self.reads
        if "canary" in path:
            return exposition(10 * n, self.canary_errors * n, {"0.005": 10 * n, "+Inf": (10 + self.canary_errors) * n})
        return exposition(45 * n, 0, {"0.005": 45 * n, "+Inf": 45 * n})


def analyse(cluster: FakeCluster, hold: int) -> dict:
    clock = iter(range(0, 1000, 5))
    return sa.analyse(cluster, {"namespace": "s", "name": "iris", "hold_seconds": hold, "interval_seconds": 5,
                                **LIMITS}, clock=lambda: float(next(clock)), sleep=lambda seconds: None)


def test_a_healthy_canary_holds_the_whole_window_and_its_share_is_reported():
    result = analyse(FakeCluster(canary_errors_per_read=0), hold=20)
    assert result["problem"] == "" and result["window"]["seconds"] == 20.0
    assert result["canary"]["requests"] == 40 and result["stable"]["requests"] == 2 * 45 * 4
    assert result["share"] == pytest.approx(40 / (40 + 360), abs=1e-4)


def test_a_canary_with_server_errors_fails_as_soon_as_enough_requests_show_it():
    result = analyse(FakeCluster(canary_errors_per_read=10), hold=600)
    assert result["problem"].startswith("error rate 50.00%")
    assert result["window"]["seconds"] < 30  # 50 requests, not the whole 600 s


def test_no_canary_pod_is_an_error():
    cluster = FakeCluster(0)
    cluster.pods = cluster.pods[:2]
    with pytest.raises(sa.AnalysisError, match="no running canary pod"):
        analyse(cluster, hold=10)
