"""Continuous traffic for tests that must not drop a request: raw HTTP, no client-side retries."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request


class Load:
    """About `rate` requests per second from a few threads; every failure is counted and kept."""

    def __init__(self, rate: int = 100, threads: int = 4) -> None:
        self.rate = rate
        self.sent = self.failed = 0
        self.answers: list = []
        self.timeline: list[tuple[float, object]] = []  # (time.time() when answered, answer), in order
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for index in range(threads)]

    def request(self):  # one request; returns the answer or raises
        raise NotImplementedError

    def _run(self) -> None:
        interval = len(self._threads) / self.rate
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                answer = self.request()
                with self._lock:
                    self.answers.append(answer)
                    self.timeline.append((time.time(), answer))
            except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
                with self._lock:
                    self.failed += 1
                    self.errors.append(f"{time.strftime('%T')} {exc}")
            with self._lock:
                self.sent += 1
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join()


class PredictionLoad(Load):
    def __init__(self, url: str, frame, rate: int = 100, host: str = "") -> None:
        super().__init__(rate)
        body = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
        self.url, self.body = url, json.dumps(body).encode()
        self.headers = {"Content-Type": "application/json", **({"Host": host} if host else {})}

    def request(self):
        req = urllib.request.Request(self.url, data=self.body, headers=self.headers)
        with urllib.request.urlopen(req, timeout=10) as response:
            return json.loads(response.read())["predictions"][0]


class TrackingLoad(Load):
    """Logs a metric to one run over and over through the tracking REST API, with basic auth."""

    def __init__(self, base_url: str, password: str, run_id: str, rate: int = 30) -> None:
        super().__init__(rate, threads=3)
        self.url = f"{base_url}/api/2.0/mlflow/runs/log-metric"
        self.auth = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
        self.run_id = run_id

    def request(self):
        body = json.dumps({"run_id": self.run_id, "key": "load", "value": 1.0,
                           "timestamp": int(time.time() * 1000), "step": 0}).encode()
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json",
                                                                   "Authorization": self.auth})
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status
