"""Idempotency-Key records in the `UPGRADES_TABLE` table: the record and its storage verbs, nothing else.

One entity per key: PartitionKey `idempotency-{sha256(key)}`, RowKey `idempotency-key`, with the request's
fingerprint, `state` (`pending` while in progress, `done` once the answer is stored), `createdAt`, and, once
done, `response` (JSON, holding no URL) and `retryAfter`. Every write but the first insert is conditional on
the ETag it was read with. What to do with a record is decided in shared/storage/idempotency.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, UpdateMode

from shared.storage.clients import EnsuredResource, error_code

ROW_KEY = "idempotency-key"
DEFAULT_RETRY_AFTER = 60


class IdempotencyStatus(StrEnum):
    """The record's state, spelled as stored."""

    IN_PROGRESS = "pending"
    COMPLETED = "done"


@dataclass(frozen=True)
class IdempotencyRecord:
    partition_key: str
    fingerprint: str
    status: IdempotencyStatus
    created_at: float
    response: dict[str, Any] | None = None  # the stored answer (COMPLETED only); holds no URL
    retry_after: int = DEFAULT_RETRY_AFTER
    etag: str | None = None  # as read or written; None: not stored

    @classmethod
    def in_progress(cls, key: str, fingerprint: str, now: float) -> IdempotencyRecord:
        """A fresh claim of `key` for the request with `fingerprint`."""
        partition_key = "idempotency-" + hashlib.sha256(key.encode()).hexdigest()
        return cls(partition_key, fingerprint, IdempotencyStatus.IN_PROGRESS, now)

    def completed(self, response: dict[str, Any], retry_after: int) -> IdempotencyRecord:
        return replace(self, status=IdempotencyStatus.COMPLETED, response=response, retry_after=retry_after)


class IdempotencyTable:
    """get / put-if-absent / update-if-unchanged / delete-if-unchanged. A missing table is created on first use;
    other storage failures raise the app's dependency errors."""

    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._ensured = EnsuredResource("table", table.table_name, table.create_table)

    def get(self, partition_key: str) -> IdempotencyRecord | None:
        return self._ensured.run("read the Idempotency-Key", lambda: self._get(partition_key))

    def put_if_absent(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """The record as stored, or None when one exists for its key (only one writer wins)."""
        return self._ensured.run("claim the Idempotency-Key", lambda: self._insert(record))

    def update_if_unchanged(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """Replace the stored record if it still has `record.etag`: the record as stored, or None when it changed
        or is gone."""
        return self._ensured.run("update the Idempotency-Key", lambda: self._replace(record))

    def delete(self, record: IdempotencyRecord) -> bool:
        """Delete the stored record if it still has `record.etag`; False when it changed or is gone."""
        return self._ensured.run("release the Idempotency-Key", lambda: self._delete(record))

    def _get(self, partition_key: str) -> IdempotencyRecord | None:
        try:
            return _from_entity(self._table.get_entity(partition_key, ROW_KEY))
        except ResourceNotFoundError as error:
            if error_code(error) == "TableNotFound":
                raise
            return None

    def _insert(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        try:
            written = self._table.create_entity(_to_entity(record))
        except ResourceExistsError:
            return None
        return replace(record, etag=written.get("etag"))

    def _replace(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        try:
            written = self._table.update_entity(
                _to_entity(record),
                mode=UpdateMode.REPLACE,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            return None
        except ResourceNotFoundError as error:
            if error_code(error) == "TableNotFound":
                raise
            return None
        return replace(record, etag=written.get("etag"))

    def _delete(self, record: IdempotencyRecord) -> bool:
        try:
            self._table.delete_entity(
                record.partition_key, ROW_KEY, etag=record.etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError:
            return False
        except ResourceNotFoundError as error:
            if error_code(error) == "TableNotFound":
                raise
            return False
        return True


def _to_entity(record: IdempotencyRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": record.partition_key,
        "RowKey": ROW_KEY,
        "fingerprint": record.fingerprint,
        "state": str(record.status),
        "createdAt": record.created_at,
    }
    if record.response is not None:
        entity["response"] = json.dumps(record.response, separators=(",", ":"))
        entity["retryAfter"] = record.retry_after
    return entity


def _from_entity(entity: TableEntity) -> IdempotencyRecord:
    response: dict[str, Any] | None = None
    if entity.get("response"):
        response = json.loads(entity["response"])
        response.pop("statusUri", None)  # written by an earlier version, on another Host
    status = IdempotencyStatus.COMPLETED if entity.get("state") == "done" else IdempotencyStatus.IN_PROGRESS
    return IdempotencyRecord(
        partition_key=str(entity["PartitionKey"]),
        fingerprint=str(entity.get("fingerprint", "")),
        status=status,
        created_at=float(entity.get("createdAt", 0)),
        response=response,
        retry_after=int(entity.get("retryAfter", DEFAULT_RETRY_AFTER)),
        etag=entity.metadata.get("etag"),
    )
