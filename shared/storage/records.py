"""Upgrade records (shared/upgrades/model.py) stored in the `UPGRADES_TABLE` table.

PartitionKey = upgradeId, RowKey = "upgrade": a GET by id is a point read. Updates are conditional on the
ETag, so two handlers of the same upgrade never overwrite each other silently.
"""

from __future__ import annotations

import json
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.storage.clients import EnsuredResource, error_code
from shared.upgrades.model import PRODUCT_FAMILY, CallbackState, State, UpgradeRecord

ROW_KEY = "upgrade"
CHUNK = 30_000  # a Table string property holds 32 K UTF-16 characters; longer JSON is split


class ConcurrentUpdate(Exception):
    """Someone else updated the record since it was read."""


def to_entity(record: UpgradeRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": record.upgrade_id,
        "RowKey": ROW_KEY,
        "customerId": record.customer_id,
        "productFamily": record.product_family,
        "status": str(record.status),
        "partnerCenterStatus": record.partner_center_status,
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
        "lastCheckedAt": record.last_checked_at,
        "nextCheckAt": record.next_check_at,
        "checks": record.checks,
        "partnerCenterLocation": record.partner_center_location,
        "correlationId": record.correlation_id,
        "callbackUrl": record.callback_url,
        "callbackState": str(record.callback_state),
        "callbackAttempts": record.callback_attempts,
    }
    _put_json(entity, "lineItems", record.line_items)
    _put_json(entity, "error", record.error)
    return {k: v for k, v in entity.items() if v is not None}


def from_entity(entity: dict[str, Any], etag: str | None) -> UpgradeRecord:
    return UpgradeRecord(
        upgrade_id=entity["PartitionKey"],
        customer_id=entity["customerId"],
        product_family=entity.get("productFamily", PRODUCT_FAMILY),
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
            return from_entity(dict(entity), entity.metadata.get("etag"))

        return self._ensured.run("read the upgrade record", read)

    def insert(self, record: UpgradeRecord) -> bool:
        """Create the record; False when one already exists."""

        def create() -> bool:
            try:
                result = self._table.create_entity(to_entity(record))
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
                    result = self._table.create_entity(to_entity(record))
                else:
                    result = self._table.update_entity(
                        to_entity(record),
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
