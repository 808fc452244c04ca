"""A batch as this app knows it: its request, its outcomes and its record, as plain typed data
(docs/design.md, "Batches"); `shared/batches/resource.py` renders the resource callers see.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.clock import iso
from shared.upgrades.model import CallbackState

# Namespace of the MS-RequestId a batch sends when it creates a customer's upgrade (uuid5 of batch and customer).
BATCH_REQUEST_NAMESPACE = uuid.UUID("0b9f5d2c-8a61-4c1e-9b7e-2d4f6a8c1e35")
RUNNING_RETRY_AFTER_SECONDS = 10


class Mode(StrEnum):
    REPORT = "report"
    UPGRADE = "upgrade"


class BatchState(StrEnum):
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"


FINAL_STATES = frozenset({BatchState.COMPLETED, BatchState.CANCELLED})
CANCELLED_STATES = frozenset({BatchState.CANCELLING, BatchState.CANCELLED})


class Outcome(StrEnum):
    PENDING = "pending"
    ELIGIBLE = "eligible"
    NOT_ELIGIBLE = "notEligible"
    HAS_UPGRADE = "hasUpgrade"
    UPGRADING = "upgrading"
    COMPLETED = "completed"
    FAILED = "failed"
    ERROR = "error"
    CANCELLED = "cancelled"


OPEN_OUTCOMES = frozenset({Outcome.PENDING, Outcome.UPGRADING})  # the batch runs while a row is in one of these


@dataclass(frozen=True)
class BatchRequest:
    mode: Mode
    product_family: str
    customer_ids: tuple[str, ...] | None  # None: allCustomers (or fromBatch)
    callback_url: str | None
    from_batch: str | None = None
    outcomes: tuple[Outcome, ...] = ()  # the source rows fromBatch selects
    excluded: tuple[str, ...] = ()  # excludeCustomerIds, lower case
    not_before: float | None = None

    @property
    def all_customers(self) -> bool:
        return self.customer_ids is None and self.from_batch is None

    def fingerprint(self) -> str:
        """Identifies the request's meaning, for Idempotency-Key comparison. The campaign fields join the list only
        when given, so a request without them keeps the fingerprint it always had."""
        parts: list[object] = [self.mode, self.product_family, self.customer_ids, self.callback_url]
        if self.from_batch or self.excluded or self.not_before is not None:
            parts += [self.from_batch, sorted(self.outcomes), sorted(self.excluded), self.not_before]
        canonical = json.dumps(parts, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def empty_counts() -> dict[Outcome, int]:
    return dict.fromkeys(Outcome, 0)


@dataclass
class BatchRecord:
    batch_id: str
    mode: Mode
    product_family: str
    created_at: float
    updated_at: float
    correlation_id: str | None
    all_customers: bool = False
    listing_done: bool = True
    status: BatchState = BatchState.RUNNING
    counts: dict[Outcome, int] = field(default_factory=empty_counts)
    completed_at: float | None = None
    callback_url: str | None = None
    callback_state: CallbackState = CallbackState.NONE
    callback_attempts: int = 0
    base_url: str = ""  # where the batch was submitted: the callback's URLs are built on it
    error: str | None = None  # why the batch ended short of its customer list (the listing was refused or given up)
    requested_by: dict[str, Any] | None = None  # {kind, id, name} of the caller that started it
    cancelled_by: dict[str, Any] | None = None  # likewise of the caller that cancelled it; None until then
    queued: bool = True  # its first message is on the queue (False from storing until then: a POST retry sends it)
    not_before: float | None = None  # no Partner Center call for the batch before this
    from_batch: str | None = None  # the batch whose rows it was made from
    cancelled_at: float | None = None
    excluded: int = 0  # excludeCustomerIds kept as `x|{customerId}` entities (for allCustomers listing)
    etag: str | None = None

    @property
    def total(self) -> int | None:
        """Customers in the batch; None while allCustomers is still being listed."""
        return sum(self.counts.values()) if self.listing_done else None

    @property
    def is_done(self) -> bool:
        return self.status in FINAL_STATES

    @property
    def is_cancelled(self) -> bool:
        """Cancelling or Cancelled: no Partner Center call may start for it."""
        return self.status in CANCELLED_STATES

    @property
    def rows_left(self) -> int:
        return self.counts[Outcome.PENDING] + self.counts[Outcome.UPGRADING]

    def may_complete(self) -> bool:
        """Every customer has a final outcome (and the list is complete), while the record is not final yet; a
        cancelling batch is final once no upgrade is in flight."""
        if self.status == BatchState.CANCELLING:
            return not any(self.counts[o] for o in OPEN_OUTCOMES)
        return (
            self.status in (BatchState.SCHEDULED, BatchState.RUNNING)
            and self.listing_done
            and not any(self.counts[o] for o in OPEN_OUTCOMES)
        )

    def complete(self, now: float) -> None:
        if self.status == BatchState.CANCELLING:
            self.status = BatchState.CANCELLED
            self.cancelled_at = now
        else:
            self.status = BatchState.COMPLETED
            self.completed_at = now
        if self.callback_url and self.callback_state == CallbackState.NONE:
            self.callback_state = CallbackState.PENDING


@dataclass
class CustomerRow:
    customer_id: str
    outcome: Outcome = Outcome.PENDING
    company_name: str | None = None
    upgrade_id: str | None = None
    reason: str | None = None
    updated_at: float = 0.0
    etag: str | None = None

    def to_item(self) -> dict[str, Any]:
        return {
            "customerId": self.customer_id,
            "companyName": self.company_name,
            "outcome": str(self.outcome),
            "upgradeId": self.upgrade_id,
            "reason": self.reason,
            "updatedAt": iso(self.updated_at),
        }


@dataclass(frozen=True)
class Settlement:
    """One customer's new outcome, applied only if the row is still in `from_outcomes`."""

    customer_id: str
    outcome: Outcome
    reason: str | None = None
    upgrade_id: str | None = None
    from_outcomes: frozenset[Outcome] = frozenset({Outcome.PENDING})


def batch_request_id(batch_id: str, customer_id: str) -> str:
    """The MS-RequestId of a batch's create for a customer: the same on every redelivery, so Partner Center
    creates once."""
    return str(uuid.uuid5(BATCH_REQUEST_NAMESPACE, f"{batch_id.lower()}\n{customer_id.lower()}"))
