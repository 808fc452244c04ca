"""The tracking state machine: record an accepted upgrade, apply a status report, schedule the next check,
deliver the callback. The queue path (`on_message.py`) and the read path (`on_read.py`) drive it.

Handling is idempotent: a message older than the record (its `attempt` is below the record's check count) is
a duplicate; a final record is never changed except for its callback delivery state; every save is
conditional on the record's ETag, and a lost race keeps the other update.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol

from shared.clock import Clock
from shared.concurrency import submit
from shared.correlation import get_logger
from shared.errors import PartnerCenterUnknownUpgrade, UpgradeError
from shared.partner_center.budget import Budget
from shared.partner_center.client import PartnerCenterClient, StatusReport
from shared.settings import Settings
from shared.storage.records import ConcurrentUpdate, UpgradeStore
from shared.storage.status_message import TrackMessage
from shared.storage.status_queue import StatusQueue
from shared.tracking import callback_policy, policy
from shared.tracking.callbacks import CallbackSender
from shared.upgrades.model import CallbackState, UpgradeRecord

log = get_logger(__name__)


class UpgradeFinalListener(Protocol):
    """Told once an upgrade is final (and again for a duplicate message: it must be idempotent); a storage failure
    raises, so the queue path retries. Batches waiting on the upgrade settle their row (BatchCompletion)."""

    def upgrade_final(self, record: UpgradeRecord) -> None: ...


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
        final_listener: Callable[[], UpgradeFinalListener] | None = None,
    ) -> None:
        """`final_listener`: builds the listener on first use (it needs the tracker's own collaborators)."""
        self.settings = settings
        self._final_listener = final_listener
        self.store = store
        self.clock = clock
        self._queue = queue
        self._pc = partner_center
        self._callbacks = callbacks

    # --- CreateUpgrade: record the accepted upgrade and schedule its first check -----------------

    def start(self, record: UpgradeRecord, *, new: bool = False) -> UpgradeRecord:
        """Record and schedule; never raises. Returns the record as stored (an existing one wins).

        The record's own write stays last (after its list index entities, shared/storage/records.py). With
        `new` (Partner Center has just created this upgrade, so no record of it can exist yet) the first
        check's message is sent side by side with those writes: one storage round trip less on the create
        path, and each of the two still recovers the upgrade when the other fails (docs/design.md, "An
        accepted upgrade is never lost"). If a record exists after all (Partner Center de-duplicated a
        repeated MS-RequestId), that message is one extra check, which the queue path handles like any
        duplicate. Without `new`, an existing record is tracked already and gets no second message.
        """
        scheduled = submit(partial(self._schedule_first, TrackMessage.for_record(record))) if new else None
        stored = self._record(record)
        if scheduled is not None:
            scheduled.result()  # never raises; waited for so that the 202 follows both writes
        elif stored is record:
            self._schedule_first(TrackMessage.for_record(record))
        return stored

    def _record(self, record: UpgradeRecord) -> UpgradeRecord:
        """Insert the record; an existing one is returned instead (adopting the callback). Never raises."""
        try:
            if not self.store.insert(record):
                existing = self.store.get(record.upgrade_id)
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
        return record

    def _schedule_first(self, message: TrackMessage) -> None:
        try:
            self._queue.schedule(message, self.settings.first_check_seconds)
        except UpgradeError as error:
            log.error(
                "upgrade %s was accepted but its first status check could not be queued (%s); a GET on its "
                "Location recovers tracking",
                message.upgrade_id,
                error.detail,
            )

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
        record.updated_at = self.clock.now()
        if record.is_final:
            record.callback_state = CallbackState.PENDING
            self.schedule(record, 0)
        self.save(record)

    # --- the steps both paths use ----------------------------------------------------------------

    def status_report(self, record: UpgradeRecord, budget_seconds: float) -> StatusReport:
        """Partner Center's status of the upgrade; an upgrade it no longer knows reads as Failed."""
        budget = Budget(budget_seconds, self.clock, attempts=2, wait_when_throttled=False)
        try:
            return self._pc.get_status(record.upgrade_id, record.customer_id, record.product_family, budget)
        except PartnerCenterUnknownUpgrade as unknown:
            if not record.is_stored:
                raise
            code = unknown.partner_center.code if unknown.partner_center else None
            return policy.unknown_upgrade_report(code, unknown.detail)

    def record_check(self, record: UpgradeRecord, report: StatusReport, *, from_queue: bool) -> None:
        """One status check's whole sequence, for both paths: apply the report, schedule the next check, guard
        the callback a final state makes due, save (ETag), and once final: log, tell the final listener, deliver.

        The queue path (`from_queue`) makes the first callback attempt itself, its follow-up queued before the
        final write; a storage failure of the listener raises (the host retries the message). The read path
        (a GET) never waits on a receiver: its guard is a message due at once, which makes the attempt, and a
        listener failure is only logged (that message runs the listener again)."""
        policy.apply_report(record, report, self.clock.now(), self.settings)
        self.schedule_next_check(record)
        if record.is_final and record.callback_state == CallbackState.PENDING:
            # Queued before the final write: if this instance dies after it, or loses that write to another
            # handler whose own message already ran, this message still sends the callback.
            if from_queue:
                self.guard_callback(record)
            else:
                self.schedule(record, 0)
        if not self.save(record) or not record.is_final:
            return
        self.log_final(record)
        if from_queue:
            self.reached_final(record)
            if record.callback_state == CallbackState.PENDING:
                self.deliver(record)
            return
        try:
            self.reached_final(record)
        except UpgradeError as error:
            log.warning("batches waiting on upgrade %s not settled yet: %s", record.upgrade_id, error.detail)

    def schedule_next_check(self, record: UpgradeRecord) -> None:
        if record.next_check_at is not None and not record.is_final:
            self.schedule(record, round(record.next_check_at - self.clock.now()))

    def reschedule_throttled(self, record: UpgradeRecord, delay: int) -> None:
        log.info(
            "Partner Center throttled the status check of upgrade %s; next check in %d s", record.upgrade_id, delay
        )
        record.next_check_at = record.updated_at = self.clock.now()
        record.next_check_at += delay
        self.schedule(record, delay)
        if record.is_stored:
            self.save(record)

    def remember_error(self, record: UpgradeRecord, error: UpgradeError) -> None:
        record.error = {"code": error.slug, "message": error.detail, "transient": True}
        record.updated_at = self.clock.now()
        if not record.is_stored:
            return
        try:
            self.save(record)
        except UpgradeError as storage_error:
            log.warning("could not record the failed check of upgrade %s: %s", record.upgrade_id, storage_error.detail)

    def schedule(self, record: UpgradeRecord, delay: int) -> None:
        self._queue.schedule(TrackMessage.for_record(record), delay)

    def save(self, record: UpgradeRecord) -> bool:
        """False when another handler updated the record first (its update is kept)."""
        try:
            self.store.save(record)
        except ConcurrentUpdate:
            log.info("upgrade %s was updated concurrently; keeping the other update", record.upgrade_id)
            return False
        return True

    def log_final(self, record: UpgradeRecord) -> None:
        log.info(
            "upgrade %s is %s (Partner Center status %r)",
            record.upgrade_id,
            record.status,
            record.partner_center_status,
        )

    def reached_final(self, record: UpgradeRecord) -> None:
        """The upgrade is final: batches waiting on it settle their row (shared/batches/completion.py).
        Idempotent, so a duplicate message runs it again safely; a storage failure raises for a retry."""
        if self._final_listener is not None:
            self._final_listener().upgrade_final(record)

    def guard_callback(self, record: UpgradeRecord) -> None:
        """Queue the next callback attempt of a final record before anything it guards happens: before this
        attempt, and on the queue path before the final state is even written. Whatever instance dies after
        this, and wherever, that message delivers (or finds the callback delivered and does nothing); it is
        also the retry after a failed attempt. Raises UpgradeError when the queue is down (nothing sent yet)."""
        self.schedule(record, callback_policy.next_attempt_delay(self.settings, record.callback_attempts))

    def deliver(self, record: UpgradeRecord) -> None:
        """One callback attempt, its follow-up already queued by `guard_callback`. Never raises."""
        self._callbacks.deliver_for(record)
        self.save(record)
