"""Upgrade records (shared/upgrades/model.py) stored in the `UPGRADES_TABLE` table.

PartitionKey = upgradeId, RowKey = "upgrade": a GET by id is a point read. Updates are conditional on the
ETag, so two handlers of the same upgrade never overwrite each other silently. Creating a record, and saving a
final one, first upserts its list index entities (shared/storage/upgrade_index.py), so that the list never
misses an upgrade whose record exists.
"""

from __future__ import annotations

import json
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.correlation import get_logger
from shared.storage.clients import EnsuredResource, error_code
from shared.storage.upgrade_index import UpgradeIndex, row_key
from shared.upgrades.model import PRODUCT_FAMILY, CallbackState, State, UpgradeRecord

log = get_logger(__name__)

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
    _put_json(entity, "requestedBy", record.requested_by)
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
        requested_by=_get_json(entity, "requestedBy"),
        etag=etag,
    )


class UpgradeStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._ensured = EnsuredResource("table", table.table_name, table.create_table)
        self.index = UpgradeIndex(table)

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
            self.index.write(record)
            try:
                result = self._table.create_entity(to_entity(record))
            except ResourceExistsError:
                self._remove_index(record)
                return False
            record.etag = result.get("etag")
            return True

        return self._ensured.run("create the upgrade record", create)

    def save(self, record: UpgradeRecord) -> None:
        """Replace the record if nobody changed it since it was read (ETag), else raise ConcurrentUpdate."""

        def write() -> None:
            if record.etag is None or record.is_final:
                self.index.write(record)
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
            except ResourceExistsError:
                self._remove_index(record)
                raise ConcurrentUpdate(record.upgrade_id) from None
            except ResourceModifiedError:
                if record.is_final:
                    self._reindex(record.upgrade_id)
                raise ConcurrentUpdate(record.upgrade_id) from None
            except ResourceNotFoundError as error:
                if error_code(error) == "TableNotFound":
                    raise
                raise ConcurrentUpdate(record.upgrade_id) from None
            record.etag = result.get("etag")

        self._ensured.run("update the upgrade record", write)

    def _remove_index(self, record: UpgradeRecord) -> None:
        """The record was there already: the entities just written for this copy are orphans, unless the stored
        record has the same keys (created in the same millisecond), whose entities they then are."""
        try:
            stored = from_entity(dict(self._table.get_entity(record.upgrade_id, ROW_KEY)), None)
            if (stored.customer_id, row_key(stored)) != (record.customer_id, row_key(record)):
                self.index.remove(record)
        except AzureError as error:  # the list skips orphans anyway
            log.warning("could not remove orphan index entities of %s: %s", record.upgrade_id, type(error).__name__)

    def _reindex(self, upgrade_id: str) -> None:
        """A lost race after this save may have written a final status into the index: put back the winner's."""
        try:
            entity = self._table.get_entity(upgrade_id, ROW_KEY)
            self.index.write(from_entity(dict(entity), None))
        except AzureError as error:  # the list repairs a stale status when it reads the record
            log.warning("could not re-index upgrade %s after a lost race: %s", upgrade_id, type(error).__name__)


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
