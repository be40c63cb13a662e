"""A scripted stand-in for ansible's open_url, and a helper that runs a module's main()."""

from __future__ import annotations

import io
import json
import typing as t
import urllib.error
from collections import deque
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import parse_qs, urlsplit

import pytest
from ansible.module_utils.testing import patch_module_args

API = "/api/2.0/mlflow/"
BASE = "http://mlflow.test:5000"


@dataclass
class Call:
    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, t.Any] | None
    kwargs: dict[str, t.Any]

    @property
    def endpoint(self) -> str:
        path = urlsplit(self.url).path
        return path.split(API, 1)[1]

    @property
    def query(self) -> dict[str, str]:
        return {
            key: values[0] for key, values in parse_qs(urlsplit(self.url).query).items()
        }


class Response:
    def __init__(self, payload: t.Any) -> None:
        self._raw = (
            payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        )

    def read(self) -> bytes:
        return self._raw


def http_error(
    status: int, body: t.Any = b"", headers: dict[str, str] | None = None
) -> urllib.error.HTTPError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    message = Message()
    for key, value in (headers or {}).items():
        message[key] = value
    return urllib.error.HTTPError(
        f"{BASE}/x", status, "error", message, io.BytesIO(raw)
    )


def mlflow_error(status: int, error_code: str, message: str) -> urllib.error.HTTPError:
    return http_error(status, {"error_code": error_code, "message": message})


Outcome = dict | bytes | BaseException | t.Callable[[Call], t.Any]


@dataclass
class FakeOpener:
    """Answers (METHOD, endpoint) from scripted queues; records every call.

    A queue's last outcome repeats once the queue is down to one item.
    """

    routes: dict[tuple[str, str], deque[Outcome]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def on(self, method: str, endpoint: str, *outcomes: Outcome) -> FakeOpener:
        self.routes[(method, endpoint)] = deque(outcomes)
        return self

    def __call__(
        self, url: str, data: bytes | None = None, headers=None, method=None, **kwargs
    ):
        body = json.loads(data) if data else None
        call = Call(method or "GET", url, dict(headers or {}), body, kwargs)
        self.calls.append(call)
        queue = self.routes.get((call.method, call.endpoint))
        if not queue:
            raise AssertionError(f"unexpected request {call.method} {call.url}")
        outcome = queue.popleft() if len(queue) > 1 else queue[0]
        if callable(outcome) and not isinstance(outcome, BaseException):
            outcome = outcome(call)
        if isinstance(outcome, urllib.error.HTTPError):
            outcome.fp.seek(0)  # the same scripted error may be raised again
        if isinstance(outcome, BaseException):
            raise outcome
        return Response(outcome)

    def requests(self, method: str | None = None) -> list[tuple[str, str]]:
        return [
            (c.method, c.endpoint) for c in self.calls if method in (None, c.method)
        ]


def model_version(
    version: int, *, status: str = "READY", aliases: list[str] | None = None
) -> dict:
    return {
        "name": "iris",
        "version": str(version),
        "creation_timestamp": 1764154800000 + version,
        "last_updated_timestamp": 1764154800000 + version,
        "current_stage": "None",
        "description": "",
        "source": f"models:/m-{version:032x}",
        "run_id": f"run{version}",
        "status": status,
        "tags": [{"key": "validated", "value": "true"}],
        "aliases": aliases or [],
    }


def registered_model(aliases: dict[str, int] | None = None) -> dict:
    return {
        "registered_model": {
            "name": "iris",
            "aliases": [
                {"alias": alias, "version": str(version)}
                for alias, version in (aliases or {}).items()
            ],
        }
    }


def run_main(
    main: t.Callable[[], None],
    args: dict[str, t.Any],
    capsys: pytest.CaptureFixture[str],
) -> dict[str, t.Any]:
    """Run a module's main() with ``args``; return its exit/fail JSON (``failed`` set on failure)."""
    with patch_module_args(args), pytest.raises(SystemExit) as exited:
        main()
    result = json.loads(capsys.readouterr().out)
    assert (exited.value.code != 0) == bool(result.get("failed")), result
    return result
