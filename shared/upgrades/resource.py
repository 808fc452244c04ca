"""The upgrade as callers see it: the status resource, its keyed status URL and the polling hint (docs/design.md,
"Status resource").

Not in shared/api/ because the queue side sends the same resource: a callback (shared/tracking/callbacks.py)
POSTs it, and the HTTP adapters answer it. The record (shared/upgrades/model.py) stays plain typed data.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from shared.clock import iso
from shared.upgrades.model import UpgradeRecord


def upgrade_resource(record: UpgradeRecord) -> dict[str, Any]:
    """The status resource, as GET returns it and callbacks send it."""
    return {
        "upgradeId": record.upgrade_id,
        "customerId": record.customer_id,
        "productFamily": record.product_family,
        "status": str(record.status),
        "partnerCenterStatus": record.partner_center_status,
        "lineItems": record.line_items,
        "error": record.error,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "lastCheckedAt": iso(record.last_checked_at),
        "nextCheckAt": iso(record.next_check_at),
        "checks": record.checks,
        "partnerCenterLocation": record.partner_center_location,
        "correlationId": record.correlation_id,
        "requestedBy": record.requested_by,
        "callback": {
            "url": record.callback_url,
            "state": str(record.callback_state),
            "attempts": record.callback_attempts,
        },
    }


def status_uri(base_url: str, upgrade_id: str, customer_id: str) -> str:
    """`{base}/api/upgrades/{id}?customerId={customer}`: the customerId lets the route recover a lost record."""
    return f"{base_url}/api/upgrades/{quote(upgrade_id, safe='')}?customerId={quote(customer_id, safe='')}"


def retry_after_seconds(seconds: float) -> int:
    """Retry-After for pollers: the time to the next check, clamped to 5-300 s."""
    return int(min(300, max(5, round(seconds))))
