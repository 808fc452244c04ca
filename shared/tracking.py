"""Tracking an accepted upgrade until it is final.

- `interpret` turns Partner Center's status strings (undocumented beyond "Completed") into our states:
  compared case-insensitively; "completed" with no failed line item is Completed; anything with "fail" in
  the upgrade or a line item is Failed; everything else stays InProgress (unknown strings are logged).
- Checks are scheduled with the queue's visibility delay: STATUS_FIRST_CHECK_SECONDS, then doubling up to
  STATUS_MAX_INTERVAL_SECONDS; a 429 reschedules after its Retry-After.
- Handling is idempotent: a message older than the record (its `attempt` is below the record's check count)
  is a duplicate; a final record is never changed except for its callback delivery state.
- Transient failures raise `RetryLater`, so the host retries and finally poisons the message; the record keeps
  the last error meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.callbacks import CallbackSender, Delivery
from shared.clock import Clock
from shared.correlation import get_logger
from shared.errors import NotFound, PartnerCenterThrottled, PartnerCenterUnknownUpgrade, RetryLater, UpgradeError
from shared.partner_center import Budget, PartnerCenterClient, StatusReport
from shared.queue_message import InvalidMessage, TrackMessage
from shared.settings import Settings
from shared.status_queue import StatusQueue
from shared.status_store import CallbackState, ConcurrentUpdate, State, UpgradeRecord, UpgradeStore

log = get_logger(__name__)

CHECK_BUDGET_SECONDS = 60.0
LIVE_CHECK_BUDGET_SECONDS = 15.0
MAX_CALLBACK_ATTEMPTS = 5
KNOWN_IN_PROGRESS = frozenset({"pending", "inprogress", "in progress", "in_progress", "notstarted", "queued"})


@dataclass(frozen=True)
class Outcome:
    state: State
    error: dict[str, Any] | None


def interpret(report: StatusReport) -> Outcome:
    status = (report.status or "").strip().lower()
    failed_items = [i for i in report.line_items if "fail" in str(i.get("status", "")).lower()]
    if "fail" in status or failed_items:
        details = report.error_details or next(
            (i.get("errorDetails") for i in failed_items if isinstance(i.get("errorDetails"), dict)), None
        )
        return Outcome(State.FAILED, _error(details, failed_items))
    if status == "completed":
        return Outcome(State.COMPLETED, None)
    if status not in KNOWN_IN_PROGRESS:
        log.warning("Partner Center sent an unrecognised upgrade status %r; still tracking it", report.status)
    return Outcome(State.IN_PROGRESS, None)


def _error(details: Any, failed_items: list[dict[str, Any]]) -> dict[str, Any]:
    details = details if isinstance(details, dict) else {}
    error: dict[str, Any] = {
        "code": str(details.get("code") or "UpgradeFailed"),
        "message": str(details.get("description") or details.get("message") or "Partner Center reported a failure"),
    }
    if failed_items:
        error["failedLineItems"] = len(failed_items)
    return error


def next_delay(settings: Settings, count: int) -> int:
    """Seconds before the next check (or callback retry) after `count` of them: doubling, capped."""
    return min(settings.first_check_seconds * int(2 ** min(count, 30)), settings.max_interval_seconds)


def is_stale(record: UpgradeRecord, now: float, settings: Settings) -> bool:
    """Not final and no check for longer than twice its interval: its queue message may be gone."""
    if record.is_final:
        return False
    last = record.last_checked_at or record.created_at
    interval = (record.next_check_at - last) if record.next_check_at else settings.first_check_seconds
    return now - last > 2 * max(interval, 1)


class Tracker:
    def __init__(
        self,
        settings: Settings,
        *,
        store: UpgradeStore,
        queue: StatusQueue,
        partner_center: PartnerCenterClient,
        callbacks: CallbackSender,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._store = store
        self._queue = queue
        self._pc = partner_center
        self._callbacks = callbacks
        self._clock = clock

    # --- CreateUpgrade: record the accepted upgrade and schedule its first check -----------------

    def start(self, record: UpgradeRecord) -> UpgradeRecord:
        """Record and schedule; never raises. Returns the record as stored (an existing one wins)."""
        first = TrackMessage(record.upgrade_id, record.customer_id, record.product_family, record.correlation_id, 0)
        try:
            if not self._store.insert(record):
                existing = self._store.get(record.upgrade_id)
                log.info("upgrade %s is already tracked", record.upgrade_id)
                if existing and record.callback_url:
                    self._adopt_callback(existing, record.callback_url)
                return existing or record
        except UpgradeError as error:
            log.error(
                "upgrade %s was accepted by Partner Center but could not be recorded (%s); its queue message or a "
                "GET on its Location recovers it",
                record.upgrade_id,
                error.detail,
            )
        try:
            self._queue.schedule(first, self._settings.first_check_seconds)
        except UpgradeError as error:
            log.error(
                "upgrade %s was accepted but its first status check could not be queued (%s); a GET on its "
                "Location recovers tracking",
                record.upgrade_id,
                error.detail,
            )
        return record

    def _adopt_callback(self, record: UpgradeRecord, url: str) -> None:
        """A caller who submits an upgrade that already exists still gets its callback, unless another URL was
        registered first (one receiver per upgrade). An upgrade that is already final calls back at once."""
        if record.callback_url:
            if record.callback_url != url:
                log.warning(
                    "upgrade %s already calls back another URL; the new callbackUrl is not used", record.upgrade_id
                )
            return
        record.callback_url = url
        record.updated_at = self._clock.now()
        if record.is_final:
            record.callback_state = CallbackState.PENDING
            self._schedule(record, 0)
        self._save(record)

    # --- UpgradeStatus: one queue message ----------------------------------------------------------

    def handle(self, message: TrackMessage) -> None:
        record = self._store.get(message.upgrade_id)
        if record and record.customer_id != message.customer_id:
            raise InvalidMessage(f"customerId does not match the record of upgrade {message.upgrade_id}")
        if record and record.is_final:
            if record.callback_state == CallbackState.PENDING:
                self._deliver(record)
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
        recovered = record is None
        record = record or self._new_record(message.upgrade_id, message.customer_id, message.correlation_id)
        try:
            report = self._pc.get_status(
                record.upgrade_id,
                record.customer_id,
                record.product_family,
                Budget(CHECK_BUDGET_SECONDS, attempts=2, wait_when_throttled=False),
            )
        except PartnerCenterThrottled as throttled:
            self._reschedule(record, throttled.retry_after or 1, recovered)
            return
        except PartnerCenterUnknownUpgrade as unknown:
            if recovered:
                log.warning("Partner Center does not know upgrade %s; nothing to track", message.upgrade_id)
                return
            self._finish_unknown(record, unknown, deliver_inline=True)
            return
        except UpgradeError as error:
            self._remember_error(record, error, recovered)
            raise RetryLater(f"status check of upgrade {record.upgrade_id} failed: {error.detail}") from None
        self._apply(record, report, deliver_inline=True)

    # --- GetUpgradeStatus ------------------------------------------------------------------------

    def read(self, upgrade_id: str, customer_id: str | None) -> UpgradeRecord:
        """The record for a caller, checked live with Partner Center when it is missing or stale."""
        record = self._store.get(upgrade_id)
        if record and customer_id and record.customer_id != customer_id:
            raise NotFound(f"no upgrade {upgrade_id} for customer {customer_id}")
        if record and not (customer_id and is_stale(record, self._clock.now(), self._settings)):
            return record
        if customer_id is None:
            raise NotFound(f"no upgrade {upgrade_id} is recorded; add ?customerId= to look it up in Partner Center")
        try:
            report = self._pc.get_status(
                upgrade_id,
                customer_id,
                "Azure",
                Budget(LIVE_CHECK_BUDGET_SECONDS, attempts=2, wait_when_throttled=False),
            )
        except PartnerCenterUnknownUpgrade as unknown:
            if record is None:
                raise NotFound(
                    f"Partner Center does not know upgrade {upgrade_id} for customer {customer_id}"
                ) from None
            return self._finish_unknown(record, unknown, deliver_inline=False)
        except UpgradeError as error:
            if record is None:
                raise
            log.warning(
                "live check of stale upgrade %s failed (%s); answering from the record", upgrade_id, error.detail
            )
            return record
        if record is None:
            log.info("upgrade %s was not recorded; recovered it from Partner Center", upgrade_id)
        else:
            log.info("upgrade %s was stale; checked it live and rescheduled tracking", upgrade_id)
        record = record or self._new_record(upgrade_id, customer_id, None)
        return self._apply(record, report, deliver_inline=False)

    # --- internals -------------------------------------------------------------------------------

    def _new_record(self, upgrade_id: str, customer_id: str, correlation_id: str | None) -> UpgradeRecord:
        now = self._clock.now()
        return UpgradeRecord(
            upgrade_id=upgrade_id,
            customer_id=customer_id,
            product_family="Azure",
            created_at=now,
            updated_at=now,
            partner_center_location=f"productUpgrades/{upgrade_id}",
            correlation_id=correlation_id,
        )

    def _apply(self, record: UpgradeRecord, report: StatusReport, *, deliver_inline: bool) -> UpgradeRecord:
        now = self._clock.now()
        outcome = interpret(report)
        record.checks += 1
        record.last_checked_at = record.updated_at = now
        record.partner_center_status = report.status
        record.line_items = report.line_items
        record.status, record.error = outcome.state, outcome.error
        if not record.is_final and now - record.created_at >= self._settings.max_tracking_hours * 3600:
            record.status = State.TIMED_OUT
            record.error = {
                "code": "TrackingTimedOut",
                "message": f"the upgrade was not final after {self._settings.max_tracking_hours:g} hours of tracking",
            }
        if record.is_final:
            record.next_check_at = None
            if record.callback_url and record.callback_state == CallbackState.NONE:
                record.callback_state = CallbackState.PENDING
        else:
            delay = next_delay(self._settings, record.checks)
            record.next_check_at = now + delay
            self._schedule(record, delay)
        if record.is_final and record.callback_state == CallbackState.PENDING and not deliver_inline:
            self._schedule(record, 0)  # UpgradeStatus delivers it; a GET never waits on a receiver
        if not self._save(record):
            return record
        if record.is_final:
            log.info(
                "upgrade %s is %s (Partner Center status %r)",
                record.upgrade_id,
                record.status,
                record.partner_center_status,
            )
            if record.callback_state == CallbackState.PENDING and deliver_inline:
                self._deliver(record)
        return record

    def _finish_unknown(
        self, record: UpgradeRecord, unknown: PartnerCenterUnknownUpgrade, *, deliver_inline: bool
    ) -> UpgradeRecord:
        """A recorded upgrade that Partner Center no longer knows (900106/900111) can never complete: Failed."""
        fault = unknown.partner_center
        return self._apply(
            record,
            StatusReport(
                status="Failed",
                error_details={
                    "code": fault.code if fault else "UnknownUpgrade",
                    "description": unknown.detail,
                },
            ),
            deliver_inline=deliver_inline,
        )

    def _reschedule(self, record: UpgradeRecord, delay: int, recovered: bool) -> None:
        log.info(
            "Partner Center throttled the status check of upgrade %s; next check in %d s", record.upgrade_id, delay
        )
        record.next_check_at = self._clock.now() + delay
        record.updated_at = self._clock.now()
        self._schedule(record, delay)
        if not recovered:
            self._save(record)

    def _remember_error(self, record: UpgradeRecord, error: UpgradeError, recovered: bool) -> None:
        record.error = {"code": error.slug, "message": error.detail, "transient": True}
        record.updated_at = self._clock.now()
        if recovered:
            return
        try:
            self._save(record)
        except UpgradeError as storage_error:
            log.warning("could not record the failed check of upgrade %s: %s", record.upgrade_id, storage_error.detail)

    def _schedule(self, record: UpgradeRecord, delay: int) -> None:
        message = TrackMessage(
            record.upgrade_id, record.customer_id, record.product_family, record.correlation_id, record.checks
        )
        self._queue.schedule(message, delay)

    def _save(self, record: UpgradeRecord) -> bool:
        try:
            self._store.save(record)
        except ConcurrentUpdate:
            log.info("upgrade %s was updated concurrently; keeping the other update", record.upgrade_id)
            return False
        return True

    def _deliver(self, record: UpgradeRecord) -> None:
        """One delivery attempt; failures are retried later through the queue, never raised."""
        assert record.callback_url  # PENDING implies a URL
        result = self._callbacks.deliver(record.callback_url, record.to_resource())
        record.callback_attempts += 1
        record.updated_at = self._clock.now()
        if result is Delivery.DELIVERED:
            record.callback_state = CallbackState.DELIVERED
        elif result is Delivery.REFUSED or record.callback_attempts >= MAX_CALLBACK_ATTEMPTS:
            record.callback_state = CallbackState.FAILED
            log.warning("callback for upgrade %s failed after %d attempts", record.upgrade_id, record.callback_attempts)
        else:
            self._schedule(record, next_delay(self._settings, record.callback_attempts - 1))
        self._save(record)
