"""The queue path: one `UpgradeStatus` message asks for one status check of one upgrade.

A duplicate, late or out-of-date message changes nothing; a transient failure raises `RetryLater` (the host
retries the message, then parks it in `<queue>-poison`) after the record notes the error.

Callbacks are at least once: every delivery attempt, and the final write that makes one due, comes after the
message for the next attempt is on the queue (`Tracker.guard_callback`), so no instance death and no lost ETag
race leaves a pending callback without a message to send it.
"""

from __future__ import annotations

from shared.correlation import get_logger
from shared.errors import PartnerCenterThrottled, PartnerCenterUnknownUpgrade, RetryLater, UpgradeError
from shared.storage.status_message import InvalidMessage, TrackMessage
from shared.tracking.tracker import Tracker
from shared.upgrades.model import CallbackState, UpgradeRecord

log = get_logger(__name__)

CHECK_BUDGET_SECONDS = 60.0


def handle_message(tracker: Tracker, message: TrackMessage) -> None:
    record = tracker.store.get(message.upgrade_id)
    if record and record.customer_id != message.customer_id:
        raise InvalidMessage(f"customerId does not match the record of upgrade {message.upgrade_id}")
    if record and not record.callback_url and message.callback_url:
        adopt_callback(record, message.callback_url)  # a GET recovered the record without it
        if not record.is_final and not tracker.save(record):  # a final one is saved with its first attempt
            raise RetryLater(f"upgrade {record.upgrade_id} changed while its callbackUrl was adopted")
    if record and record.is_final:
        tracker.reached_final(record)  # again: a crash may have come between the final save and the batch hook
        if record.callback_state == CallbackState.PENDING:
            tracker.guard_callback(record)
            tracker.deliver(record)
        else:
            log.info("upgrade %s is already %s; message ignored", record.upgrade_id, record.status)
        return
    if record and message.attempt is not None and message.attempt < record.checks:
        log.info(
            "upgrade %s: message for check %d is older than the record (%d checks); ignored",
            record.upgrade_id,
            message.attempt,
            record.checks,
        )
        return
    record = record or UpgradeRecord.new(
        message.upgrade_id,
        message.customer_id,
        tracker.clock.now(),
        correlation_id=message.correlation_id,
        callback_url=message.callback_url,
    )
    try:
        report = tracker.status_report(record, CHECK_BUDGET_SECONDS)
    except PartnerCenterThrottled as throttled:
        tracker.reschedule_throttled(record, throttled.retry_after or 1)
        return
    except PartnerCenterUnknownUpgrade:
        log.warning("Partner Center does not know upgrade %s; nothing to track", message.upgrade_id)
        return
    except UpgradeError as error:
        tracker.remember_error(record, error)
        raise RetryLater(f"status check of upgrade {record.upgrade_id} failed: {error.detail}") from None
    tracker.record_check(record, report, from_queue=True)


def adopt_callback(record: UpgradeRecord, url: str) -> None:
    """The callback URL the message carries, for a record written without it (recovered by a GET after the
    record write was lost); a final record's callback becomes due. Saved by whatever the handler saves next."""
    log.info("upgrade %s: callbackUrl taken from its status message", record.upgrade_id)
    record.callback_url = url
    if record.is_final and record.callback_state == CallbackState.NONE:
        record.callback_state = CallbackState.PENDING
