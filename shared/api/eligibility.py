"""`GET /api/customers/{customerId}/eligibility` (function `CheckEligibility`): one live check, nothing recorded."""

from __future__ import annotations

import azure.functions as func

from shared.api.answers import answer, json_answer
from shared.api.validation import parse_guid
from shared.services import services

NO_STORE = {"Cache-Control": "no-store"}


def customer_eligibility(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, "CheckEligibility", _eligibility)


def _eligibility(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    # lazy: the Partner Center client and requests
    from shared.upgrades.eligibility import check_eligibility  # noqa: PLC0415

    svc = services()
    customer_id = parse_guid(req.route_params.get("customerId"), "customerId", required=True)
    assert customer_id  # required=True
    return json_answer(200, check_eligibility(svc.partner_center, customer_id, svc.clock), dict(NO_STORE))
