# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the mlflow_* modules (plugins/module_utils/mlflow.py holds the spec)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  tracking_uri:
    description:
      - Base URL of the MLflow tracking server, for example V(https://mlflow.example.com) or
        V(http://mlflow.mlflow.svc:5000). A path prefix (the server's C(--static-prefix)) is kept.
      - Only V(http) and V(https) URLs are supported; credentials go in O(username)/O(password) or
        O(token), never in the URL.
      - If not set, the value of the E(MLFLOW_TRACKING_URI) environment variable is used.
    type: str
    required: true
  username:
    description:
      - User name for MLflow's basic-auth app (C(mlflow server --app-name basic-auth)).
      - Requires O(password). When both O(username)/O(password) and O(token) are set, basic auth is used,
        as MLflow's own client does.
      - If not set, the value of the E(MLFLOW_TRACKING_USERNAME) environment variable is used.
    type: str
  password:
    description:
      - Password for O(username).
      - If not set, the value of the E(MLFLOW_TRACKING_PASSWORD) environment variable is used.
    type: str
  token:
    description:
      - >-
        Bearer token sent as C(Authorization: Bearer <token>), for servers behind a token-checking proxy.
      - If not set, the value of the E(MLFLOW_TRACKING_TOKEN) environment variable is used.
    type: str
  validate_certs:
    description:
      - Whether to verify the server's TLS certificate. Set to V(false) only for tests.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the CA certificate(s) that signed the server's certificate, for a private CA.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP request. Requests that time out, fail to connect, or get
        HTTP 429 or 5xx are retried 3 times with exponential backoff (capped at 10 seconds,
        honouring C(Retry-After)).
    type: int
    default: 30
notes:
  - All connection options can be set once per play with
    C(module_defaults) and the action group C(group/mlplatform.mlflow.mlflow).
  - Requests go through ansible-core's C(open_url); no extra Python package is needed on the target.
"""
