"""`GET /api/follow/…` (Follow, anonymous): a signed link answers what its keyed route answers, read-only; a
missing, changed or expired signature gets one 401 for all (docs/design.md, "Follow links")."""

from __future__ import annotations

import azure.functions as func

from shared.api.answers import answer, request_base
from shared.api.follow_links import FOLLOW_PARTS, batch_customers_path, batch_path, follow_links, upgrade_path
from shared.api.upgrades import status_answer
from shared.api.validation import is_customer_id
from shared.errors import InvalidFollowLink
from shared.services import services


def follow(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, "Follow", _follow)


def _follow(req: func.HttpRequest, correlation_id: str) -> func.HttpResponse:
    """`GET /api/follow/{upgrades|batches}/{id}` and `/api/follow/batches/{id}/customers` (the progress page's CSV):
    the keyed answer once the signature over that path holds, else 401 for all."""
    svc = services()
    base = request_base(req, svc)
    resource, resource_id = req.route_params.get("resource", "").lower(), req.route_params.get("id", "")
    part = (req.route_params.get("part") or "").lower()
    customer_id = req.params.get("customerId", "")
    if not is_customer_id(resource_id) or part not in FOLLOW_PARTS.get(resource, ()):
        raise InvalidFollowLink()
    expires, sig = req.params.get("expires"), req.params.get("sig")
    if resource == "batches":
        path = batch_customers_path(resource_id) if part else batch_path(resource_id)
        follow_links(svc).check(path, customer_id, expires, sig)
        from shared.api.batches import batch_answer, batch_csv_answer  # noqa: PLC0415 - loads only for batch links

        if part:
            return batch_csv_answer(svc, resource_id.lower())
        return batch_answer(svc, base, resource_id.lower(), req.headers.get("accept"), followed=True)
    if not is_customer_id(customer_id):
        raise InvalidFollowLink()
    follow_links(svc).check(upgrade_path(resource_id), customer_id, expires, sig)
    return status_answer(svc, base, resource_id.lower(), customer_id.lower(), keyed=False)
