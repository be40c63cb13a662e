"""The tracking server pod's Prometheus metrics, without a login: the server pod's `metrics` container.

MLflow's own /metrics sits behind basic-auth, and MLflow 3.17 answers it to admins only (its auth fails closed on
routes without a permission rule), so a scraper would need the admin's password. This container serves the same
series from the files the server's workers write (`--expose-prometheus`: prometheus_client's multiprocess
directory, MLPLATFORM_SERVER_METRICS_DIR, read-only here), and adds whether the database answers the server:
  mlflow_http_request_total, mlflow_http_request_duration_seconds, ...   MLflow's own, summed over its workers
  mlflow_database_up                       1 when the last probe answered, else 0
  mlflow_database_probe_duration_seconds   how long the last probe took
  mlflow_database_probe_failures_total     probes that failed since the container started
The probe runs `SELECT 1` every MLPLATFORM_PROBE_INTERVAL seconds (15), bounded to a few seconds, through the
server's own database URI (and its Cloud SQL proxy, which shares the pod's network). It serves on
MLPLATFORM_METRICS_PORT (9101). A failure is logged with its error class and message only (never the URI).
"""

from __future__ import annotations

import os
import sys
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import create_engine, text


def bounded(uri: str) -> dict:
    """Connection settings under which a probe cannot hang (a hung probe would leave the last answer standing)."""
    if uri.startswith("mysql"):  # PyMySQL
        return {"connect_timeout": 5, "read_timeout": 5, "write_timeout": 5}
    # libpq: the query's own limit, and a dead connection found within about 10 s.
    return {"connect_timeout": 5, "options": "-c statement_timeout=5000", "keepalives": 1, "keepalives_idle": 5,
            "keepalives_interval": 2, "keepalives_count": 2}


class ServerMetrics:
    """MLflow's series from its workers' files; none until the server has created their directory."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self):
        if not os.path.isdir(self.path):
            return []
        return MultiProcessCollector(None, path=self.path).collect()


def main() -> None:
    registry = CollectorRegistry()
    registry.register(ServerMetrics(os.environ["MLPLATFORM_SERVER_METRICS_DIR"]))
    up = Gauge("mlflow_database_up", "1 when the tracking server's database answered the last probe, else 0",
               registry=registry)
    duration = Gauge("mlflow_database_probe_duration_seconds", "How long the last database probe took",
                     registry=registry)
    failures = Counter("mlflow_database_probe_failures", "Database probes that failed", registry=registry)
    interval = float(os.environ.get("MLPLATFORM_PROBE_INTERVAL", "15"))
    # pool_pre_ping: a connection the database dropped while it was away is replaced, not reported as down.
    uri = os.environ["MLFLOW_BACKEND_STORE_URI"]
    engine = create_engine(uri, pool_size=1, max_overflow=0, pool_pre_ping=True, connect_args=bounded(uri))
    start_http_server(int(os.environ.get("MLPLATFORM_METRICS_PORT", "9101")), registry=registry)
    was_up = None
    while True:
        started = time.monotonic()
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            answered = True
        except Exception as exc:  # noqa: BLE001 - any failure means the server cannot use its database either
            answered = False
            failures.inc()
            message = " ".join(str(exc).split())[:300]
            print(f"database probe failed: {type(exc).__name__}: {message}", file=sys.stderr, flush=True)
        duration.set(time.monotonic() - started)
        up.set(1 if answered else 0)
        if answered != was_up:
            print(f"database {'answers' if answered else 'does not answer'}", flush=True)
            was_up = answered
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


if __name__ == "__main__":
    main()
