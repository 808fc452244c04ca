"""Partner Center's product-upgrade model as the stand-in plays it: how a customer behaves (`Customer`), the
steps an upgrade goes through on the stand-in's clock (`Step`), and one upgrade (`Upgrade`, with its status body
as `POST /v1/productUpgrades/{id}/status` answers it).

A customer's `progression` is a list of `Step`s: `after_seconds` counts from the upgrade's creation on the
stand-in's clock, and the status reported is the last step reached.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Step:
    """From `after_seconds` after creation on, the upgrade reports `status` (and these line items/errors)."""

    after_seconds: float
    status: str
    line_items: list[dict[str, Any]] | None = None
    error_details: dict[str, Any] | None = None


DEFAULT_PROGRESSION = (Step(0, "InProgress"), Step(30 * 60, "Completed"))


@dataclass
class Customer:
    """How Partner Center behaves for one customer tenant."""

    customer_id: str
    eligible: bool = True
    reason: str | None = None
    existing_upgrade_id: str | None = None
    create_error: tuple[int, str, str] | None = None  # (HTTP status, Partner Center code, description)
    refusal: tuple[int, str, str] | None = None  # like create_error, but for every call about the customer
    progression: list[Step] = field(default_factory=lambda: list(DEFAULT_PROGRESSION))
    latency: float = 0.0
    name: str = ""  # a short handle for demos and tests ("slow")
    summary: str = ""
    company_name: str = ""  # companyProfile.companyName in the customer list ("" = made up from the id)
    domain: str = ""  # companyProfile.domain ("" = made up from the company name)


@dataclass
class Upgrade:
    upgrade_id: str
    customer_id: str
    product_family: str
    created_at: float
    progression: list[Step]
    source_product_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    target_product_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def step_at(self, now: float) -> tuple[Step, float]:
        """The last step reached at `now`, and when it was reached."""
        reached = [s for s in self.progression if now - self.created_at >= s.after_seconds]
        step = reached[-1] if reached else Step(0, "InProgress")
        return step, self.created_at + step.after_seconds

    def status_at(self, now: float) -> str:
        return self.step_at(now)[0].status

    def is_final_at(self, now: float) -> bool:
        status = self.status_at(now).lower()
        return status == "completed" or "fail" in status

    def body_at(self, now: float) -> dict[str, Any]:
        step, reached_at = self.step_at(now)
        if step.line_items is not None:
            line_items = copy.deepcopy(step.line_items)
        else:
            item: dict[str, Any] = {
                "sourceProduct": {"id": self.source_product_id, "name": "AzureSubscription"},
                "targetProduct": {"id": self.target_product_id, "name": "Microsoft Azure plan"},
                "status": step.status,
            }
            if step.status.lower() == "completed":
                item["upgradedDate"] = iso_time(reached_at)
            line_items = [item]
        body: dict[str, Any] = {
            "id": self.upgrade_id,
            "productFamily": "Azure",
            "status": step.status,
            "lineItems": line_items,
        }
        if step.error_details is not None:
            body["errorDetails"] = copy.deepcopy(step.error_details)
        return body


def iso_time(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond * 10:07d}Z"
