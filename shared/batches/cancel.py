"""Cancelling a batch (docs/design.md, "Campaigns"): record the cancel on the batch entity first (one
ETag-conditional write: from then on no worker starts Partner Center work for it, see `worker.py`), then move the
rows still `pending` to `cancelled` in entity-group transactions of at most 99 rows plus the batch entity, so the
counts always match the rows. The first `INLINE_ROWS` are settled in the request; the rest by a `cancel` message
on the batch queue, which goes on where the last one stopped (so a crash loses nothing).

Rows `upgrading` are not touched: the upgrade was created at Partner Center and cannot be stopped; tracking
settles them, and the settle that empties the last open row makes the batch `Cancelled` (and sends its callback).
"""

from __future__ import annotations

from typing import Any

from shared.batches.completion import BatchCompletion
from shared.batches.messages import BatchMessage, BatchQueue
from shared.batches.model import BatchRecord, BatchState, Outcome, Settlement
from shared.batches.store import MAX_RACES, MAX_TRANSACTION, BatchStore
from shared.clock import Clock
from shared.correlation import get_logger
from shared.errors import BatchFinished, BatchNotFound, DependencyUnavailable

log = get_logger(__name__)

INLINE_ROWS = 300  # pending rows cancelled inside the request; the rest by a queue message
MESSAGE_ROWS = 2000  # pending rows cancelled per `cancel` message
REASON = "cancelled before its work started"


class BatchCancel:
    def __init__(self, store: BatchStore, queue: BatchQueue, completion: BatchCompletion, clock: Clock) -> None:
        self._store = store
        self._queue = queue
        self._completion = completion
        self._clock = clock

    def cancel(self, batch_id: str, cancelled_by: dict[str, Any] | None = None) -> BatchRecord:
        """Cancel (or, for a batch already cancelling, go on cancelling); the batch as it is afterwards.
        `cancelled_by`: the caller ({kind, id, name}), recorded by the first cancel only."""
        batch = self._record(batch_id, cancelled_by)
        if batch.status == BatchState.CANCELLING:
            batch = self.settle_pending(batch_id, INLINE_ROWS) or batch
        return batch

    def _record(self, batch_id: str, cancelled_by: dict[str, Any] | None) -> BatchRecord:
        for _ in range(MAX_RACES):
            batch = self._store.get(batch_id)
            if batch is None:
                raise BatchNotFound(f"no batch {batch_id}")
            if batch.status == BatchState.COMPLETED:
                raise BatchFinished(f"batch {batch_id} is Completed; there is nothing left to cancel")
            if batch.is_cancelled:
                return batch
            previous = batch.status
            now = self._clock.now()
            batch.status, batch.listing_done, batch.updated_at = BatchState.CANCELLING, True, now
            batch.cancelled_by = cancelled_by
            completed = batch.may_complete()
            if completed:
                batch.complete(now)
            if self._store.save(batch):
                pending = batch.counts[Outcome.PENDING]
                log.info("batch %s cancelled while %s: %d rows pending", batch_id, previous, pending)
                self._completion.settled(batch, completed)
                return batch
        raise DependencyUnavailable(f"batch {batch_id} is too busy to update; retry", retry_after=2)

    def settle_pending(self, batch_id: str, limit: int) -> BatchRecord | None:
        """Pending rows become `cancelled`, up to `limit` of them; if more are left, a `cancel` message goes on."""
        batch: BatchRecord | None = None
        done = 0
        while True:
            rows = self._store.query(batch_id, Outcome.PENDING, None, MAX_TRANSACTION - 1)
            if not rows:
                return batch or self._store.get(batch_id)
            if done >= limit:
                self._queue.send(BatchMessage("cancel", batch_id))
                return batch
            settlements = [Settlement(r.customer_id, Outcome.CANCELLED, REASON) for r in rows]
            known = {r.customer_id: r for r in rows}
            batch, completed = self._store.settle(batch_id, settlements, self._clock.now(), known=known)
            self._completion.settled(batch, completed)
            done += len(rows)
