#!/usr/bin/python
# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: serving_canary_analysis
short_description: Judge a served model's canary from its pods' request metrics over a window
version_added: 0.4.0
description:
  - Reads the request counters and latency histogram of every running pod of a served model (the scoring server's
    metrics port, 9090, through the API server's pod proxy) at the start of the window and every
    O(interval_seconds), and compares what the C(canary) track answered since with what the C(stable) track did.
  - Fails when the canary's share of server errors (5xx) is above O(max_error_rate) (decided early once it has
    answered 50 requests, or O(min_requests) if more), or at the end of O(hold_seconds) when its p99 is above
    O(max_p99_ms) or it answered fewer than O(min_requests). The message and the result carry the figures of both
    tracks either way.
  - Reads only. In check mode the window is not held and nothing is judged.
  - On the control node (C(ansible_connection=local)) the module's code runs inside Ansible's worker process.
author:
  - mlplatform team (@mlplatform)
options:
  namespace:
    description: The served models' namespace.
    type: str
    required: true
  name:
    description: The served model (its pods carry C(app.kubernetes.io/instance=NAME)).
    type: str
    required: true
  hold_seconds:
    description: How long the window lasts.
    type: int
    default: 60
  interval_seconds:
    description: How often the counters are read within the window.
    type: int
    default: 5
  max_error_rate:
    description: The highest share of server errors (0-1) the canary may answer.
    type: float
    default: 0.01
  max_p99_ms:
    description: The highest 99th percentile of the canary's request duration, in milliseconds.
    type: float
    default: 1000.0
  min_requests:
    description: The fewest requests the canary must answer in the window (0 accepts a window without traffic).
    type: int
    default: 0
extends_documentation_fragment:
  - mlplatform.mlflow.kubernetes
attributes:
  check_mode:
    support: full
    description: Holds no window and judges nothing.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
"""

EXAMPLES = r"""
- name: Hold 10 % of the traffic on the candidate for two minutes
  mlplatform.mlflow.serving_canary_analysis:
    namespace: mlflow-serving
    name: iris
    hold_seconds: 120
    max_error_rate: 0.01
    max_p99_ms: 250
  register: analysis
"""

RETURN = r"""
canary:
  description: What the canary track answered in the window.
  returned: unless check mode
  type: dict
  sample: {"requests": 612, "errors": 0, "error_rate": 0.0, "p99_ms": 4.7}
stable:
  description: What the stable track answered in the window.
  returned: unless check mode
  type: dict
  sample: {"requests": 5480, "errors": 0, "error_rate": 0.0, "p99_ms": 4.1}
share:
  description: The canary's share of the requests both tracks answered (null without requests).
  returned: unless check mode
  type: float
  sample: 0.1005
window:
  description: When the window started and ended (seconds since the epoch) and its length.
  returned: unless check mode
  type: dict
  sample: {"start": 1764925200.0, "end": 1764925320.1, "seconds": 120.1}
summary:
  description: Both tracks' figures in one line.
  returned: unless check mode
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mlplatform.mlflow.plugins.module_utils import k8s, serving_analysis


def main():
    module = AnsibleModule(argument_spec=serving_analysis.ANALYSIS_SPEC, supports_check_mode=True)
    try:
        client = k8s.module_client(module)
        result = serving_analysis.run(client, module.params, module.check_mode)
    except (k8s.K8sError, serving_analysis.AnalysisError) as exc:
        module.fail_json(msg=str(exc))
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
