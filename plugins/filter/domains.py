# Copyright: (c) 2026, mlplatform.mlflow contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Value domains of the roles' variables, checked in the preflight with the variable's name in the message.

meta/argument_specs.yml checks types and choices; what it cannot say (a Kubernetes name, a quantity, a port, a cron
schedule, a duration, a host name without scheme) is checked here, before anything is changed, so that a bad value
is named by its variable instead of being refused by the API server halfway through a run.
"""

from __future__ import annotations

import re

from ansible_collections.mlplatform.mlflow.plugins.filter.platform import _CPU, _MEMORY

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ALLOWED_HOST = re.compile(r"^[A-Za-z0-9*]([-A-Za-z0-9.*]*[A-Za-z0-9*])?(:(\d{1,5}|\*))?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$|^[A-Za-z]{3}(-[A-Za-z]{3})?$")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
# MLflow's `gc --older-than`: days, hours, minutes, seconds, in that order (for example 30d or 1d2h30m).
_GC_AGE = re.compile(r"^(?=\d)(\d+d)?(\d+h)?(\d+m)?(\d+s)?$")
# A Go duration, as the External Secrets Operator reads refreshInterval (1h, 30m, 1h30m, 90s).
_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
# A URL of a site's root, as people open it: scheme, host, optional port, nothing after.
_ROOT_URL = re.compile(r"^https?://[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:\d{1,5})?/?$")
# An HTTP path prefix as an Ingress rule takes it: absolute, no query, no doubled or trailing slash (except "/").
_HTTP_PATH = re.compile(r"^/$|^(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$")


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _cron_problem(value: str) -> str:
    fields = str(value).split()
    if len(fields) != 5:
        return "is not a cron schedule of five fields (minute hour day-of-month month day-of-week)"
    for field, (low, high) in zip(fields, _CRON_RANGES, strict=True):
        if not _CRON_FIELD.match(field):
            return f"has a field {field!r} that cron cannot read"
        numbers = [int(n) for n in re.findall(r"(?<![/\d])\d+", field)]
        if any(n < low or n > high for n in numbers):
            return f"has a field {field!r} outside {low}-{high}"
    return ""


def _float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(str(value))
    except ValueError:
        return None


def _canary_steps_problem(value: object) -> str:
    steps = [_int(step) for step in value] if isinstance(value, list) else [None]
    if value == [] or (all(s is not None and 1 <= s <= 100 for s in steps)
                       and steps == sorted(set(steps)) and steps[-1] == 100):
        return ""
    return ("must be [] (no canary) or rising percentages of the requests, 1-100, ending at 100, "
            "such as [10, 50, 100]")


def domain_problem(domain: str, value: object) -> str:
    """What keeps value out of the domain, or ''. The text follows the variable's name in a message."""
    text = "" if value is None else str(value)
    number = _int(value)
    checks = {
        "dns_label": lambda: "" if _DNS_LABEL.match(text) and len(text) <= 63 else
        "must be a DNS label: at most 63 lower-case letters, digits and '-', starting and ending alphanumeric",
        "name": lambda: "" if _DNS_LABEL.match(text) and len(text) <= 40 else
        "must be a DNS label of at most 40 characters (lower-case letters, digits, '-'): the role derives names "
        "such as NAME-upgrade-0123456789 from it",
        "dns_subdomain": lambda: "" if _DNS_SUBDOMAIN.match(text) and len(text) <= 253 else
        "must be a Kubernetes name: lower-case letters, digits, '-' and '.', starting and ending alphanumeric",
        "optional_dns_label": lambda: "" if not text else domain_problem("dns_label", text),
        "optional_dns_subdomain": lambda: "" if not text else domain_problem("dns_subdomain", text),
        "cpu": lambda: "" if _CPU.match(text.strip()) and float(_CPU.match(text.strip()).group(1)) > 0 else
        "must be a positive CPU quantity such as 500m or 2",
        "memory": lambda: "" if _MEMORY.match(text.strip()) and float(_MEMORY.match(text.strip()).group(1)) > 0 else
        "must be a positive memory quantity such as 512Mi or 2Gi",
        "count": lambda: "" if number is not None and number >= 0 else "must be a whole number, 0 or more",
        "positive": lambda: "" if number is not None and number >= 1 else "must be a whole number, 1 or more",
        "port_or_default": lambda: "" if number is not None and 0 <= number <= 65535 else
        "must be a TCP port, 1-65535 (or 0 for the default)",
        "node_port": lambda: "" if number is not None and (number == 0 or 30000 <= number <= 32767) else
        "must be a node port, 30000-32767 (or 0 to let Kubernetes choose)",
        "percent": lambda: "" if number is not None and 1 <= number <= 100 else "must be a percentage, 1-100",
        "cron": lambda: _cron_problem(text),
        "optional_cron": lambda: "" if not text else _cron_problem(text),
        "gc_age": lambda: "" if _GC_AGE.match(text) else
        "must be an age `mlflow gc --older-than` reads: days, hours, minutes, seconds in that order, e.g. 30d "
        "or 1d12h",
        "go_duration": lambda: "" if _GO_DURATION.match(text) else "must be a duration such as 1h, 30m or 1h30m",
        "host": lambda: "" if _HOST.match(text) else
        "must be a host name only (no scheme, port or path), for example mlflow.example.com",
        "optional_host": lambda: "" if not text else domain_problem("host", text),
        "optional_root_url": lambda: "" if not text or _ROOT_URL.match(text) else
        "must be http(s)://HOST or http(s)://HOST:PORT, nothing after, for example https://mlflow.example.com",
        "fraction": lambda: "" if _float(value) is not None and 0 <= _float(value) <= 1 else
        "must be a number from 0 to 1, such as 0.01 for 1 %",
        "positive_number": lambda: "" if _float(value) is not None and _float(value) > 0 else
        "must be a number above 0",
        "canary_steps": lambda: _canary_steps_problem(value),
        "http_path": lambda: "" if _HTTP_PATH.match(text) else
        "must be an absolute path such as / or /iris (no trailing '/', query or spaces)",
    }
    if domain not in checks:
        raise ValueError(f"domain_problem: unknown domain {domain!r}")
    return checks[domain]()


def value_problems(checks: list) -> list[str]:
    """Each [variable, domain, value] whose value is outside its domain, as 'variable: problem (got value)'.

    A domain may end in '[]' (every element of a list) or be 'allowed_hosts', 'env_names:OWNED,...'."""
    problems = []
    for variable, domain, value in checks:
        if domain.endswith("[]"):
            for index, item in enumerate(value or []):
                problem = domain_problem(domain[:-2], item)
                if problem:
                    problems.append(f"{variable}[{index}] {problem} (got {item!r})")
            continue
        if domain == "allowed_hosts":
            bad = [h for h in value or [] if not _ALLOWED_HOST.match(str(h)) or "/" in str(h)]
            if bad:
                problems.append(f"{variable} must hold host names with an optional :PORT or :*, no scheme or path "
                                f"(got {bad!r})")
            continue
        if domain.startswith("env_names:"):
            owned = set(domain.split(":", 1)[1].split(","))
            bad = [k for k in value or {} if not _ENV_NAME.match(str(k))]
            taken = sorted(k for k in value or {} if k in owned)
            if bad:
                problems.append(f"{variable} has names that are not environment variable names: {bad!r}")
            if taken:
                problems.append(f"{variable} must not set {', '.join(taken)}: the role sets them from its own "
                                "variables (use those instead)")
            continue
        problem = domain_problem(domain, value)
        if problem:
            problems.append(f"{variable} {problem} (got {value!r})")
    return problems


class FilterModule:
    def filters(self):
        return {"value_problems": value_problems}
