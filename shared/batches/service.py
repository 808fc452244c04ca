"""Starting a batch (Idempotency-Key -> rows and batch entity -> first queue message -> 202) and reading it.

Nothing reaches Partner Center here: the work happens on the batch queue. The Idempotency-Key component is the one
POST /api/upgrades uses (shared/storage/idempotency.py; keys of the two routes are kept apart by a prefix).

Order: rows and batch entity (`queued` false) -> the key's stored response -> the first message -> `queued`
true. If queueing the first message fails, the caller gets 503 and the stored batch waits: a retry with the same
Idempotency-Key replays it and sends the first message then (docs/design.md "Batches"). Without a key, the
stored batch is never started and the retry is a new batch.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.batches.messages import BatchMessage, BatchQueue
from shared.batches.model import (
    RUNNING_RETRY_AFTER_SECONDS,
    BatchRecord,
    BatchRequest,
    BatchState,
    CustomerRow,
    Outcome,
)
from shared.batches.store import BatchStore
from shared.clock import Clock
from shared.correlation import get_logger
from shared.errors import BatchNotFinished, BatchNotFound
from shared.storage.idempotency import Claim, Idempotency, StoredAnswer

log = get_logger(__name__)

KEY_PREFIX = "batches\n"


@dataclass(frozen=True)
class Started:
    """The batch as stored (or, for a replay, as it is now); the HTTP adapter renders it on its request's base."""

    batch: BatchRecord
    retry_after: int

    @property
    def batch_id(self) -> str:
        return self.batch.batch_id


class BatchService:
    def __init__(
        self, store: BatchStore, queue: BatchQueue, idempotency: Callable[[], Idempotency], clock: Clock
    ) -> None:
        self._store = store
        self._queue = queue
        self._idempotency = idempotency
        self._clock = clock

    def start(
        self,
        request: BatchRequest,
        key: str | None,
        correlation_id: str,
        base_url: str,
        requested_by: dict[str, Any] | None = None,
    ) -> Started:
        def work(claim: Claim | None) -> Started:
            batch = self._store_batch(request, correlation_id, base_url, requested_by)
            if claim is not None:
                answer = StoredAnswer({"batchId": batch.batch_id}, RUNNING_RETRY_AFTER_SECONDS)
                self._idempotency().complete(claim, answer)
            self._queue_first(batch)
            return Started(batch, RUNNING_RETRY_AFTER_SECONDS)

        if key is None:
            return work(None)
        return self._idempotency().run(KEY_PREFIX + key, request.fingerprint(), work, self._replay)

    def _replay(self, answer: StoredAnswer) -> Started:
        batch_id = str(answer.body["batchId"])
        log.info("Idempotency-Key seen before with the same body; replaying batch %s", batch_id)
        batch = self.read(batch_id)
        if not batch.queued:  # the first try stored it but could not queue its first message
            self._queue_first(batch)
        return Started(batch, answer.retry_after)  # as it is now; the adapter renders it with this request's URLs

    def _queue_first(self, batch: BatchRecord) -> None:
        kind = "callback" if batch.is_done else "list" if batch.all_customers else "plan"
        delay = math.ceil(max(0.0, (batch.not_before or 0.0) - self._clock.now()))  # the worker chains past 7 days
        self._queue.send(BatchMessage(kind, batch.batch_id), delay)
        self._store.mark_queued(batch.batch_id)
        batch.queued = True

    def _store_batch(
        self, request: BatchRequest, correlation_id: str, base_url: str, requested_by: dict[str, Any] | None
    ) -> BatchRecord:
        rows = self._selected_rows(request)
        now = self._clock.now()
        batch = BatchRecord(
            batch_id=str(uuid.uuid4()),
            mode=request.mode,
            product_family=request.product_family,
            created_at=now,
            updated_at=now,
            correlation_id=correlation_id,
            all_customers=request.all_customers,
            listing_done=not request.all_customers,
            status=BatchState.RUNNING if request.not_before is None else BatchState.SCHEDULED,
            callback_url=request.callback_url,
            base_url=base_url,
            requested_by=requested_by,
            queued=False,
            not_before=request.not_before,
            from_batch=request.from_batch,
            excluded=len(request.excluded) if request.all_customers else 0,
        )
        for row in rows:
            row.updated_at = now
        batch.counts[Outcome.PENDING] = len(rows)
        if batch.may_complete():  # every customer was excluded, or the source had no such rows
            batch.complete(now)
        self._store.create(batch, rows, request.excluded if request.all_customers else ())
        size = "all customers" if batch.all_customers else f"{len(rows)} customers"
        log.info("batch %s stored: %s mode, %s", batch.batch_id, batch.mode, size)
        return batch

    def _selected_rows(self, request: BatchRequest) -> list[CustomerRow]:
        """The new batch's rows: its customerIds, or the source batch's rows of the chosen outcomes (with their
        company names), less the excluded customers."""
        excluded = set(request.excluded)
        if request.from_batch is None:
            return [CustomerRow(c) for c in request.customer_ids or () if c not in excluded]
        source = self._store.get(request.from_batch)
        if source is None:
            raise BatchNotFound(f"fromBatch: no batch {request.from_batch}")
        if not source.is_done:
            raise BatchNotFinished(
                f"fromBatch: batch {request.from_batch} is {source.status}; it must be Completed or Cancelled"
            )
        picked = [r for o in request.outcomes for r in self._store.all_rows(request.from_batch, o)]
        kept = [r for r in picked if r.customer_id not in excluded]
        return [CustomerRow(r.customer_id, company_name=r.company_name) for r in kept]

    def read(self, batch_id: str) -> BatchRecord:
        batch = self._store.get(batch_id)
        if batch is None:
            raise BatchNotFound(f"no batch {batch_id}")
        return batch
