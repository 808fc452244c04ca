"""Batch and customer-row records as Table entities, all in one partition per batch:

- `PartitionKey = "batch|{batchId}"`, `RowKey = "batch"`: the batch, with one `count_<outcome>` column per outcome;
- `PartitionKey = "batch|{batchId}"`, `RowKey = "c|{customerId}"`: one row per customer;
- `PartitionKey = "batch|{batchId}"`, `RowKey = "x|{customerId}"`: a customer `excludeCustomerIds` keeps out.

One partition makes a customer row and the batch's counts changeable together in one entity-group transaction.
"""

from __future__ import annotations

import json
from typing import Any

from shared.batches.model import BatchRecord, BatchState, CustomerRow, Mode, Outcome
from shared.upgrades.model import CallbackState

BATCH_ROW = "batch"
ROW_PREFIX = "c|"
EXCLUDED_PREFIX = "x|"  # `x|{customerId}`: a customer excludeCustomerIds keeps out of the batch


def partition(batch_id: str) -> str:
    return f"batch|{batch_id}"


def row_key(customer_id: str) -> str:
    return ROW_PREFIX + customer_id


def excluded_key(customer_id: str) -> str:
    return EXCLUDED_PREFIX + customer_id


def excluded_entity(batch_id: str, customer_id: str) -> dict[str, Any]:
    return {"PartitionKey": partition(batch_id), "RowKey": excluded_key(customer_id)}


def batch_entity(record: BatchRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": partition(record.batch_id),
        "RowKey": BATCH_ROW,
        "mode": str(record.mode),
        "productFamily": record.product_family,
        "status": str(record.status),
        "allCustomers": record.all_customers,
        "listingDone": record.listing_done,
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
        "completedAt": record.completed_at,
        "correlationId": record.correlation_id,
        "callbackUrl": record.callback_url,
        "callbackState": str(record.callback_state),
        "callbackAttempts": record.callback_attempts,
        "baseUrl": record.base_url,
        "error": record.error,
        "queued": record.queued,
        "notBefore": record.not_before,
        "fromBatch": record.from_batch,
        "cancelledAt": record.cancelled_at,
        "excluded": record.excluded,
        **{f"count_{o}": record.counts[o] for o in Outcome},
        "requestedBy": json.dumps(record.requested_by) if record.requested_by else None,
        "cancelledBy": json.dumps(record.cancelled_by) if record.cancelled_by else None,
    }
    return {k: v for k, v in entity.items() if v is not None}


def batch_from(entity: dict[str, Any], etag: str | None) -> BatchRecord:
    return BatchRecord(
        batch_id=entity["PartitionKey"].removeprefix("batch|"),
        mode=Mode(entity["mode"]),
        product_family=entity["productFamily"],
        created_at=float(entity["createdAt"]),
        updated_at=float(entity["updatedAt"]),
        correlation_id=entity.get("correlationId"),
        all_customers=bool(entity.get("allCustomers")),
        listing_done=bool(entity.get("listingDone")),
        status=BatchState(entity["status"]),
        counts={o: int(entity.get(f"count_{o}", 0)) for o in Outcome},
        completed_at=_float(entity.get("completedAt")),
        callback_url=entity.get("callbackUrl"),
        callback_state=CallbackState(entity.get("callbackState", CallbackState.NONE)),
        callback_attempts=int(entity.get("callbackAttempts", 0)),
        base_url=entity.get("baseUrl", ""),
        error=entity.get("error"),
        queued=bool(entity.get("queued", True)),
        not_before=_float(entity.get("notBefore")),
        from_batch=entity.get("fromBatch"),
        cancelled_at=_float(entity.get("cancelledAt")),
        excluded=int(entity.get("excluded", 0)),
        requested_by=json.loads(entity["requestedBy"]) if entity.get("requestedBy") else None,
        cancelled_by=json.loads(entity["cancelledBy"]) if entity.get("cancelledBy") else None,
        etag=etag,
    )


def row_entity(batch_id: str, row: CustomerRow) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": partition(batch_id),
        "RowKey": row_key(row.customer_id),
        "outcome": str(row.outcome),
        "companyName": row.company_name,
        "upgradeId": row.upgrade_id,
        "reason": row.reason,
        "updatedAt": row.updated_at,
    }
    return {k: v for k, v in entity.items() if v is not None}


def row_from(entity: dict[str, Any], etag: str | None) -> CustomerRow:
    return CustomerRow(
        customer_id=entity["RowKey"].removeprefix(ROW_PREFIX),
        outcome=Outcome(entity["outcome"]),
        company_name=entity.get("companyName"),
        upgrade_id=entity.get("upgradeId"),
        reason=entity.get("reason"),
        updated_at=float(entity.get("updatedAt", 0.0)),
        etag=etag,
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
