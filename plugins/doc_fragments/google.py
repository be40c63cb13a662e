# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # Connection and authentication options shared by every gcp_* module of mlplatform.mlflow.
    # Set them once per play with module_defaults: {group/mlplatform.mlflow.google: {...}}.
    DOCUMENTATION = r"""
options:
  project:
    description:
      - The Google Cloud project ID the resource lives in.
      - Falls back to the E(GCP_PROJECT) environment variable.
    type: str
  auth_kind:
    description:
      - How to get credentials.
      - V(application) uses Application Default Credentials (C(gcloud auth application-default login), the
        GKE/GCE metadata server, or E(GOOGLE_APPLICATION_CREDENTIALS)).
      - V(serviceaccount) uses a service-account key from O(service_account_file) or O(service_account_contents).
      - V(accesstoken) uses the OAuth2 access token in O(access_token) as is.
      - Falls back to E(GCP_AUTH_KIND).
    type: str
    choices: [application, serviceaccount, accesstoken]
    default: application
  service_account_file:
    description:
      - Path to a service-account JSON key file, for O(auth_kind=serviceaccount).
      - Falls back to E(GCP_SERVICE_ACCOUNT_FILE).
    type: path
  service_account_contents:
    description:
      - The service-account JSON key itself, for O(auth_kind=serviceaccount).
      - Falls back to E(GCP_SERVICE_ACCOUNT_CONTENTS).
    type: jsonarg
  access_token:
    description:
      - An OAuth2 access token, for O(auth_kind=accesstoken).
      - Falls back to E(GCP_ACCESS_TOKEN).
    type: str
  impersonate_service_account:
    description:
      - E-mail of a service account to impersonate. The credentials chosen by O(auth_kind) get a short-lived
        token for it through the IAM Credentials API (C(generateAccessToken)), which needs
        C(roles/iam.serviceAccountTokenCreator) on that account.
      - Falls back to E(GCP_IMPERSONATE_SERVICE_ACCOUNT).
    type: str
  scopes:
    description:
      - OAuth2 scopes requested for the token.
      - Falls back to E(GCP_SCOPES).
    type: list
    elements: str
    default: [https://www.googleapis.com/auth/cloud-platform]
  endpoint_overrides:
    description:
      - Base URLs that replace C(https://API.googleapis.com), keyed by API name (V(artifactregistry),
        V(cloudresourcemanager), V(iam), V(iamcredentials), V(secretmanager), V(serviceusage), V(sqladmin),
        V(storage)) or V(all) for every API. The text C({api}) in a value is replaced by the API name.
      - 'Use it for Private Service Connect endpoints (for example
        V({"all": "https://{api}-myendpoint.p.googleapis.com"})) or a local test double.'
      - Falls back to E(GCP_ENDPOINT_OVERRIDES) (a JSON object).
    type: dict
    default: {}
  request_timeout:
    description:
      - Seconds to wait for one HTTP answer.
    type: float
    default: 60.0
  operation_timeout:
    description:
      - Seconds to wait for a long-running operation (Cloud SQL instance create, API enable, ...) before
        failing. The operation keeps going at Google; a later run picks up where it stands.
    type: int
    default: 1800
  retries:
    description:
      - How many times to retry a request answered with HTTP 429 or 5xx, or not answered at all, with capped
        exponential backoff (1 s, 2 s, 4 s, ... up to 30 s, plus jitter).
    type: int
    default: 6
requirements:
  - python >= 3.12
  - google-auth
  - requests
notes:
  - All requests go through one client (C(mlplatform.mlflow) module_utils C(google)) with request timeouts,
    retries, long-running-operation waits and error messages that name the resource, the HTTP status, Google's
    reason and, for HTTP 403, the missing permission.
  - Results carry C(operations) (long-running operations waited for) and C(retries) (requests retried)
    when there were any.
"""
