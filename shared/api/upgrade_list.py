"""`GET /api/upgrades` (function `ListUpgrades`): recorded upgrades, newest first, in pages. Parse, call, shape."""

from __future__ import annotations

import azure.functions as func

from shared.api.answers import answer, json_answer
from shared.api.list_query import encode_token, parse_list_query
from shared.services import services
from shared.upgrades.resource import upgrade_resource

NO_STORE = {"Cache-Control": "no-store"}


def list_upgrades(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, "ListUpgrades", _list)


def _list(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    # lazy: the store and the Table SDK: the first list pays
    from shared.upgrades.listing import list_page  # noqa: PLC0415

    query = parse_list_query(req.params)
    records, position = list_page(services().store, query.customer_id, query.status, query.top, query.position)
    token = encode_token(query, position) if position else None
    body = {"items": [upgrade_resource(r) for r in records], "continuationToken": token}
    return json_answer(200, body, dict(NO_STORE))
