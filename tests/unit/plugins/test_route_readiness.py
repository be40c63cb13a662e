"""k8s_object_set's wait for an HTTPRoute: ready once its Gateways accepted its newest spec."""

from __future__ import annotations

import pytest

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s
from ansible_collections.mlplatform.mlflow.plugins.module_utils.k8s import workload_state


def route(generation: int, conditions: list[dict], parents: int = 1) -> dict:
    return {"kind": "HTTPRoute", "metadata": {"generation": generation},
            "spec": {"parentRefs": [{"name": f"gw{i}"} for i in range(parents)]},
            "status": {"parents": [{"conditions": conditions}] if conditions else []}}


def accepted(status: str, observed: int, reason: str = "Accepted") -> dict:
    return {"type": "Accepted", "status": status, "observedGeneration": observed, "reason": reason, "message": "m"}


@pytest.mark.parametrize("obj, state", [
    (route(3, [accepted("True", 3)]), "ready"),
    (route(3, [accepted("True", 2)]), "progressing"),  # the Gateway has not seen the new weights yet
    (route(1, []), "progressing"),
    (route(2, [accepted("False", 2, "NotAllowedByListeners")]), "failed"),
    (route(2, [accepted("True", 2)], parents=2), "progressing"),  # one of two Gateways so far
])
def test_route_state(obj, state):
    assert workload_state(obj)[0] == state


def test_a_refusal_that_the_gateway_takes_back_is_waited_out(monkeypatch):
    """Seen when the Gateway's certificate Secret was replaced: NoMatchingParent until the listener is valid again."""
    refused = route(1, [accepted("False", 1, "NoMatchingParent")])
    later = [refused, route(1, [accepted("True", 1)])]
    monkeypatch.setattr(k8s, "get", lambda client, obj: later.pop(0))
    monkeypatch.setattr(k8s.time, "sleep", lambda seconds: None)
    k8s.wait_ready(None, [refused], timeout=60)
    assert not later


def test_a_refusal_that_lasts_fails_the_wait(monkeypatch):
    refused = route(1, [accepted("False", 1, "NotAllowedByListeners")])
    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(k8s, "get", lambda client, obj: refused)
    monkeypatch.setattr(k8s.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(k8s.time, "monotonic", lambda: float(next(clock)))
    with pytest.raises(k8s.K8sError, match="its Gateway refused it: NotAllowedByListeners"):
        k8s.wait_ready(None, [refused], timeout=300)
