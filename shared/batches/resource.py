"""The batch as callers see it: the batch resource and its keyed status URL (docs/design.md, "Batches").

Not in shared/api/ because the queue side sends the same resource: the batch's callback
(shared/batches/completion.py) POSTs it, built on the base URL the batch was submitted to, and the HTTP
adapters answer it on their own request's base. The record (shared/batches/model.py) stays plain typed data.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from shared.batches.model import BatchRecord, Outcome
from shared.clock import iso


def batch_resource(batch: BatchRecord, base_url: str, estimated_completion_at: float | None = None) -> dict[str, Any]:
    return {
        "batchId": batch.batch_id,
        "mode": str(batch.mode),
        "productFamily": batch.product_family,
        "status": str(batch.status),
        "total": batch.total,
        "counts": {str(o): batch.counts[o] for o in Outcome},
        "createdAt": iso(batch.created_at),
        "updatedAt": iso(batch.updated_at),
        "completedAt": iso(batch.completed_at),
        "notBefore": iso(batch.not_before),
        "fromBatch": batch.from_batch,
        "cancelledAt": iso(batch.cancelled_at),
        "estimatedCompletionAt": iso(estimated_completion_at),
        "correlationId": batch.correlation_id,
        "customersUri": batch_status_uri(base_url, batch.batch_id) + "/customers",
        "statusUri": batch_status_uri(base_url, batch.batch_id),
        "error": batch.error,
        "requestedBy": batch.requested_by,
        "cancelledBy": batch.cancelled_by,
        "callback": {
            "url": batch.callback_url,
            "state": str(batch.callback_state),
            "attempts": batch.callback_attempts,
        },
    }


def batch_status_uri(base_url: str, batch_id: str) -> str:
    """`{base}/api/batches/{batchId}`: the keyed status route."""
    return f"{base_url}/api/batches/{quote(batch_id, safe='')}"
