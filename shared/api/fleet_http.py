"""The fleet's read routes: `GET /api/upgrades` (function `ListUpgrades`) and
`GET /api/customers/{customerId}/eligibility` (function `CheckEligibility`). Parse, call, shape; the answer
and error handling are the upgrade routes' (shared/api/http.py)."""

from __future__ import annotations

import azure.functions as func

from shared.api.http import _answer, _json
from shared.api.list_query import encode_token, parse_list_query
from shared.api.validation import parse_guid
from shared.services import services
from shared.upgrades.resource import upgrade_resource

NO_STORE = {"Cache-Control": "no-store"}


def list_upgrades(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(req, "ListUpgrades", _list)


def customer_eligibility(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(req, "CheckEligibility", _eligibility)


def _list(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    # lazy: the store and the Table SDK: the first list pays
    from shared.upgrades.listing import list_page  # noqa: PLC0415

    query = parse_list_query(req.params)
    records, position = list_page(services().store, query.customer_id, query.status, query.top, query.position)
    token = encode_token(query, position) if position else None
    return _json(200, {"items": [upgrade_resource(r) for r in records], "continuationToken": token}, dict(NO_STORE))


def _eligibility(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    # lazy: the Partner Center client and requests
    from shared.upgrades.eligibility import check_eligibility  # noqa: PLC0415

    app = services()
    customer_id = parse_guid(req.route_params.get("customerId"), "customerId", required=True)
    assert customer_id  # required=True
    return _json(200, check_eligibility(app.partner_center, customer_id, app.clock), dict(NO_STORE))
