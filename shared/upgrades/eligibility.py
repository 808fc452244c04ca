"""`GET /api/customers/{customerId}/eligibility`: one live eligibility check, nothing created or recorded.

The same Partner Center call and budget as the create path (shared/upgrades/create.py), so its failures are
answered exactly as `POST /api/upgrades` answers them (docs/design.md, "GET /api/customers/{customerId}/eligibility").
"""

from __future__ import annotations

from typing import Any

from shared.clock import Clock, iso
from shared.correlation import get_logger
from shared.partner_center.budget import Budget
from shared.partner_center.client import PartnerCenterClient
from shared.upgrades.create import CREATE_BUDGET_SECONDS
from shared.upgrades.model import PRODUCT_FAMILY

log = get_logger(__name__)


def check_eligibility(partner_center: PartnerCenterClient, customer_id: str, clock: Clock) -> dict[str, Any]:
    """The eligibility resource for `customer_id` (a validated, lower-case GUID)."""
    eligibility = partner_center.check_eligibility(customer_id, PRODUCT_FAMILY, Budget(CREATE_BUDGET_SECONDS, clock))
    log.info(
        "customer %s: eligible %s, existing upgrade %s", customer_id, eligibility.is_eligible, eligibility.upgrade_id
    )
    return {
        "customerId": customer_id,
        "productFamily": PRODUCT_FAMILY,
        "isEligible": eligibility.is_eligible,
        "upgradeId": eligibility.upgrade_id,
        "reason": eligibility.reason,
        "checkedAt": iso(clock.now()),
    }
