"""An upgrade as this app knows it: its request, its states and its record, as plain typed data.

The record is the domain's; `shared/storage/records.py` maps it to a Table entity, and
`shared/upgrades/resource.py` renders the status resource callers see (docs/design.md, "Status resource").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

PRODUCT_FAMILY = "Azure"  # the only product family Partner Center upgrades, as it spells it


@dataclass(frozen=True)
class UpgradeRequest:
    customer_id: str
    product_family: str
    callback_url: str | None

    def fingerprint(self) -> str:
        """Identifies the request's meaning (not its bytes), for Idempotency-Key comparison."""
        canonical = json.dumps([self.customer_id, self.product_family, self.callback_url], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class State(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"


FINAL_STATES = frozenset({State.COMPLETED, State.FAILED, State.TIMED_OUT})


class CallbackState(StrEnum):
    NONE = "none"
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass
class UpgradeRecord:
    upgrade_id: str
    customer_id: str
    product_family: str
    created_at: float
    updated_at: float
    status: State = State.IN_PROGRESS
    partner_center_status: str | None = None
    line_items: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    last_checked_at: float | None = None
    next_check_at: float | None = None
    checks: int = 0
    partner_center_location: str | None = None
    correlation_id: str | None = None
    callback_url: str | None = None
    callback_state: CallbackState = CallbackState.NONE
    callback_attempts: int = 0
    requested_by: dict[str, Any] | None = None  # {kind, id, name} of the caller that submitted it
    etag: str | None = None  # set once stored: None means "not in the table yet"

    @classmethod
    def new(
        cls,
        upgrade_id: str,
        customer_id: str,
        now: float,
        *,
        location: str | None = None,
        correlation_id: str | None = None,
        callback_url: str | None = None,
        next_check_at: float | None = None,
        requested_by: dict[str, Any] | None = None,
    ) -> UpgradeRecord:
        """A record for an upgrade seen for the first time (accepted, or recovered from Partner Center)."""
        return cls(
            upgrade_id=upgrade_id,
            customer_id=customer_id,
            product_family=PRODUCT_FAMILY,
            created_at=now,
            updated_at=now,
            next_check_at=next_check_at,
            partner_center_location=location or f"productUpgrades/{upgrade_id}",
            correlation_id=correlation_id,
            callback_url=callback_url,
            requested_by=requested_by,
        )

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES

    @property
    def is_stored(self) -> bool:
        return self.etag is not None
