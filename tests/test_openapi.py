"""openapi/openapi.yaml is the app's contract: valid, matched by the connector, the routes and the app's answers.

Also checks the caller examples that the docs point to (examples/*.py) against the same contract.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from openapi_spec_validator import validate

import shared.errors as app_errors
from shared.api.accepted import accepted_body
from shared.api.answers import json_answer as app_json_response
from shared.api.follow_links import FOLLOW_PARTS, FOLLOW_RESOURCES, signed_url, upgrade_path
from shared.api.problems import TYPE_PREFIX, configuration_problem, internal_problem, problem_response
from shared.clock import iso
from shared.partner_center.client import CreatedUpgrade, Eligibility
from shared.settings import Settings
from shared.tracking.callbacks import sign as app_sign
from shared.upgrades.create import UpgradeService
from shared.upgrades.model import CallbackState, State, UpgradeRecord, UpgradeRequest
from shared.upgrades.resource import retry_after_seconds, status_uri, upgrade_resource

ROOT = Path(__file__).resolve().parents[1]
CORRELATION_ID = "0b6c1a52-7a7e-4d55-9f61-3a0d4b2c9e10"
UPGRADE_ID = "9d2f6c1a-3b4e-4f5a-8c7d-1e2f3a4b5c6d"
CUSTOMER_ID = "4f6a2d1e-8c3b-4e5f-9a7d-2b1c0e9f8a76"
BASE_URL = "https://contoso-upgrades.azurewebsites.net"
STATUS_PATH = f"/api/upgrades/{UPGRADE_ID}"
FOLLOW_PATH = f"/api/follow/upgrades/{UPGRADE_ID}"
FOLLOW_BATCH_PATH = f"/api/follow/batches/{UPGRADE_ID}"
NOW = 1_795_262_400.0
LINK_KEY = b"status-link-signing-key-value"
OPERATIONS = {
    ("POST", "/api/upgrades"): "/api/upgrades",
    ("GET", STATUS_PATH): "/api/upgrades/{upgradeId}",
    ("GET", FOLLOW_PATH): "/api/follow/upgrades/{upgradeId}",
    ("GET", FOLLOW_BATCH_PATH): "/api/follow/batches/{batchId}",
}


def _load(name: str, path: Path) -> ModuleType:
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


# Loaded by path, so this module does not depend on `tests` being on sys.path (pythonpath).
openapi_contract = _load("openapi_contract", ROOT / "tests" / "support" / "openapi_contract.py")
Observed = openapi_contract.Observed
assert_all_described = openapi_contract.assert_all_described
check_response = openapi_contract.check_response
described_statuses = openapi_contract.described_statuses
schema_errors = openapi_contract.schema_errors
spec = openapi_contract.spec
build_connector = _load("build_connector", ROOT / "openapi" / "build_connector.py")
webhook_receiver = _load("webhook_receiver", ROOT / "examples" / "webhook_receiver.py")
microservice_client = _load("microservice_client", ROOT / "examples" / "microservice_client.py")


def _connector() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(build_connector.DEFINITION_PATH.read_text(encoding="utf-8"))
    return result


def _wire(response: Any, correlation_id: str = CORRELATION_ID) -> dict[str, str]:
    """Headers as the Functions worker sends an azure.functions.HttpResponse (content-type from its mimetype)."""
    headers = dict(response.headers.items())
    headers["content-type"] = response.mimetype
    headers["x-correlation-id"] = correlation_id
    return headers


def _record(**changes: Any) -> UpgradeRecord:
    record = UpgradeRecord(
        upgrade_id=UPGRADE_ID,
        customer_id=CUSTOMER_ID,
        product_family="Azure",
        created_at=NOW,
        updated_at=NOW + 60,
        partner_center_status="inProgress",
        line_items=[{"sourceProduct": {"id": "p1"}, "status": "inProgress"}],
        last_checked_at=NOW + 60,
        next_check_at=NOW + 180,
        checks=1,
        partner_center_location=f"productUpgrades/{UPGRADE_ID}",
        correlation_id=CORRELATION_ID,
    )
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def _final_record() -> UpgradeRecord:
    return _record(
        status=State.COMPLETED,
        partner_center_status="completed",
        next_check_at=None,
        checks=3,
        callback_url="https://hooks.contoso.example/upgrades",
        callback_state=CallbackState.DELIVERED,
        callback_attempts=1,
    )


def _follow_link(upgrade_id: str, customer_id: str) -> str:
    """A follow link as shared.api.follow_links.FollowLinks signs it (72 h tracking + 24 h)."""
    return signed_url(LINK_KEY, BASE_URL, upgrade_path(upgrade_id), customer_id, int(NOW) + 96 * 3600)


def _status_response(record: UpgradeRecord) -> tuple[int, dict[str, str], bytes]:
    """What shared.api.upgrades.status_answer answers for `record` (same code path for the body and headers)."""
    if record.is_final:
        response = app_json_response(200, upgrade_resource(record), {})
    else:
        location = _follow_link(record.upgrade_id, record.customer_id)
        wait = retry_after_seconds((record.next_check_at or NOW) - NOW)
        response = app_json_response(202, upgrade_resource(record), {"Location": location, "Retry-After": str(wait)})
    return response.status_code, _wire(response), response.get_body()


# --- the documents are valid ------------------------------------------------------------------------


def test_the_spec_is_valid_openapi_3_1() -> None:
    assert spec()["openapi"].startswith("3.1.")
    validate(spec())


def test_the_connector_definition_is_valid_swagger_2_0() -> None:
    connector = _connector()
    assert connector["swagger"] == "2.0"
    validate(connector)


def test_the_committed_connector_is_the_one_generated_from_the_spec() -> None:
    generated = build_connector.render(build_connector.build(build_connector.load_spec()))
    committed = build_connector.DEFINITION_PATH.read_text(encoding="utf-8")
    assert committed == generated, "run: .venv/bin/python openapi/build_connector.py"


@pytest.mark.parametrize(
    "host", ["https://contoso-upgrades.azurewebsites.net/", "contoso-upgrades.azurewebsites.net/api", "a b.net", ""]
)
def test_the_connector_build_refuses_a_host_that_is_not_a_host_name(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_connector.main(["--host", host, "--out", "/nonexistent/never-written"])
    assert exit_.value.code == 2
    assert "give the Function App's host only" in capsys.readouterr().err


def test_the_connector_build_takes_the_function_app_host() -> None:
    document = build_connector.build(build_connector.load_spec(), host="contoso-upgrades.azurewebsites.net")
    assert document["host"] == "contoso-upgrades.azurewebsites.net"
    assert _connector()["host"] == build_connector.PLACEHOLDER_HOST


# --- the connector says what the spec says ------------------------------------------------------------


def _spec_operations(*, connector: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
    """The spec's operations; with `connector`, only those the connector has (not `x-connector-omit`)."""
    return {
        (method, path): operation
        for path, item in spec()["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete") and not (connector and operation.get("x-connector-omit"))
    }


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_the_connector_has_the_spec_operations_statuses_and_headers() -> None:
    connector = _connector()
    connector_operations = {
        (method, path): operation for path, item in connector["paths"].items() for method, operation in item.items()
    }
    assert connector_operations.keys() == _spec_operations().keys()
    for key, source in _spec_operations().items():
        target = connector_operations[key]
        assert (target["operationId"], target["summary"]) == (source["operationId"], source["summary"])
        expected_statuses = set(source["responses"])
        if source.get("x-ms-long-running-operation"):
            assert target["x-ms-long-running-operation"] is True
            expected_statuses.add("200")  # the final answer of the polled Location, which the action outputs
        assert set(target["responses"]) == expected_statuses, key
        for status, response in source["responses"].items():
            assert set(target["responses"][status].get("headers", {})) == set(_resolve(response).get("headers", {}))
        spec_parameters = {(_resolve(p)["in"], _resolve(p)["name"]) for p in source.get("parameters", [])}
        if "requestBody" in source:
            spec_parameters.add(("body", "body"))
        assert {(p["in"], p["name"]) for p in target["parameters"]} == spec_parameters


def test_the_upgrade_action_is_long_running_and_outputs_the_final_status() -> None:
    upgrade = _connector()["paths"]["/api/upgrades"]["post"]
    assert upgrade["operationId"] == "UpgradeCustomer"
    assert upgrade["summary"] == "Upgrade customer to Azure plan"
    assert upgrade["x-ms-long-running-operation"] is True
    assert upgrade["responses"]["202"]["schema"] == {"$ref": "#/definitions/AcceptedUpgrade"}
    assert set(upgrade["responses"]["202"]["headers"]) >= {"Location", "Retry-After"}
    assert upgrade["responses"]["200"]["schema"] == {"$ref": "#/definitions/UpgradeStatus"}
    status = _connector()["paths"]["/api/upgrades/{upgradeId}"]["get"]
    assert (status["operationId"], status["summary"]) == ("GetUpgradeStatus", "Get upgrade status")


@pytest.mark.parametrize(
    ("definition", "component"),
    [
        ("UpgradeRequest", "UpgradeRequest"),
        ("AcceptedUpgrade", "AcceptedUpgrade"),
        ("UpgradeStatus", "UpgradeStatus"),
        ("Problem", "Problem"),
    ],
)
def test_the_connector_bodies_have_the_spec_members(definition: str, component: str) -> None:
    target = _connector()["definitions"][definition]
    source = spec()["components"]["schemas"][component]
    assert set(target["properties"]) == set(source["properties"])
    assert target.get("required", []) == source.get("required", [])
    for name, member in source["properties"].items():
        assert ("x-nullable" in target["properties"][name]) == _nullable(member), f"{definition}.{name}"


def _nullable(schema: dict[str, Any]) -> bool:
    types = schema.get("type")
    return (isinstance(types, list) and "null" in types) or {"type": "null"} in schema.get("oneOf", [])


def test_the_connector_signs_users_in_with_entra_id() -> None:
    connector = _connector()
    assert list(connector["securityDefinitions"]) == ["oauth2_auth"]
    scheme = connector["securityDefinitions"]["oauth2_auth"]
    assert (scheme["type"], scheme["flow"]) == ("oauth2", "accessCode")
    assert scheme["authorizationUrl"].startswith("https://login.microsoftonline.com/")
    assert connector["security"] == [{"oauth2_auth": []}]
    properties = json.loads((build_connector.CONNECTOR_DIR / "apiProperties.json").read_text())["properties"]
    parameter = properties["connectionParameters"]["token"]
    assert (parameter["type"], parameter["oAuthSettings"]["identityProvider"]) == ("oauthSetting", "aad")
    assert re.fullmatch(r"#[0-9A-Fa-f]{6}", properties["iconBrandColor"])
    assert properties["iconBrandColor"].lower() not in ("#007ee5", "#ffffff")  # refused by certification


# --- the spec says what the function.json routes say ----------------------------------------------------


_PARAMETER = re.compile(r"\{[^{}/]+\}")


def _route_paths(route: str) -> set[str]:
    """The concrete templates of a route: the follow route's `{resource}` becomes each resource the app accepts
    there, and `{part?}` each part it accepts after that resource's id (anything else is its 401); parameter names
    become `{}`."""
    if "{resource}" not in route:
        return {_PARAMETER.sub("{}", route)}
    routes = [
        route.replace("{resource}", word).replace("/{part?}", f"/{part}" if part else "")
        for word in FOLLOW_RESOURCES
        for part in FOLLOW_PARTS[word]
    ]
    return {_PARAMETER.sub("{}", r) for r in routes}


def test_the_spec_routes_are_the_function_json_routes() -> None:
    prefix = json.loads((ROOT / "host.json").read_text())["extensions"]["http"]["routePrefix"]
    routes = set()
    for function_json in sorted(ROOT.glob("*/function.json")):
        for binding in json.loads(function_json.read_text())["bindings"]:
            if binding["type"] == "httpTrigger":
                assert binding["authLevel"] == "anonymous", function_json  # the app checks callers (follow: sig)
                for method in binding["methods"]:
                    routes |= {(method.lower(), path) for path in _route_paths(f"/{prefix}/{binding['route']}")}
    spec_routes = {(method, _PARAMETER.sub("{}", path)) for method, path in _spec_operations(connector=False)}
    assert routes == spec_routes, "change openapi/openapi.yaml together with the routes"
    for (_, path), operation in _spec_operations(connector=False).items():
        anonymous = path.startswith("/api/follow/")
        assert (operation.get("security") == []) == anonymous, path
        assert bool(operation.get("x-connector-omit")) == (anonymous or path == "/api/audit"), path  # operator only
        if not anonymous:
            assert operation["security"] == [{"entraToken": []}, {"callerKeyHeader": []}, {"callerKeyQuery": []}]
    schemes = spec()["components"]["securitySchemes"]
    assert (schemes["entraToken"]["type"], schemes["entraToken"]["scheme"]) == ("http", "bearer")
    assert schemes["callerKeyHeader"] == {**schemes["callerKeyHeader"], "in": "header", "name": "X-Caller-Key"}
    assert schemes["callerKeyQuery"] == {**schemes["callerKeyQuery"], "in": "query", "name": "callerKey"}


# --- examples in the spec are valid -------------------------------------------------------------------


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _media_types(node: Any, pointer: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if "schema" in node and "examples" in node and isinstance(node["examples"], dict):
            yield pointer, node
        for key, value in node.items():
            yield from _media_types(value, f"{pointer}/{_escape(key)}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _media_types(value, f"{pointer}/{index}")


def test_every_example_in_the_spec_matches_its_schema() -> None:
    checked = 0
    for pointer, media_type in _media_types(spec()):
        for name, example in media_type["examples"].items():
            value = _resolve(example)["value"]
            assert schema_errors(value, f"{pointer}/schema") == [], f"{pointer} example {name}"
            checked += 1
    for pointer, parameter in _media_types_with_example(spec()):
        assert schema_errors(parameter["example"], f"{pointer}/schema") == [], pointer
        checked += 1
    assert checked >= 20  # the walk found the examples (24 when this was written)


def _media_types_with_example(node: Any, pointer: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if "schema" in node and "example" in node:
            yield pointer, node
        for key, value in node.items():
            yield from _media_types_with_example(value, f"{pointer}/{_escape(key)}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _media_types_with_example(value, f"{pointer}/{index}")


# --- the app's answers match the spec -----------------------------------------------------------------


def _fault(status: int = 409) -> app_errors.PartnerCenterFault:
    return app_errors.PartnerCenterFault(status, "900109", "The original upgrade is still in progress", "req-1", None)


ERROR_FACTORIES: dict[type[app_errors.UpgradeError], Callable[[], app_errors.UpgradeError]] = {
    app_errors.UpgradeError: lambda: app_errors.UpgradeError("boom"),
    app_errors.ValidationFailed: lambda: app_errors.ValidationFailed(
        [app_errors.FieldError("customerId", "is required")]
    ),
    app_errors.PayloadTooLarge: lambda: app_errors.PayloadTooLarge("the body is 20480 bytes"),
    app_errors.UnsupportedMediaType: lambda: app_errors.UnsupportedMediaType("send JSON"),
    app_errors.NotFound: lambda: app_errors.NotFound("no upgrade"),
    app_errors.BatchNotFound: lambda: app_errors.BatchNotFound("no batch"),
    app_errors.InvalidFollowLink: app_errors.InvalidFollowLink,
    app_errors.IdempotencyKeyReused: lambda: app_errors.IdempotencyKeyReused("other body"),
    app_errors.IdempotencyKeyInFlight: lambda: app_errors.IdempotencyKeyInFlight("in flight"),
    app_errors.NotEligible: lambda: app_errors.NotEligible(
        "no", app_errors.PartnerCenterFault(200, None, "no", None, None)
    ),
    app_errors.PartnerCenterRejected: lambda: app_errors.PartnerCenterRejected("no", _fault(400)),
    app_errors.UpgradeConflict: lambda: app_errors.UpgradeConflict("busy", _fault(409)),
    app_errors.PartnerCenterUnknownUpgrade: lambda: app_errors.PartnerCenterUnknownUpgrade("unknown", _fault(404)),
    app_errors.ConsentRequired: lambda: app_errors.ConsentRequired("consent"),
    app_errors.MfaRequired: lambda: app_errors.MfaRequired("no mfa", _fault(401)),
    app_errors.SamCredentialsRejected: lambda: app_errors.SamCredentialsRejected("secret"),
    app_errors.PartnerCenterFailed: lambda: app_errors.PartnerCenterFailed("5xx", _fault(500)),
    app_errors.PartnerCenterAccessDenied: lambda: app_errors.PartnerCenterAccessDenied("2032", _fault(403)),
    app_errors.BatchNotFinished: lambda: app_errors.BatchNotFinished("fromBatch: batch is Running"),
    app_errors.BatchFinished: lambda: app_errors.BatchFinished("batch is Completed"),
    app_errors.PartnerCenterTimeout: lambda: app_errors.PartnerCenterTimeout("slow"),
    app_errors.PartnerCenterThrottled: lambda: app_errors.PartnerCenterThrottled("429", 30, _fault(429)),
    app_errors.DependencyUnavailable: lambda: app_errors.DependencyUnavailable("storage down"),
    app_errors.DependencyMisconfigured: lambda: app_errors.DependencyMisconfigured("403"),
    app_errors.Unauthenticated: lambda: app_errors.Unauthenticated("expired"),
    app_errors.Forbidden: lambda: app_errors.Forbidden("Upgrades.Create"),
}


def _all_error_classes() -> set[type[app_errors.UpgradeError]]:
    found: set[type[app_errors.UpgradeError]] = set()
    pending = [app_errors.UpgradeError]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    return {cls for cls in found if inspect.getmodule(cls) is app_errors}


def test_every_error_class_of_the_app_is_covered_here() -> None:
    assert _all_error_classes() == set(ERROR_FACTORIES), "add the new error class to ERROR_FACTORIES and the spec"


@pytest.mark.parametrize("error_class", sorted(ERROR_FACTORIES, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_every_problem_the_app_answers_is_described(error_class: type[app_errors.UpgradeError]) -> None:
    error = ERROR_FACTORIES[error_class]()
    response = problem_response(error, CORRELATION_ID)
    described = described_statuses()
    operations = [
        (method, path)
        for (method, path), template in OPERATIONS.items()
        if str(response.status_code) in described[f"{method} {template}"]
        # a follow link's 401 is invalid-follow-link; every other route's is unauthenticated
        and (
            response.status_code != 401
            or template.startswith("/api/follow/") == (error_class is app_errors.InvalidFollowLink)
        )
        and (response.status_code != 403 or not template.startswith("/api/follow/"))
    ]
    assert operations, f"status {response.status_code} of {error_class.__name__} is described for no operation"
    for method, path in operations:
        assert check_response(method, path, response.status_code, _wire(response), response.get_body()) == []


def test_a_batch_start_is_422_only_for_a_reused_idempotency_key() -> None:
    """POST /api/batches reaches no Partner Center: its one 422 is `idempotency-key-reused`, listed as such."""
    reused = problem_response(ERROR_FACTORIES[app_errors.IdempotencyKeyReused](), CORRELATION_ID)
    not_eligible = problem_response(ERROR_FACTORIES[app_errors.NotEligible](), CORRELATION_ID)

    assert check_response("POST", "/api/batches", 422, _wire(reused), reused.get_body()) == []
    assert check_response("POST", "/api/batches", 422, _wire(not_eligible), not_eligible.get_body()) != []


def test_the_configuration_and_internal_problems_are_described() -> None:
    for response in (configuration_problem(CORRELATION_ID), internal_problem(CORRELATION_ID)):
        for method, path in OPERATIONS:
            assert check_response(method, path, response.status_code, _wire(response), response.get_body()) == []


def _spec_problem_types() -> set[str]:
    found = set()
    for name, schema in spec()["components"]["schemas"].items():
        if name.startswith("Problem") and name != "Problem":
            narrowing = schema["allOf"][1]["properties"]["type"]
            found |= set(narrowing.get("enum", [narrowing.get("const")]))
    return found


def _app_problem_types() -> set[str]:
    slugs = {cls.slug for cls in ERROR_FACTORIES} | {"configuration-error", "internal-error"}
    return {TYPE_PREFIX + slug for slug in slugs}


def test_the_spec_names_exactly_the_problem_types_of_the_app() -> None:
    assert _spec_problem_types() == _app_problem_types()


def test_docs_problems_lists_every_problem_type() -> None:
    text = (ROOT / "docs" / "problems.md").read_text(encoding="utf-8")
    missing = sorted(t for t in _app_problem_types() if f"`{t}`" not in text)
    assert missing == []


class _PartnerCenter:
    def __init__(self, existing: str | None = None) -> None:
        self.existing = existing

    def check_eligibility(self, customer_id: str, product_family: str, deadline: Any) -> Eligibility:
        return Eligibility(is_eligible=self.existing is None, upgrade_id=self.existing, reason=None)

    def create_upgrade(self, customer_id: str, product_family: str, request_id: str, deadline: Any) -> CreatedUpgrade:
        return CreatedUpgrade(upgrade_id=UPGRADE_ID, location=f"productUpgrades/{UPGRADE_ID}")


class _Tracker:
    def __init__(self, stored: UpgradeRecord | None = None) -> None:
        self.stored = stored

    def start(self, record: UpgradeRecord, *, new: bool = False) -> UpgradeRecord:
        return self.stored or record


class _Clock:
    def now(self) -> float:
        return NOW

    def monotonic(self) -> float:
        return NOW

    def sleep(self, seconds: float) -> None:
        raise AssertionError("nothing waits when building the 202")


def _accepted(partner_center: _PartnerCenter, tracker: _Tracker) -> tuple[int, dict[str, str], bytes]:
    settings = Settings.from_env(
        {
            "KEY_VAULT_URL": "https://contoso-kv.vault.azure.net/",
            "PARTNER_TENANT_ID": "contoso.onmicrosoft.com",
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "CALLER_API_AUDIENCE": "7d0c7a41-3b9f-4a52-9c1e-6f2d8b4a1c30",
        }
    )
    service = UpgradeService(settings, partner_center, lambda: None, lambda: tracker, _Clock())
    accepted = service.submit(UpgradeRequest(CUSTOMER_ID, "Azure", None), None, CORRELATION_ID)
    body = accepted_body(accepted, BASE_URL)
    headers = {
        "Location": _follow_link(accepted.upgrade_id, accepted.customer_id),
        "Retry-After": str(accepted.retry_after),
    }
    response = app_json_response(202, body, headers)
    return response.status_code, _wire(response), response.get_body()


def test_an_accepted_upgrade_matches_the_spec() -> None:
    status, headers, body = _accepted(_PartnerCenter(), _Tracker())
    assert status == 202
    assert check_response("POST", f"{BASE_URL}/api/upgrades", status, headers, body) == []


def test_an_existing_final_upgrade_is_still_an_accepted_upgrade() -> None:
    status, headers, body = _accepted(_PartnerCenter(existing=UPGRADE_ID), _Tracker(stored=_final_record()))
    assert json.loads(body)["status"] == "Completed" and json.loads(body)["existing"] is True
    assert check_response("POST", "/api/upgrades", status, headers, body) == []


@pytest.mark.parametrize(
    "record",
    [
        _record(),
        _record(last_checked_at=None, partner_center_status=None, checks=0, line_items=[], correlation_id=None),
        _record(error={"code": "partner-center-timeout", "message": "slow", "transient": True}),
        _final_record(),
        _record(
            status=State.FAILED, next_check_at=None, error={"code": "900110", "message": "no", "failedLineItems": 1}
        ),
        _record(status=State.TIMED_OUT, next_check_at=None, error={"code": "TrackingTimedOut", "message": "72 h"}),
    ],
    ids=["in-progress", "recovered", "transient-error", "completed", "failed", "timed-out"],
)
def test_status_answers_match_the_spec(record: UpgradeRecord) -> None:
    status, headers, body = _status_response(record)
    assert check_response("GET", f"{BASE_URL}{STATUS_PATH}?customerId={CUSTOMER_ID}", status, headers, body) == []


def test_the_callback_body_is_a_final_status_resource() -> None:
    record = _final_record()
    record.callback_state = CallbackState.PENDING
    body = json.dumps(upgrade_resource(record), separators=(",", ":"))
    assert schema_errors(json.loads(body), "/components/schemas/UpgradeStatusFinal") == []
    assert iso(NOW) == "2026-11-21T12:00:00.000Z"  # the timestamp shape the spec's pattern expects


# --- the checker reports what does not match ---------------------------------------------------------------


def _valid_202() -> tuple[dict[str, str], dict[str, Any]]:
    _, headers, body = _accepted(_PartnerCenter(), _Tracker())
    return headers, json.loads(body)


def _problem_409() -> tuple[dict[str, str], dict[str, Any]]:
    response = problem_response(ERROR_FACTORIES[app_errors.UpgradeConflict](), CORRELATION_ID)
    return _wire(response), json.loads(response.get_body())


def _case_undescribed_status() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, body = _valid_202()
    return "POST", "/api/upgrades", 200, headers, body


def _case_missing_location() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, body = _valid_202()
    del headers["Location"]
    return "POST", "/api/upgrades", 202, headers, body


def _case_extra_member() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, body = _valid_202()
    return "POST", "/api/upgrades", 202, headers, {**body, "eta": "soon"}


def _case_in_progress_answer_claims_completed() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    status, headers, body = _status_response(_record())
    return "GET", STATUS_PATH, status, headers, {**json.loads(body), "status": "Completed"}


def _case_problem_as_plain_json() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, body = _problem_409()
    return "POST", "/api/upgrades", 409, {**headers, "content-type": "application/json"}, body


def _case_conflict_without_partner_center() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, body = _problem_409()
    del body["partnerCenter"]
    return "POST", "/api/upgrades", 409, headers, body


def _case_problem_other_correlation_id() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, body = _problem_409()
    return "POST", "/api/upgrades", 409, {**headers, "x-correlation-id": str(uuid.uuid4())}, body


def _case_problem_status_differs() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, body = _problem_409()
    return "POST", "/api/upgrades", 422, headers, body


def _case_retry_after_not_a_number() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, body = _valid_202()
    return "POST", "/api/upgrades", 202, {**headers, "Retry-After": "soon"}, body


def _case_retry_after_out_of_range() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, body = _valid_202()
    return "POST", "/api/upgrades", 202, {**headers, "Retry-After": "3600"}, body


def _case_location_of_another_upgrade() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, body = _valid_202()
    other = status_uri(BASE_URL, str(uuid.uuid4()), CUSTOMER_ID)
    return "POST", "/api/upgrades", 202, {**headers, "Location": other}, body


def _case_missing_correlation_id() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, body = _valid_202()
    del headers["x-correlation-id"]
    return "POST", "/api/upgrades", 202, headers, body


def _case_unknown_route() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, body = _valid_202()
    return "DELETE", STATUS_PATH, 202, headers, body


def _case_body_on_401() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    return "GET", STATUS_PATH, 401, {"content-type": "text/plain", "x-correlation-id": CORRELATION_ID}, b"Unauthorized"


def _case_not_json() -> tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]:
    headers, _ = _valid_202()
    return "POST", "/api/upgrades", 202, headers, b"<html>accepted</html>"


NEGATIVE_CASES: dict[str, tuple[Callable[[], tuple[str, str, int, dict[str, str], dict[str, Any] | bytes]], str]] = {
    "undescribed status": (_case_undescribed_status, "status 200 is not described"),
    "202 without Location": (_case_missing_location, "header Location is missing"),
    "member not in the schema": (_case_extra_member, "Additional properties are not allowed ('eta'"),
    "202 status claims Completed": (_case_in_progress_answer_claims_completed, "'InProgress' was expected"),
    "problem sent as application/json": (_case_problem_as_plain_json, "application/json is not a described media type"),
    "conflict without partnerCenter": (_case_conflict_without_partner_center, "'partnerCenter' is a required property"),
    "problem correlationId differs": (_case_problem_other_correlation_id, "differs from x-correlation-id"),
    "problem status differs": (_case_problem_status_differs, "differs from the HTTP status 422"),
    "Retry-After not a number": (_case_retry_after_not_a_number, "header Retry-After: 'soon' is not"),
    "Retry-After out of range": (_case_retry_after_out_of_range, "header Retry-After: at /: 3600 is greater"),
    "Location of another upgrade": (_case_location_of_another_upgrade, "does not point at upgrade"),
    "no x-correlation-id": (_case_missing_correlation_id, "header x-correlation-id is missing"),
    "unknown route": (_case_unknown_route, "no operation in openapi/openapi.yaml for DELETE"),
    "body on 401": (_case_body_on_401, "text/plain is not a described media type"),
    "body not JSON": (_case_not_json, "body is not UTF-8 JSON"),
}


@pytest.mark.parametrize("case", list(NEGATIVE_CASES))
def test_the_checker_reports_responses_that_do_not_match(case: str) -> None:
    build, expected = NEGATIVE_CASES[case]
    method, path, status, headers, body = build()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    violations = check_response(method, path, status, headers, raw)
    assert any(expected in v for v in violations), violations


def test_the_checker_refuses_an_empty_401_now_that_the_app_answers_every_401_itself() -> None:
    assert check_response("POST", "/api/upgrades", 401, {"content-length": "0"}, b"") != []


def test_the_checker_matches_paths_as_the_functions_host_routes_them() -> None:
    headers, body = _valid_202()
    raw = json.dumps(body).encode()
    for path in ("/api/upgrades", "/API/Upgrades/", f"{BASE_URL}/api/upgrades?code=abc"):
        assert check_response("post", path, 202, headers, raw) == [], path


def test_assert_all_described_lists_every_violation_at_once() -> None:
    headers, body = _valid_202()
    good = Observed("POST", "/api/upgrades", 202, headers, json.dumps(body).encode())
    assert_all_described([good, good])
    bad_status = ("POST", "/api/upgrades", 418, headers, json.dumps(body).encode())
    bad_body = Observed("POST", "/api/upgrades", 202, headers, b"{}")
    with pytest.raises(AssertionError) as caught:
        assert_all_described([good, bad_status, bad_body])
    message = str(caught.value)
    assert "in 3 response(s)" in message
    assert "status 418 is not described" in message and "'upgradeId' is a required property" in message


# --- examples/webhook_receiver.py verifies what the app signs -------------------------------------------------

SIGNING_KEY = "callback-signing-key-value"


def _signed_callback(record: UpgradeRecord, at: float) -> tuple[bytes, dict[str, str]]:
    """A callback exactly as shared.callbacks.CallbackSender sends it (compact JSON, app's signer)."""
    body = json.dumps(upgrade_resource(record), separators=(",", ":")).encode()
    timestamp = str(int(at))
    headers = {
        "Content-Type": "application/json",
        "X-Upgrade-Timestamp": timestamp,
        "X-Upgrade-Signature": app_sign(SIGNING_KEY.encode(), timestamp, body),
    }
    return body, headers


def test_the_receiver_verifies_the_apps_signature() -> None:
    body, headers = _signed_callback(_final_record(), NOW)
    timestamp, signature = headers["X-Upgrade-Timestamp"], headers["X-Upgrade-Signature"]
    verify = webhook_receiver.verify
    assert verify(SIGNING_KEY.encode(), timestamp, signature, body, NOW + 299)
    assert verify(SIGNING_KEY.encode(), timestamp, signature, body, NOW - 299)
    assert not verify(SIGNING_KEY.encode(), timestamp, signature, body + b" ", NOW)
    assert not verify(b"another key", timestamp, signature, body, NOW)
    assert not verify(SIGNING_KEY.encode(), timestamp, signature, body, NOW + 301)
    assert not verify(SIGNING_KEY.encode(), timestamp, signature, body, NOW - 301)
    assert not verify(SIGNING_KEY.encode(), str(int(NOW) + 1), signature, body, NOW)
    assert not verify(SIGNING_KEY.encode(), "soon", signature, body, NOW)
    assert not verify(SIGNING_KEY.encode(), timestamp, signature.removeprefix("sha256="), body, NOW)
    assert not verify(SIGNING_KEY.encode(), timestamp, "sha256=\u00e9" + signature[8:], body, NOW)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    behaviour: dict[str, Any] = {"fail": False}

    def on_event(event: dict[str, Any]) -> None:
        if behaviour["fail"]:
            raise RuntimeError("downstream unavailable")
        events.append(event)

    server = webhook_receiver.make_server("127.0.0.1", 0, SIGNING_KEY.encode(), on_event, clock=time.time)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/upgrades", events, behaviour
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_receiver_handles_each_final_state_once(receiver: tuple[str, list[dict[str, Any]], dict[str, Any]]) -> None:
    url, events, behaviour = receiver
    record = _final_record()

    behaviour["fail"] = True
    body, headers = _signed_callback(record, time.time())
    assert requests.post(url, data=body, headers=headers, timeout=5).status_code == 500  # the app retries

    behaviour["fail"] = False
    record.callback_attempts = 1  # a retry: new timestamp, new signature, different bytes
    body, headers = _signed_callback(record, time.time())
    assert requests.post(url, data=body, headers=headers, timeout=5).status_code == 200

    record.callback_attempts = 2
    body, headers = _signed_callback(record, time.time())
    assert requests.post(url, data=body, headers=headers, timeout=5).status_code == 200
    assert [e["status"] for e in events] == ["Completed"]

    tampered = {**headers, "X-Upgrade-Signature": "sha256=" + "0" * 64}
    assert requests.post(url, data=body, headers=tampered, timeout=5).status_code == 401
    stale_body, stale = _signed_callback(record, time.time() - 600)
    assert requests.post(url, data=stale_body, headers=stale, timeout=5).status_code == 401
    assert len(events) == 1


# --- examples/microservice_client.py follows the contract ------------------------------------------------------


def test_the_example_client_refuses_a_base_url_ending_in_api_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="ends in /api: give the app's root"):
        microservice_client.UpgradeClient("https://contoso-upgrades.azurewebsites.net/api/", "key")


def test_the_example_client_sends_no_key_header_when_it_has_no_key() -> None:
    client = microservice_client.UpgradeClient("http://127.0.0.1:7071", None)
    assert "X-Caller-Key" not in client.session.headers


class _ScriptedApp:
    """A loopback stand-in that answers a script of responses, each checked against the spec first."""

    def __init__(self, script: list[tuple[int, dict[str, str], bytes]]) -> None:
        self.script = list(script)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.violations: list[str] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._reply()

            def do_GET(self) -> None:
                self._reply()

            def _reply(self) -> None:
                app.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers, body = app.script.pop(0)
                app.violations += check_response(self.command, self.path, status, headers, body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _ScriptedApp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def _problem(error: app_errors.UpgradeError) -> tuple[int, dict[str, str], bytes]:
    response = problem_response(error, CORRELATION_ID)
    return response.status_code, _wire(response), response.get_body()


def _rebased(answer: tuple[int, dict[str, str], bytes], base_url: str) -> tuple[int, dict[str, str], bytes]:
    status, headers, body = answer
    if "Location" in headers:
        headers = {**headers, "Location": headers["Location"].replace(BASE_URL, base_url)}
        body = body.replace(BASE_URL.encode(), base_url.encode())
    return status, headers, body


def test_the_client_retries_safely_and_follows_location_to_the_end() -> None:
    sleeps: list[float] = []
    with _ScriptedApp([]) as app:
        app.script.extend(
            [
                _problem(app_errors.DependencyUnavailable("storage down", retry_after=7)),
                _problem(app_errors.IdempotencyKeyInFlight("in flight")),
                _rebased(_accepted(_PartnerCenter(), _Tracker()), app.base_url),
                _rebased(_status_response(_record()), app.base_url),
                _status_response(_final_record()),
            ]
        )
        client = microservice_client.UpgradeClient(app.base_url, "the-caller-key", sleep=sleeps.append)
        final = client.upgrade(CUSTOMER_ID, idempotency_key="crm-42")
    assert app.violations == []
    assert final["status"] == "Completed"
    assert [(method, path.split("?")[0]) for method, path, _ in app.requests] == [
        ("POST", "/api/upgrades"),
        ("POST", "/api/upgrades"),
        ("POST", "/api/upgrades"),
        ("GET", FOLLOW_PATH),
        ("GET", FOLLOW_PATH),
    ]
    assert all(headers["x-caller-key"] == "the-caller-key" for _, _, headers in app.requests)
    assert {headers["idempotency-key"] for method, _, headers in app.requests if method == "POST"} == {"crm-42"}
    assert sleeps == [7, 2, 60, 180]  # Retry-After of the 503, the 409, the 202 and the in-progress 202


def test_the_client_raises_problems_that_retrying_cannot_fix() -> None:
    with _ScriptedApp([]) as app:
        app.script.append(_problem(ERROR_FACTORIES[app_errors.NotEligible]()))
        client = microservice_client.UpgradeClient(app.base_url, "key", sleep=lambda _: None)
        with pytest.raises(microservice_client.ProblemError) as caught:
            client.submit(CUSTOMER_ID)
    assert app.violations == []
    assert caught.value.status == 422 and caught.value.slug == "not-eligible"
    assert caught.value.correlation_id == CORRELATION_ID
    assert len(app.requests) == 1


# --- requests.http has every call ----------------------------------------------------------------------------


def test_requests_http_has_a_request_for_every_operation_on_a_variable_base() -> None:
    """Its banner (and make run's) says it has every call. Follow links are signed by the app, so they are reached
    through a `Location` (requests 2 and 21), not typed in."""
    text = (ROOT / "requests.http").read_text(encoding="utf-8")
    sent = re.findall(r"^(GET|POST|PUT|PATCH|DELETE) \{\{base\}\}(/api/[^?\s]*)", text, re.MULTILINE)
    assert sent and not re.search(r"^(GET|POST) https?://", text, re.MULTILINE)  # every request goes to {{base}}
    assert re.search(r"^@base = http://127\.0\.0\.1:\{\{port\}\}$", text, re.MULTILINE)

    def covered(method: str, path: str) -> bool:
        pattern = re.sub(r"\\\{\w+\\\}", r"[^/]+", re.escape(path))
        return any(m == method.upper() and re.fullmatch(pattern, p) for m, p in sent)

    missing = [
        f"{method.upper()} {path}"
        for method, path in _spec_operations(connector=False)
        if not path.startswith("/api/follow/") and not covered(method, path)
    ]
    assert missing == []
    assert re.search(r"^GET \{\{\w+\.response\.headers\.Location\}\}$", text, re.MULTILINE)
    assert "Accept: text/csv" in text
