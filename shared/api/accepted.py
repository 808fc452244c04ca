"""The 202 body of POST /api/upgrades, rendered from the typed `Accepted` for the request being answered: the
same for the first answer and every Idempotency-Key replay, with `statusUri` on this request's base."""

from __future__ import annotations

from typing import Any

from shared.upgrades.accepted import Accepted
from shared.upgrades.resource import status_uri


def accepted_body(accepted: Accepted, base_url: str) -> dict[str, Any]:
    return {**accepted.stored_body(), "statusUri": status_uri(base_url, accepted.upgrade_id, accepted.customer_id)}
