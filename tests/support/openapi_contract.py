"""Checks observed HTTP responses against openapi/openapi.yaml: the app's answers must be the ones it describes.

Call it for every response a test observes; it returns human-readable violations instead of raising, so a
test can assert on them or collect them across a run::

    from support.openapi_contract import assert_all_described, check_response  # with `tests` on pythonpath
    # (or `tests.support.openapi_contract` with only the repo root on it; tests/test_openapi.py loads it by path)

    response = session.post(f"{base}/api/upgrades", json=body)
    assert check_response("POST", response.url, response.status_code, response.headers, response.content) == []

    observed.append(Observed("GET", url, response.status_code, response.headers, response.content))
    ...
    assert_all_described(observed)   # one AssertionError listing every violation

What is checked, for one response (`check_response`):
1. an operation exists for the method and the concrete path (query string, scheme and host are ignored;
   `{param}` segments match any one segment, literals case-insensitively as the Functions host routes);
2. the status is described for that operation (an exact code, then `4XX`-style ranges, then `default`);
3. every header the spec marks `required` is present (names case-insensitive), and every described header
   that is present has a value valid for its schema (an `integer` header must be digits, then in range);
4. the body: empty when no content is described; otherwise its `Content-Type` media type (parameters such as
   `charset` ignored) must be a described one, it must be UTF-8 JSON (UTF-8 text for a non-JSON type such as
   `text/csv`), and it must validate against that media
   type's schema (JSON Schema 2020-12, `$ref`s resolved inside the spec, `date-time` formats checked);
5. rules the schemas cannot express: a problem's `status` equals the HTTP status and its
   `correlationId` equals the `x-correlation-id` header; a `Location` that comes with an upgrade body is that
   upgrade's follow link (`.../api/follow/upgrades/{upgradeId}?customerId={customerId}&expires=…&sig=…`) or,
   when the app cannot read its link key, its keyed status URL; `statusUri` is always the keyed status URL
   (`.../api/upgrades/{upgradeId}?customerId={customerId}`) on the same base as `Location`.

Answers of the Functions host itself for undescribed routes or methods (404/405 from devhost, for example)
are reported like any other undescribed response; drop them before calling if a test provokes them on
purpose. Only PyYAML, jsonschema and referencing are needed (pinned in requirements-dev.txt).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi" / "openapi.yaml"
SPEC_URI = "urn:partner-center-upgrade:openapi"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_REPORTED_SCHEMA_ERRORS = 10

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True)
class Observed:
    """One response a test saw, for `assert_all_described`."""

    method: str
    path: str
    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class _Operation:
    method: str
    template: str
    operation_id: str
    pointer: str  # JSON pointer of the operation object inside the spec


def check_response(method: str, path: str, status: int, headers: Headers, body: bytes | str) -> list[str]:
    """Violations of openapi/openapi.yaml by one observed response; an empty list when it matches.

    `method` is the request's method (any case); `path` the request's path or full URL (query ignored);
    `status` the response status; `headers` the response headers (a mapping such as `requests`'
    `response.headers`, or (name, value) pairs); `body` the raw response body (`response.content`).
    """
    contract = _contract()
    label = f"{method.upper()} {_path_only(path)} -> {status}"
    operation = contract.find_operation(method, path)
    if operation is None:
        return [f"{label}: no operation in openapi/openapi.yaml for {method.upper()} {_path_only(path)}"]
    label = f"{operation.method.upper()} {operation.template} ({operation.operation_id}) -> {status}"
    pointer = contract.response_pointer(operation, status)
    if pointer is None:
        described = ", ".join(contract.statuses(operation))
        return [f"{label}: status {status} is not described (described: {described})"]
    header_map = _header_map(headers)
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    violations = contract.check_headers(pointer, header_map)
    document, body_violations = contract.check_body(pointer, header_map, raw)
    violations += body_violations
    if document is not None:
        violations += _semantic_rules(status, header_map, document)
    return [f"{label}: {v}" for v in violations]


def assert_all_described(observed: Iterable[Observed | tuple[str, str, int, Headers, bytes]]) -> None:
    """Raise one AssertionError listing every violation among `observed` responses (nothing when all match)."""
    violations: list[str] = []
    count = 0
    for item in observed:
        count += 1
        entry = item if isinstance(item, Observed) else Observed(*item)
        violations += check_response(entry.method, entry.path, entry.status, entry.headers, entry.body)
    if violations:
        listed = "\n".join(f"  - {v}" for v in violations)
        raise AssertionError(f"{len(violations)} contract violation(s) in {count} response(s):\n{listed}")


def described_statuses() -> dict[str, list[str]]:
    """`{"POST /api/upgrades": ["202", "400", ...], ...}`: what the spec describes, for coverage reports."""
    contract = _contract()
    return {f"{op.method.upper()} {op.template}": contract.statuses(op) for op in contract.operations}


def spec() -> dict[str, Any]:
    """The parsed openapi/openapi.yaml (cached; do not modify)."""
    return _contract().spec


def schema_errors(instance: Any, schema_pointer: str) -> list[str]:
    """Violations of the schema at `schema_pointer` (e.g. `/components/schemas/UpgradeStatus`) by `instance`."""
    return _contract().validate(instance, schema_pointer)


# --- internals ---------------------------------------------------------------------------------------


class _Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.spec = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self.operations = [
            _Operation(method, template, item[method].get("operationId", ""), _pointer("paths", template, method))
            for template, item in document.get("paths", {}).items()
            for method in HTTP_METHODS
            if method in item
        ]

    def find_operation(self, method: str, path: str) -> _Operation | None:
        segments = _segments(_path_only(path))
        for operation in self.operations:
            if operation.method == method.lower() and _matches(_segments(operation.template), segments):
                return operation
        return None

    def statuses(self, operation: _Operation) -> list[str]:
        return list(self.resolve(operation.pointer)[0]["responses"])

    def response_pointer(self, operation: _Operation, status: int) -> str | None:
        responses = self.resolve(operation.pointer)[0]["responses"]
        for key in (str(status), f"{str(status)[0]}XX", f"{str(status)[0]}xx", "default"):
            if key in responses:
                return self.resolve(_pointer(*_parts(operation.pointer), "responses", key))[1]
        return None

    def resolve(self, pointer: str) -> tuple[Any, str]:
        """The node at `pointer`, following `$ref`s, and the pointer it was finally found at."""
        node = _at(self.spec, pointer)
        while isinstance(node, dict) and "$ref" in node:
            pointer = node["$ref"].removeprefix("#")
            node = _at(self.spec, pointer)
        return node, pointer

    def check_headers(self, response_pointer: str, headers: dict[str, str]) -> list[str]:
        violations = []
        for name in _at(self.spec, response_pointer).get("headers", {}):
            header, header_pointer = self.resolve(_pointer(*_parts(response_pointer), "headers", name))
            value = headers.get(name.lower())
            if value is None:
                if header.get("required"):
                    violations.append(f"header {name} is missing")
                continue
            schema = self.resolve(f"{header_pointer}/schema")[0]
            instance: Any = value
            if schema.get("type") == "integer":
                if not re.fullmatch(r"\d+", value.strip()):
                    violations.append(f"header {name}: {value!r} is not a non-negative integer")
                    continue
                instance = int(value)
            errors = self.validate(instance, f"{header_pointer}/schema")
            violations += [f"header {name}: {e}" for e in errors]
        return violations

    def check_body(self, response_pointer: str, headers: dict[str, str], body: bytes) -> tuple[Any | None, list[str]]:
        content = _at(self.spec, response_pointer).get("content")
        if not content:
            return None, ([] if not body else [f"has a {len(body)}-byte body where none is described"])
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type not in content:
            shown = media_type or "no Content-Type"
            return None, [f"{shown} is not a described media type (described: {', '.join(content)})"]
        if not media_type.endswith(("/json", "+json")):  # text (e.g. text/csv): described, and UTF-8
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                return None, [f"the {media_type} body is not UTF-8"]
            return None, []
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None, [f"the {media_type} body is not UTF-8 JSON: {body[:80]!r}"]
        schema_pointer = _pointer(*_parts(response_pointer), "content", media_type, "schema")
        return document, [f"body {e}" for e in self.validate(document, schema_pointer)]

    def validate(self, instance: Any, schema_pointer: str) -> list[str]:
        validator = _validator(self, schema_pointer)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        messages = [_describe(e) for e in errors[:MAX_REPORTED_SCHEMA_ERRORS]]
        if len(errors) > MAX_REPORTED_SCHEMA_ERRORS:
            messages.append(f"... and {len(errors) - MAX_REPORTED_SCHEMA_ERRORS} more schema errors")
        return messages


@cache
def _contract() -> _Contract:
    with SPEC_PATH.open(encoding="utf-8") as handle:
        return _Contract(yaml.safe_load(handle))


_validators: dict[str, Draft202012Validator] = {}


def _validator(contract: _Contract, schema_pointer: str) -> Draft202012Validator:
    validator = _validators.get(schema_pointer)
    if validator is None:
        validator = Draft202012Validator(
            {"$ref": f"{SPEC_URI}#{schema_pointer}"}, registry=contract.registry, format_checker=FormatChecker()
        )
        _validators[schema_pointer] = validator
    return validator


def _semantic_rules(status: int, headers: dict[str, str], document: Any) -> list[str]:
    if not isinstance(document, dict):
        return []
    violations = []
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == PROBLEM_MEDIA_TYPE:
        if document.get("status") != status:
            violations.append(f"problem status {document.get('status')!r} differs from the HTTP status {status}")
        correlation_id = headers.get("x-correlation-id")
        if correlation_id is not None and document.get("correlationId") != correlation_id:
            violations.append(
                f"problem correlationId {document.get('correlationId')!r} differs from x-correlation-id "
                f"{correlation_id!r}"
            )
    upgrade_id, customer_id = document.get("upgradeId"), document.get("customerId")
    if isinstance(upgrade_id, str) and isinstance(customer_id, str):
        violations += _upgrade_links(headers.get("location"), document.get("statusUri"), upgrade_id, customer_id)
    return violations


_FOLLOW_QUERY = re.compile(r"customerId=(?P<customer>[^&]+)&expires=[0-9]+&sig=[A-Za-z0-9_-]{43}")


def _upgrade_links(location: str | None, status_uri: Any, upgrade_id: str, customer_id: str) -> list[str]:
    violations = []
    keyed_end = f"/api/upgrades/{upgrade_id}?customerId={customer_id}"
    if location:
        path, _, query = location.partition("?")
        follow = path.endswith(f"/api/follow/upgrades/{upgrade_id}") and _FOLLOW_QUERY.fullmatch(query)
        if not (follow and follow["customer"] == customer_id) and not location.endswith(keyed_end):
            violations.append(f"Location {location!r} does not point at upgrade {upgrade_id} of {customer_id}")
    if status_uri is not None:
        if not isinstance(status_uri, str) or not status_uri.endswith(keyed_end):
            violations.append(f"statusUri {status_uri!r} is not the keyed status URL of upgrade {upgrade_id}")
        elif location and urlsplit(location).netloc != urlsplit(status_uri).netloc:
            violations.append(f"statusUri {status_uri!r} and Location {location!r} are on different hosts")
    return violations


def _describe(error: Any) -> str:
    where = "/" + "/".join(str(p) for p in error.absolute_path)
    message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
    return f"at {where}: {message}"


def _header_map(headers: Headers) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(name).lower(): str(value) for name, value in items}


def _path_only(path: str) -> str:
    parts = urlsplit(path)
    return parts.path or "/"


def _segments(path: str) -> list[str]:
    trimmed = path.rstrip("/") or "/"
    return [s for s in trimmed.split("/") if s]


def _matches(template: list[str], concrete: list[str]) -> bool:
    if len(template) != len(concrete):
        return False
    for expected, actual in zip(template, concrete, strict=True):
        if expected.startswith("{") and expected.endswith("}"):
            continue
        if expected.lower() != actual.lower():
            return False
    return True


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _pointer(*parts: str) -> str:
    return "".join("/" + _escape(p) for p in parts)


def _parts(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


def _at(document: Any, pointer: str) -> Any:
    node = document
    for part in _parts(pointer):
        node = node[part]
    return node
