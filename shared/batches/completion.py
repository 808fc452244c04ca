"""Finishing a batch: rows waiting on an upgrade that became final, and the batch's one callback.

The batch becomes Completed (or Cancelled) inside the write that settles its last open row (`BatchStore.settle`,
or the cancel's save): that ETag-conditional change happens once, and only the caller that made it sends the
callback. Callbacks are at least once whatever instance dies, as for upgrades: before that write, `guard` queues a
`callback` message (BatchStore's `before_completing`), and before every later attempt the message for the next
one is queued; each such message finds the callback delivered (and does nothing) or still pending (and tries).
"""

from __future__ import annotations

from shared.batches.links import BatchLinks
from shared.batches.messages import BatchMessage, BatchQueue
from shared.batches.model import BatchRecord, Outcome
from shared.batches.outcomes import final_settlement
from shared.batches.resource import batch_resource
from shared.batches.store import BatchStore
from shared.clock import Clock
from shared.correlation import get_logger
from shared.settings import Settings
from shared.tracking.callback_policy import next_attempt_delay, state_after
from shared.tracking.callbacks import CallbackSender
from shared.upgrades.model import CallbackState, UpgradeRecord

log = get_logger(__name__)

OPEN = frozenset({Outcome.PENDING, Outcome.UPGRADING})


class BatchCompletion:
    def __init__(  # noqa: PLR0917 - the collaborators of one use case, built in shared/services.py
        self,
        settings: Settings,
        store: BatchStore,
        queue: BatchQueue,
        links: BatchLinks,
        callbacks: CallbackSender,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._store = store
        self._queue = queue
        self._links = links
        self._callbacks = callbacks
        self._clock = clock

    def upgrade_final(self, record: UpgradeRecord) -> None:
        """Tracking's hook: an upgrade is final; settle the rows of the batches waiting on it."""
        for batch_id, customer_id in self._links.batches_waiting_on(record.upgrade_id):
            if customer_id != record.customer_id:
                continue
            batch, completed = self._store.settle(batch_id, [final_settlement(record, OPEN)], self._clock.now())
            self.settled(batch, completed)

    def settled(self, batch: BatchRecord | None, completed: bool) -> None:
        """After a settle: the caller that completed the batch sends its callback (its guard is queued)."""
        if batch is None or not completed:
            return
        log.info("batch %s is %s: %s", batch.batch_id, batch.status, {str(k): v for k, v in batch.counts.items() if v})
        if batch.callback_state == CallbackState.PENDING:
            self._attempt(batch)

    def guard(self, batch: BatchRecord) -> None:
        """BatchStore's `before_completing`: the message that retries the first attempt (or makes it, if this
        instance dies first). Raises when the queue is down, before anything was written."""
        if batch.callback_url:
            self._queue.send(BatchMessage("callback", batch.batch_id), next_attempt_delay(self._settings, 0))

    def retry_callback(self, batch_id: str) -> None:
        """A `callback` message: the next attempt, after queueing the one after it (doubling the delay)."""
        batch = self._store.get(batch_id)
        if batch is None or not batch.is_done or batch.callback_state != CallbackState.PENDING:
            return
        delay = next_attempt_delay(self._settings, batch.callback_attempts)
        self._queue.send(BatchMessage("callback", batch.batch_id), delay)
        self._attempt(batch)

    def _attempt(self, batch: BatchRecord) -> None:
        """One attempt, its follow-up already queued. Never raises for the receiver's failures."""
        assert batch.callback_url
        result = self._callbacks.deliver(batch.callback_url, batch_resource(batch, batch.base_url))
        batch.callback_attempts += 1
        batch.updated_at = self._clock.now()
        batch.callback_state = state_after(result, batch.callback_attempts)
        if batch.callback_state == CallbackState.FAILED:
            log.warning("callback of batch %s failed after %d attempts", batch.batch_id, batch.callback_attempts)
        if not self._store.save(batch):
            log.info("batch %s changed while its callback was sent; keeping the other update", batch.batch_id)
