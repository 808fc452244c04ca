"""One batch-queue message (kinds in `messages.py`), handled idempotently.

A `customers` message does the work of its still-pending rows and settles them in one transaction. A 429 (or
a pace too slow to wait for) puts the rest back on the queue after Retry-After as a NEW message and completes
this one, so throttling never counts toward poison; a transient failure retries that customer through a new
message with back-off, and after `MAX_CUSTOMER_ATTEMPTS` settles it as `error`. Only storage failures raise (the host
retries the message, then parks it in `<queue>-poison`).

No batch stays Running for good: a listing Partner Center refuses for good (4xx) ends the listing with the rows
listed so far and records the refusal as the batch's `error`; and on a message's last delivery (the host's
`maxDequeueCount`) a failure first gives up its work: a `customers` message settles its pending customers as
`error` ("gave up after N deliveries"), a `list` message ends the listing with the batch's `error`.

Campaigns (docs/design.md): a message for a batch whose `notBefore` has not come goes back on the queue for the
time left; a message for a cancelled batch is dropped; and a `customers` message re-reads the batch entity right
before each Partner Center call (eligibility, create: the pace gate), so a cancel recorded meanwhile stops it
before its next call. In
`upgrade` mode each customer's row is settled right after its create, so a cancel never takes a created upgrade
for a pending row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from shared.batches.cancel import MESSAGE_ROWS, BatchCancel
from shared.batches.completion import BatchCompletion
from shared.batches.messages import BatchMessage, BatchQueue
from shared.batches.model import BatchRecord, BatchState, Mode, Outcome, Settlement
from shared.batches.outcomes import BatchCancelled, CustomerWork, Throttled, Transient
from shared.batches.pacing import PaceDeferred, Pacer, WaitAllowance
from shared.batches.store import BatchStore
from shared.clock import Clock
from shared.correlation import get_logger
from shared.errors import PartnerCenterRejected, PartnerCenterThrottled, RetryLater, UpgradeError
from shared.partner_center.budget import Budget
from shared.partner_center.client import PartnerCenterClient

log = get_logger(__name__)

MAX_CUSTOMER_ATTEMPTS = 5
MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount: the last delivery before poison
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 900
LIST_PAGE_SIZE = 100
PLAN_ROWS = 200
LIST_BUDGET_SECONDS = 60.0


class BatchWorker:
    def __init__(
        self,
        *,
        store: BatchStore,
        queue: BatchQueue,
        work: CustomerWork,
        pacer: Pacer,
        partner_center: PartnerCenterClient,
        completion: BatchCompletion,
        clock: Clock,
    ) -> None:
        self._store = store
        self._queue = queue
        self._work = work
        self._pacer = pacer
        self._pc = partner_center
        self._completion = completion
        self._clock = clock

    def handle(self, message: BatchMessage, dequeue_count: int = 1) -> None:
        if message.kind == "callback":
            self._completion.retry_callback(message.batch_id)
            return
        if message.kind == "cancel":
            BatchCancel(self._store, self._queue, self._completion, self._clock).settle_pending(
                message.batch_id, MESSAGE_ROWS
            )
            return
        batch = self._store.get(message.batch_id)
        if batch is None:
            log.warning("batch %s is unknown; %s message ignored", message.batch_id, message.kind)
            return
        if not self._due(batch, message):
            return
        try:
            if message.kind == "customers":
                self._customers(batch, message)
            elif message.kind == "plan":
                self._plan(batch, message)
            else:
                self._list(batch, message)
        except Exception as error:
            if dequeue_count >= MAX_DEQUEUE_COUNT:
                self._give_up(batch, message, error)
            raise

    def _due(self, batch: BatchRecord, message: BatchMessage) -> bool:
        """Work may start: the batch is not cancelled and its notBefore has come (an early message goes back on
        the queue for the time left; the first one after it moves the batch from Scheduled to Running)."""
        if batch.is_cancelled:
            log.info("batch %s is %s; %s message dropped", batch.batch_id, batch.status, message.kind)
            return False
        left = (batch.not_before or 0.0) - self._clock.now()
        if left > 0:
            self._queue.send(message, math.ceil(left))  # never early by a rounding: a 0 s delay would spin
            return False
        while batch.status == BatchState.SCHEDULED:
            batch.status, batch.updated_at = BatchState.RUNNING, self._clock.now()
            if self._store.save(batch):
                log.info("batch %s: notBefore has come; Running", batch.batch_id)
                break
            batch = self._store.get(batch.batch_id) or batch
        return not batch.is_cancelled

    def _give_up(self, batch: BatchRecord, message: BatchMessage, error: Exception) -> None:
        """The message's last delivery failed too: end its work with a final outcome before it goes to poison
        (if storage is what fails, this fails as well and the poison message is the operator's record)."""
        if isinstance(error, UpgradeError):
            detail = error.detail
        else:  # the app's own RetryLater text; nothing of an unexpected exception but its type
            detail = str(error) if isinstance(error, RetryLater) else f"unexpected {type(error).__name__}"
        given_up = f"gave up after {MAX_DEQUEUE_COUNT} deliveries: {detail}"
        now = self._clock.now()
        if message.kind == "customers":
            settlements = [Settlement(c, Outcome.ERROR, given_up) for c in message.customer_ids]
            self._completion.settled(*self._store.settle(batch.batch_id, settlements, now))
        elif message.kind == "list":
            listing = f"listing the customers {given_up}"
            self._completion.settled(*self._store.settle(batch.batch_id, [], now, finish_listing=True, error=listing))
        log.error("batch %s: %s message %s", batch.batch_id, message.kind, given_up)

    def _customers(self, batch: BatchRecord, message: BatchMessage) -> None:
        rows = self._store.rows(batch.batch_id, message.customer_ids)
        pending = [c for c in message.customer_ids if c in rows and rows[c].outcome == Outcome.PENDING]
        settlements: list[Settlement] = []
        transient: dict[str, str] = {}
        allowance = WaitAllowance()  # this message's whole wait for its pace
        for index, customer_id in enumerate(pending):
            try:
                result = self._work.run(batch, customer_id, allowance, lambda: self._cancelled(batch.batch_id))
            except BatchCancelled:
                break
            except PaceDeferred as deferred:
                self._requeue(batch, pending[index:], message.attempt, deferred.seconds)
                break
            if isinstance(result, Throttled):
                self._pacer.throttled(result.retry_after)
                self._requeue(batch, pending[index:], message.attempt, result.retry_after)
                break
            if isinstance(result, Transient):
                transient[customer_id] = result.reason
            elif batch.mode == Mode.UPGRADE:  # a create cannot be undone: on record before the next customer's work
                self._completion.settled(*self._store.settle(batch.batch_id, [result], self._clock.now(), known=rows))
            else:
                settlements.append(result)
        exhausted = message.attempt + 1 >= MAX_CUSTOMER_ATTEMPTS
        if exhausted:
            settlements += [
                Settlement(c, Outcome.ERROR, f"gave up after {MAX_CUSTOMER_ATTEMPTS} attempts: {reason}")
                for c, reason in transient.items()
            ]
        if settlements:
            now = self._clock.now()
            self._completion.settled(*self._store.settle(batch.batch_id, settlements, now, known=rows))
        if transient and not exhausted:
            delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**message.attempt)
            self._requeue(batch, list(transient), message.attempt + 1, delay)

    def _cancelled(self, batch_id: str) -> bool:
        """Re-read right before each Partner Center call of a customer's work: a cancel recorded since stops it."""
        current = self._store.get(batch_id)
        if current is None or current.is_cancelled:
            log.info("batch %s was cancelled; no more Partner Center work for it", batch_id)
            return True
        return False

    def _requeue(self, batch: BatchRecord, customer_ids: Sequence[str], attempt: int, delay: float) -> None:
        again = BatchMessage("customers", batch.batch_id, customer_ids=tuple(customer_ids), attempt=attempt)
        self._queue.send(again, delay)

    def _plan(self, batch: BatchRecord, message: BatchMessage) -> None:
        rows = self._store.query(batch.batch_id, Outcome.PENDING, message.after, PLAN_ROWS)
        self._queue.send_chunks(batch.batch_id, [r.customer_id for r in rows])
        if len(rows) == PLAN_ROWS:
            self._queue.send(BatchMessage("plan", batch.batch_id, after=rows[-1].customer_id))

    def _list(self, batch: BatchRecord, message: BatchMessage) -> None:
        if batch.listing_done:
            return
        allowance = WaitAllowance()
        budget = Budget(
            LIST_BUDGET_SECONDS, self._clock, 2, wait_when_throttled=False, gate=lambda: self._pacer.acquire(allowance)
        )
        try:
            page = self._pc.list_customers(message.next_page, LIST_PAGE_SIZE, budget)
        except PaceDeferred as deferred:
            self._queue.send(message, deferred.seconds)
            return
        except PartnerCenterThrottled as throttled:
            wait = float(throttled.retry_after or 1)
            self._pacer.throttled(wait)
            self._queue.send(message, wait)
            return
        except UpgradeError as error:
            if not _refused_for_good(error):
                raise RetryLater(f"listing the customers of batch {batch.batch_id} failed: {error.detail}") from None
            # the batch ends with the customers listed so far, the refusal as its error
            log.warning("Partner Center refused the customer list of batch %s: %s", batch.batch_id, error.detail)
            detail = f"Partner Center refused the customer list: {error.detail}"
            now = self._clock.now()
            self._completion.settled(*self._store.settle(batch.batch_id, [], now, finish_listing=True, error=detail))
            return
        now = self._clock.now()
        still_listing = self._store.add_listed(batch.batch_id, page.customers, now)
        self._queue.send_chunks(batch.batch_id, [c for c, _ in page.customers])  # rows not added are skipped
        if not still_listing:
            log.info("batch %s: another list message finished the listing; the rest of this page is dropped",
                     batch.batch_id)  # fmt: skip
            return
        if page.next_page is not None:
            self._queue.send(BatchMessage("list", batch.batch_id, next_page=page.next_page))
            return
        log.info("batch %s: the customer list is complete", batch.batch_id)
        self._completion.settled(*self._store.settle(batch.batch_id, [], now, finish_listing=True))


def _refused_for_good(error: UpgradeError) -> bool:
    """A 4xx that asking again will not change (not 401, 408 or 429: those are auth, timeout and throttling)."""
    if isinstance(error, PartnerCenterRejected):
        return True
    status = error.partner_center.http_status if error.partner_center else None
    return status is not None and 400 <= status < 500 and status not in {401, 408, 429}
