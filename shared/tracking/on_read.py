"""The read path: `GET /api/upgrades/{id}` answers from the record, and checks Partner Center live when the
record is missing or stale and the caller named the customer (recovering an upgrade lost after its 202). Partner
Center's "unknown" answer is remembered briefly per instance, so repeated GETs of a random id cost one call."""

from __future__ import annotations

from shared.correlation import get_logger
from shared.errors import NotFound, PartnerCenterUnknownUpgrade, UpgradeError
from shared.tracking import policy
from shared.tracking.tracker import Tracker
from shared.tracking.unknown_upgrades import UNKNOWN
from shared.upgrades.model import UpgradeRecord

log = get_logger(__name__)

LIVE_CHECK_BUDGET_SECONDS = 15.0


def read_status(tracker: Tracker, upgrade_id: str, customer_id: str | None) -> UpgradeRecord:
    record = tracker.store.get(upgrade_id)
    if record and customer_id and record.customer_id != customer_id:
        raise NotFound(f"no upgrade {upgrade_id} for customer {customer_id}")
    if record and not (customer_id and policy.is_stale(record, tracker.clock.now(), tracker.settings)):
        return record
    if customer_id is None:
        raise NotFound(f"no upgrade {upgrade_id} is recorded; add ?customerId= to look it up in Partner Center")
    unknown = NotFound(f"Partner Center does not know upgrade {upgrade_id} for customer {customer_id}")
    if record is None and UNKNOWN.known_unknown(upgrade_id, customer_id, tracker.clock.now()):
        raise unknown  # asked a moment ago: no second Partner Center call (unknown_upgrades.py)
    checked = record or UpgradeRecord.new(upgrade_id, customer_id, tracker.clock.now())
    try:
        report = tracker.status_report(checked, LIVE_CHECK_BUDGET_SECONDS)
    except PartnerCenterUnknownUpgrade:  # raised only for an upgrade we have no record of
        UNKNOWN.remember(upgrade_id, customer_id, tracker.clock.now())
        raise unknown from None
    except UpgradeError as error:
        if record is None:
            raise
        log.warning("live check of stale upgrade %s failed (%s); answering from the record", upgrade_id, error.detail)
        return record
    if record is None:
        log.info("upgrade %s was not recorded; recovered it from Partner Center", upgrade_id)
    else:
        log.info("upgrade %s was stale; checked it live and rescheduled tracking", upgrade_id)
    tracker.record_check(checked, report, from_queue=False)
    return checked
