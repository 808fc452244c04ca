"""Upgrade status records in the `UPGRADES_TABLE` table, and the status resource callers see.

PartitionKey = upgradeId, RowKey = "upgrade": a GET by id is a point read. Updates are conditional on the
ETag, so two handlers of the same upgrade never overwrite each other silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.clock import iso
from shared.storage import EnsuredResource, error_code

ROW_KEY = "upgrade"
CHUNK = 30_000  # a Table string property holds 32 K UTF-16 characters; longer JSON is split


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


class ConcurrentUpdate(Exception):
    """Someone else updated the record since it was read."""


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
    etag: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES

    def to_resource(self) -> dict[str, Any]:
        """The status resource of DESIGN.md, as GET returns it and callbacks send it."""
        return {
            "upgradeId": self.upgrade_id,
            "customerId": self.customer_id,
            "productFamily": self.product_family,
            "status": str(self.status),
            "partnerCenterStatus": self.partner_center_status,
            "lineItems": self.line_items,
            "error": self.error,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "lastCheckedAt": iso(self.last_checked_at),
            "nextCheckAt": iso(self.next_check_at),
            "checks": self.checks,
            "partnerCenterLocation": self.partner_center_location,
            "correlationId": self.correlation_id,
            "callback": {
                "url": self.callback_url,
                "state": str(self.callback_state),
                "attempts": self.callback_attempts,
            },
        }

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.upgrade_id,
            "RowKey": ROW_KEY,
            "customerId": self.customer_id,
            "productFamily": self.product_family,
            "status": str(self.status),
            "partnerCenterStatus": self.partner_center_status,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "lastCheckedAt": self.last_checked_at,
            "nextCheckAt": self.next_check_at,
            "checks": self.checks,
            "partnerCenterLocation": self.partner_center_location,
            "correlationId": self.correlation_id,
            "callbackUrl": self.callback_url,
            "callbackState": str(self.callback_state),
            "callbackAttempts": self.callback_attempts,
        }
        _put_json(entity, "lineItems", self.line_items)
        _put_json(entity, "error", self.error)
        return {k: v for k, v in entity.items() if v is not None}

    @classmethod
    def from_entity(cls, entity: dict[str, Any], etag: str | None) -> UpgradeRecord:
        return cls(
            upgrade_id=entity["PartitionKey"],
            customer_id=entity["customerId"],
            product_family=entity.get("productFamily", "Azure"),
            status=State(entity.get("status", State.IN_PROGRESS)),
            partner_center_status=entity.get("partnerCenterStatus"),
            line_items=_get_json(entity, "lineItems") or [],
            error=_get_json(entity, "error"),
            created_at=float(entity["createdAt"]),
            updated_at=float(entity.get("updatedAt", entity["createdAt"])),
            last_checked_at=_float(entity.get("lastCheckedAt")),
            next_check_at=_float(entity.get("nextCheckAt")),
            checks=int(entity.get("checks", 0)),
            partner_center_location=entity.get("partnerCenterLocation"),
            correlation_id=entity.get("correlationId"),
            callback_url=entity.get("callbackUrl"),
            callback_state=CallbackState(entity.get("callbackState", CallbackState.NONE)),
            callback_attempts=int(entity.get("callbackAttempts", 0)),
            etag=etag,
        )


class UpgradeStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._ensured = EnsuredResource("table", table.table_name, table.create_table)

    def get(self, upgrade_id: str) -> UpgradeRecord | None:

        def read() -> UpgradeRecord | None:
            try:
                entity = self._table.get_entity(upgrade_id, ROW_KEY)
            except ResourceNotFoundError as error:
                if error_code(error) == "TableNotFound":
                    raise
                return None
            return UpgradeRecord.from_entity(dict(entity), entity.metadata.get("etag"))

        return self._ensured.run("read the upgrade record", read)

    def insert(self, record: UpgradeRecord) -> bool:
        """Create the record; False when one already exists."""

        def create() -> bool:
            try:
                result = self._table.create_entity(record.to_entity())
            except ResourceExistsError:
                return False
            record.etag = result.get("etag")
            return True

        return self._ensured.run("create the upgrade record", create)

    def save(self, record: UpgradeRecord) -> None:
        """Replace the record if nobody changed it since it was read (ETag), else raise ConcurrentUpdate."""

        def write() -> None:
            try:
                if record.etag is None:
                    result = self._table.create_entity(record.to_entity())
                else:
                    result = self._table.update_entity(
                        record.to_entity(),
                        mode=UpdateMode.REPLACE,
                        etag=record.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceModifiedError, ResourceExistsError):
                raise ConcurrentUpdate(record.upgrade_id) from None
            except ResourceNotFoundError as error:
                if error_code(error) == "TableNotFound":
                    raise
                raise ConcurrentUpdate(record.upgrade_id) from None
            record.etag = result.get("etag")

        self._ensured.run("update the upgrade record", write)


def _put_json(entity: dict[str, Any], name: str, value: Any) -> None:
    if value is None:
        return
    text = json.dumps(value, separators=(",", ":"))
    if len(text) <= CHUNK:
        entity[name] = text
        return
    parts = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]
    entity[f"{name}Parts"] = len(parts)
    for index, part in enumerate(parts):
        entity[f"{name}{index}"] = part


def _get_json(entity: dict[str, Any], name: str) -> Any:
    text: str | None
    if f"{name}Parts" in entity:
        text = "".join(entity[f"{name}{i}"] for i in range(int(entity[f"{name}Parts"])))
    else:
        text = entity.get(name)
    return json.loads(text) if text else None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
