"""`POST /api/upgrades` (CreateUpgrade) and `GET /api/upgrades/{upgradeId}` (GetUpgradeStatus): parse, call the
services, shape the answer. Every `Location` is a follow link (shared/api/follow_links.py); bodies carry
`statusUri`, the keyed status URL; both are built for the request being answered, also when an Idempotency-Key
replays."""

from __future__ import annotations

import azure.functions as func

from shared.api.accepted import accepted_body
from shared.api.answers import answer, json_answer, request_base, without_callback_url
from shared.api.callers import note_targets, requested_by
from shared.api.follow_links import follow_links
from shared.api.validation import parse_guid, parse_idempotency_key, parse_upgrade_request
from shared.services import Services, services
from shared.upgrades.resource import retry_after_seconds, upgrade_resource


def create_upgrade(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, "CreateUpgrade", _create)


def get_upgrade_status(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, "GetUpgradeStatus", _status)


def _create(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    svc = services()
    base = request_base(req, svc)
    request = parse_upgrade_request(
        req.get_body(), req.headers.get("content-type"), svc.settings.callback_allowed_hosts
    )
    note_targets(request.customer_id)
    key = parse_idempotency_key(req.headers.get("idempotency-key"))
    accepted = svc.upgrades.submit(request, key, correlation_id, requested_by())
    note_targets(accepted.upgrade_id)
    body = accepted_body(accepted, base)
    location = follow_links(svc).upgrade_location(base, accepted.upgrade_id, accepted.customer_id)
    return json_answer(202, body, {"Location": location, "Retry-After": str(accepted.retry_after)})


def _status(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    svc = services()
    base = request_base(req, svc)
    upgrade_id = parse_guid(req.route_params.get("upgradeId"), "upgradeId", required=True)
    customer_id = parse_guid(req.params.get("customerId"), "customerId", required=False)
    assert upgrade_id  # required=True
    return status_answer(svc, base, upgrade_id, customer_id)


def status_answer(
    svc: Services, base: str, upgrade_id: str, customer_id: str | None, *, keyed: bool = True
) -> func.HttpResponse:
    # lazy: with the tracker and the storage SDKs: first read pays
    from shared.tracking.on_read import read_status  # noqa: PLC0415

    record = read_status(svc.tracker, upgrade_id, customer_id)
    body = upgrade_resource(record) if keyed else without_callback_url(upgrade_resource(record))
    if record.is_final:
        return json_answer(200, body, {})
    wait = (record.next_check_at or svc.clock.now()) - svc.clock.now()
    location = follow_links(svc).upgrade_location(base, record.upgrade_id, record.customer_id)
    return json_answer(202, body, {"Location": location, "Retry-After": str(retry_after_seconds(wait))})
