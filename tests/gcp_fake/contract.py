"""Google's published discovery documents as the contract every request to the fake must meet.

The documents are the ones google-api-python-client ships (googleapiclient/discovery_cache/documents), so the
contract changes only when that pinned package changes. For every request: the path must match a method's path
template with that HTTP method, every query parameter must be declared (by the method or the API's standard
parameters) with the right type, and the JSON body must match the method's request schema recursively: an
unknown field, a wrong type or a value outside an enum is a violation. Responses the fake sends are checked
against the response schema too, so the fake cannot drift into shapes Google never sends.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import googleapiclient

DOCUMENTS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"

# The APIs (and versions) our modules call; the fake serves each under /<api>/.
APIS: dict[str, str] = {
    "serviceusage": "v1",
    "storage": "v1",
    "artifactregistry": "v1",
    "iam": "v1",
    "iamcredentials": "v1",
    "secretmanager": "v1",
    "sqladmin": "v1",
    "cloudresourcemanager": "v1",
}
# Older versions some clients still call, served under the same /<api>/ prefix (their paths differ): the Cloud SQL
# connectors (cloud.google.com/go/cloudsqlconn, the Auth Proxy v2) call sqladmin v1beta4 (sql/v1beta4/...).
EXTRA_VERSIONS: dict[str, tuple[str, ...]] = {"sqladmin": ("v1beta4",)}


@dataclass
class Method:
    id: str
    api: str
    http_method: str
    path: str  # the logical template ("v1/{+name}"), relative to the API root
    regex: re.Pattern[str]  # from flatPath when there is one (one segment per parameter), else from path
    logical: re.Pattern[str]
    literal_chars: int
    parameters: dict[str, dict[str, t.Any]]
    request_ref: str | None
    response_ref: str | None


@dataclass
class Match:
    method: Method
    path_params: dict[str, str] = field(default_factory=dict)


class Violation(Exception):
    """A request that Google would reject for its shape (HTTP status to answer with, and why)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _template_regex(template: str) -> tuple[re.Pattern[str], int]:
    out = ""
    literal = 0
    pos = 0
    for m in re.finditer(r"\{(\+?)([^}]+)\}", template):
        chunk = template[pos : m.start()]
        out += re.escape(chunk)
        literal += len(chunk)
        name = re.sub(r"\W", "_", m.group(2))
        out += f"(?P<{name}>.+)" if m.group(1) else f"(?P<{name}>[^/]+)"
        pos = m.end()
    out += re.escape(template[pos:])
    literal += len(template) - pos
    return re.compile(f"^{out}$"), literal


class Api:
    def __init__(self, name: str, version: str, key: str | None = None) -> None:
        self.name = name
        self.version = version
        self.key = key or name  # the Contract.apis key: the name, or NAME@VERSION for an extra version
        self.doc = json.loads((DOCUMENTS / f"{name}.{version}.json").read_text())
        self.schemas: dict[str, dict] = self.doc.get("schemas", {})
        self.standard_params: dict[str, dict] = self.doc.get("parameters", {})
        self.service_path: str = self.doc.get("servicePath", "")
        self.methods: list[Method] = []
        self._collect(self.doc.get("resources", {}))

    def _collect(self, resources: dict[str, t.Any]) -> None:
        for res in resources.values():
            for m in (res.get("methods") or {}).values():
                flat = self.service_path + (m.get("flatPath") or m["path"])
                logical = self.service_path + m["path"]
                regex, literal = _template_regex(flat)
                self.methods.append(
                    Method(
                        id=m["id"],
                        api=self.key,
                        http_method=m["httpMethod"],
                        path=logical,
                        regex=regex,
                        logical=_template_regex(logical)[0],
                        literal_chars=literal,
                        parameters=m.get("parameters") or {},
                        request_ref=(m.get("request") or {}).get("$ref"),
                        response_ref=(m.get("response") or {}).get("$ref"),
                    )
                )
            self._collect(res.get("resources") or {})


class Contract:
    def __init__(self, apis: t.Mapping[str, str] | None = None) -> None:
        extra = EXTRA_VERSIONS if apis is None else {}
        if apis is None:
            apis = APIS
        self.apis = {name: Api(name, version) for name, version in apis.items()}
        for name, versions in extra.items():
            for version in versions:
                self.apis[f"{name}@{version}"] = Api(name, version, key=f"{name}@{version}")

    # ---- routing
    def match(self, api_name: str, http_method: str, path: str) -> Match:
        api = self.apis.get(api_name)
        if api is None:
            known = ", ".join(sorted({a.name for a in self.apis.values()}))
            raise Violation(404, f"no API '{api_name}' is served here (known: {known})")
        versions = [a for a in self.apis.values() if a.name == api_name]
        candidates = [m for a in versions for m in a.methods if m.regex.match(path)]
        if not candidates:
            raise Violation(404, f"{http_method} /{path}: no method of {api_name} {api.version} has this path")
        same_verb = [m for m in candidates if m.http_method == http_method]
        if not same_verb:
            verbs = ", ".join(sorted({f"{m.http_method} ({m.id})" for m in candidates}))
            raise Violation(405, f"{http_method} /{path}: the path exists only for {verbs}")
        method = max(same_verb, key=lambda m: m.literal_chars)
        logical = method.logical.match(path)
        params = dict(logical.groupdict()) if logical else {}
        return Match(method, params)

    # ---- query
    def check_query(self, method: Method, query: t.Mapping[str, list[str]]) -> list[str]:
        api = self.apis[method.api]
        problems = []
        for key, values in query.items():
            spec = method.parameters.get(key) or api.standard_params.get(key)
            if spec is None:
                problems.append(f"query parameter '{key}' is not declared for {method.id}")
                continue
            if spec.get("location") == "path":
                problems.append(f"'{key}' is a path parameter of {method.id}, not a query parameter")
                continue
            if len(values) > 1 and not spec.get("repeated"):
                problems.append(f"query parameter '{key}' of {method.id} is not repeated but was sent {len(values)}x")
            for value in values:
                problem = _check_scalar(value, spec, f"query {key}", from_query=True)
                if problem:
                    problems.append(problem)
        return problems

    # ---- bodies
    def check_request(self, method: Method, body: t.Any) -> list[str]:
        if method.request_ref is None:
            if body not in (None, {}, b"", ""):
                return [f"{method.id} takes no request body, but one was sent"]
            return []
        if body is None:
            return []
        return self.check_value(method.api, body, {"$ref": method.request_ref}, method.request_ref)

    def check_response(self, method: Method, body: t.Any) -> list[str]:
        if method.response_ref is None or body in (None, {}):
            return []
        return self.check_value(method.api, body, {"$ref": method.response_ref}, f"response {method.response_ref}")

    def check_value(self, api_name: str, value: t.Any, schema: t.Mapping[str, t.Any], where: str) -> list[str]:
        api = self.apis[api_name]
        problems: list[str] = []
        self._check(api, value, schema, where, problems, depth=0)
        return problems

    def _check(
        self, api: Api, value: t.Any, schema: t.Mapping[str, t.Any], where: str, out: list[str], depth: int
    ) -> None:
        if depth > 40:
            return
        if "$ref" in schema:
            schema = api.schemas[schema["$ref"]]
        if value is None:  # JSON null: proto3 treats it as "unset"
            return
        kind = schema.get("type")
        if kind == "object" or "properties" in schema or "additionalProperties" in schema:
            if not isinstance(value, dict):
                out.append(f"{where}: expected an object, got {type(value).__name__}")
                return
            props = schema.get("properties")
            extra = schema.get("additionalProperties")
            for key, sub in value.items():
                if props is not None and key in props:
                    self._check(api, sub, props[key], f"{where}.{key}", out, depth + 1)
                elif extra is not None:
                    self._check(api, sub, extra, f"{where}.{key}", out, depth + 1)
                elif props is not None:
                    out.append(
                        f"{where}: unknown field '{key}' (Invalid JSON payload received. Unknown name \"{key}\")"
                    )
            return
        if kind == "array":
            if not isinstance(value, list):
                out.append(f"{where}: expected an array, got {type(value).__name__}")
                return
            for i, item in enumerate(value):
                self._check(api, item, schema.get("items", {}), f"{where}[{i}]", out, depth + 1)
            return
        if kind == "any" or kind is None:
            return
        problem = _check_scalar(value, schema, where)
        if problem:
            out.append(problem)


def _check_scalar(value: t.Any, spec: t.Mapping[str, t.Any], where: str, from_query: bool = False) -> str | None:
    kind = spec.get("type")
    fmt = spec.get("format", "")
    if kind == "string":
        if fmt in ("int64", "uint64"):
            ok = (isinstance(value, int) and not isinstance(value, bool)) or (
                isinstance(value, str) and re.fullmatch(r"-?\d+", value) is not None
            )
            if not ok:
                return f"{where}: expected an int64 (a string of digits), got {value!r}"
        elif not isinstance(value, str):
            return f"{where}: expected a string, got {type(value).__name__} {value!r}"
        elif fmt == "byte":
            try:
                base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
            except (binascii.Error, ValueError):
                return f"{where}: expected base64 bytes"
        enum = spec.get("enum")
        if enum and value not in enum:
            return f"{where}: {value!r} is not one of {enum}"
        return None
    if kind == "integer":
        if from_query or isinstance(value, str):
            if not re.fullmatch(r"-?\d+", str(value)):
                return f"{where}: expected an integer, got {value!r}"
        elif not isinstance(value, int) or isinstance(value, bool):
            return f"{where}: expected an integer, got {type(value).__name__} {value!r}"
        return None
    if kind == "number":
        if from_query:
            try:
                float(value)
            except ValueError:
                return f"{where}: expected a number, got {value!r}"
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"{where}: expected a number, got {value!r}"
        return None
    if kind == "boolean":
        if from_query:
            if value not in ("true", "false", "True", "False"):
                return f"{where}: expected true or false, got {value!r}"
        elif not isinstance(value, bool):
            return f"{where}: expected a boolean, got {type(value).__name__} {value!r}"
        return None
    return None
