"""`estimatedCompletionAt` of a batch: when its pending rows will have had their batch calls at the current shared
pace (the `throttle|pace` entity `pacing.py` keeps; the ceiling until a batch call wrote it). Read only: this
module never reserves a slot or waits. Unknown (None) while the customer list is still being read, once only
Partner Center's own upgrade time is left, and for a batch that is finished or cancelling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.batches.model import BatchRecord, BatchState, Mode, Outcome

if TYPE_CHECKING:
    from azure.data.tables import TableClient

PARTITION = "throttle"  # pacing.PARTITION (not imported: pacing loads the storage SDK)

CALLS_PER_ROW = {Mode.REPORT: 1, Mode.UPGRADE: 2}  # eligibility; eligibility and create


def current_rate(table: TableClient, ceiling_per_minute: int) -> float:
    """Batch calls per minute the shared pace allows now."""
    from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415 - the SDK loads with the first read

    try:
        entity = table.get_entity(PARTITION, "pace")
    except ResourceNotFoundError:
        return float(ceiling_per_minute)
    rate = float(entity.get("rate", ceiling_per_minute))
    return max(0.1, min(float(ceiling_per_minute), rate))


def estimated_completion(batch: BatchRecord, now: float, rate_per_minute: float) -> float | None:
    pending = batch.counts[Outcome.PENDING]
    if batch.status not in (BatchState.SCHEDULED, BatchState.RUNNING) or batch.total is None or not pending:
        return None
    start = max(now, batch.not_before or 0.0)
    return start + pending * CALLS_PER_ROW[batch.mode] * 60.0 / rate_per_minute
