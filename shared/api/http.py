"""The HTTP routes: parse, call the services, shape the answer. Every answer has `x-correlation-id`.

Every `Location` is a follow link (shared/api/follow_links.py); bodies carry `statusUri`, the keyed status URL.
Both are built for the request being answered (shared/api/base_url.py), also when an Idempotency-Key replays.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.api.accepted import accepted_body
from shared.api.base_url import base_url
from shared.api.callers import RequestContext, guard, note_targets, request_scope, requested_by
from shared.api.follow_links import FOLLOW_PARTS, batch_customers_path, batch_path, upgrade_path
from shared.api.problems import configuration_problem, internal_problem, problem_response
from shared.api.validation import is_customer_id, parse_guid, parse_idempotency_key, parse_upgrade_request
from shared.correlation import correlation_id_from, correlation_scope, get_logger
from shared.errors import InvalidFollowLink, UpgradeError, where
from shared.services import Services, services
from shared.settings import ConfigurationError
from shared.upgrades.resource import retry_after_seconds, upgrade_resource

log = get_logger(__name__)


def create_upgrade(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(req, "CreateUpgrade", _create)


def get_upgrade_status(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(req, "GetUpgradeStatus", _status)


def follow(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(req, "Follow", _follow)


def get_audit(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.audit import audit_answer  # noqa: PLC0415 - loads with the first audit read

    return _answer(req, "GetAudit", lambda request, _: audit_answer(services(), request))


def _create(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    app = services()
    base = _base_url(req, app)
    request = parse_upgrade_request(
        req.get_body(), req.headers.get("content-type"), app.settings.callback_allowed_hosts
    )
    note_targets(request.customer_id)
    key = parse_idempotency_key(req.headers.get("idempotency-key"))
    accepted = app.upgrades.submit(request, key, correlation_id, requested_by())
    note_targets(accepted.upgrade_id)
    body = accepted_body(accepted, base)
    location = app.follow_links.upgrade_location(base, accepted.upgrade_id, accepted.customer_id)
    return _json(202, body, {"Location": location, "Retry-After": str(accepted.retry_after)})


def _status(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    app = services()
    base = _base_url(req, app)
    upgrade_id = parse_guid(req.route_params.get("upgradeId"), "upgradeId", required=True)
    customer_id = parse_guid(req.params.get("customerId"), "customerId", required=False)
    assert upgrade_id  # required=True
    return _status_answer(app, base, upgrade_id, customer_id)


def _follow(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    """`GET /api/follow/{upgrades|batches}/{id}` and `/api/follow/batches/{id}/customers` (the progress page's CSV):
    the keyed answer once the signature over that path holds, else 401 for all."""
    app = services()
    base = _base_url(req, app)
    resource, resource_id = req.route_params.get("resource", "").lower(), req.route_params.get("id", "")
    part = (req.route_params.get("part") or "").lower()
    customer_id = req.params.get("customerId", "")
    if not is_customer_id(resource_id) or part not in FOLLOW_PARTS.get(resource, ()):
        raise InvalidFollowLink()
    expires, sig = req.params.get("expires"), req.params.get("sig")
    if resource == "batches":
        path = batch_customers_path(resource_id) if part else batch_path(resource_id)
        app.follow_links.check(path, customer_id, expires, sig)
        from shared.api.batches import batch_answer, batch_csv_answer  # noqa: PLC0415 - loads only for batch links

        if part:
            return batch_csv_answer(app, resource_id.lower())
        return batch_answer(app, base, resource_id.lower(), req.headers.get("accept"), followed=True)
    if not is_customer_id(customer_id):
        raise InvalidFollowLink()
    app.follow_links.check(upgrade_path(resource_id), customer_id, expires, sig)
    return _status_answer(app, base, resource_id.lower(), customer_id.lower(), keyed=False)


def _status_answer(
    app: Services, base: str, upgrade_id: str, customer_id: str | None, *, keyed: bool = True
) -> func.HttpResponse:
    # lazy: with the tracker and the storage SDKs: first read pays
    from shared.tracking.on_read import read_status  # noqa: PLC0415

    record = read_status(app.tracker, upgrade_id, customer_id)
    body = upgrade_resource(record) if keyed else without_callback_url(upgrade_resource(record))
    if record.is_final:
        return _json(200, body, {})
    wait = (record.next_check_at or app.clock.now()) - app.clock.now()
    location = app.follow_links.upgrade_location(base, record.upgrade_id, record.customer_id)
    return _json(202, body, {"Location": location, "Retry-After": str(retry_after_seconds(wait))})


def without_callback_url(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as a key-less caller sees it: callback state and attempts, `callback.url` null. A Power
    Automate or Logic Apps trigger URL carries its SAS signature (`sig=`) in the query: whoever holds a follow
    link must not be able to trigger the caller's flow."""
    return {**resource, "callback": {**resource["callback"], "url": None}}


def _answer(
    req: func.HttpRequest, function: str, action: Callable[[func.HttpRequest, str], func.HttpResponse]
) -> func.HttpResponse:
    """The one HTTP answer wrapper: caller and role first (shared/api/callers.py), then the action; errors become
    problem+json; the audit entry (shared/api/audit.py) is written before the answer leaves."""
    correlation_id = correlation_id_from(req.headers.get("x-correlation-id"))
    context = RequestContext(function)
    with correlation_scope(correlation_id), request_scope(context):
        started = time.monotonic()
        try:
            guard(req, context, services())
            response = action(req, correlation_id)
        except UpgradeError as error:
            response = problem_response(error, correlation_id)
        except ConfigurationError as error:
            log.error("%s", error)
            response = configuration_problem(correlation_id)
        except Exception as error:  # the single place that turns the unexpected into a clean 500
            log.error("unexpected %s in %s at %s", type(error).__name__, function, where(error))
            response = internal_problem(correlation_id)
        response.headers["x-correlation-id"] = correlation_id
        _audit(context, response, correlation_id)
        log.info(
            "%s %s -> %d in %.0f ms", function, req.method, response.status_code, (time.monotonic() - started) * 1000
        )
        return response


def _audit(context: RequestContext, response: func.HttpResponse, correlation_id: str) -> None:
    from shared.api import audit  # noqa: PLC0415 - loads with the first audited answer

    if audit.should_audit(context, response.status_code):
        if context.reason:
            log.warning("%s refused: %s", context.function, context.reason)
        audit.write_entry(services(), context, response, correlation_id)


def _json(status: int, body: dict[str, Any], headers: dict[str, str]) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, headers=headers, mimetype="application/json")


def _base_url(req: func.HttpRequest, app: Services) -> str:
    return base_url(req.url, req.headers.get("host"), app.settings.public_base_url)
