"""What POST /api/upgrades (and a batch's create for one customer) returns: the accepted upgrade, typed.

The HTTP adapter renders it as the 202 body, adding `statusUri` and `Location` for its own request's base
(shared/api/accepted.py). The Idempotency-Key keeps it as JSON for replays: `stored_body` and `from_stored` are
the one conversion, and the stored form holds no URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.upgrades.model import State


@dataclass(frozen=True)
class Accepted:
    upgrade_id: str
    customer_id: str
    product_family: str
    status: State  # as stored: an existing record's status wins
    partner_center_location: str
    existing: bool  # Partner Center already had an upgrade for this customer
    correlation_id: str | None
    retry_after: int  # seconds to the first status check, for Retry-After

    def stored_body(self) -> dict[str, Any]:
        """The answer kept for Idempotency-Key replays (the 202 body's fields; no URL)."""
        return {
            "upgradeId": self.upgrade_id,
            "customerId": self.customer_id,
            "productFamily": self.product_family,
            "status": str(self.status),
            "partnerCenterLocation": self.partner_center_location,
            "existing": self.existing,
            "correlationId": self.correlation_id,
        }

    @classmethod
    def from_stored(cls, body: dict[str, Any], retry_after: int) -> Accepted:
        upgrade_id = str(body["upgradeId"])
        return cls(
            upgrade_id=upgrade_id,
            customer_id=str(body["customerId"]),
            product_family=str(body["productFamily"]),
            status=State(body["status"]),
            partner_center_location=str(body.get("partnerCenterLocation") or f"productUpgrades/{upgrade_id}"),
            existing=bool(body.get("existing")),
            correlation_id=body.get("correlationId"),
            retry_after=retry_after,
        )
