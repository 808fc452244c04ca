"""Batches in the `UPGRADES_TABLE` table (layout in `entities.py`).

Counts are kept on the batch entity and changed in the same entity-group transaction as the customer rows they
count, each operation conditional on the ETag read: a row moves out of `pending` (or `upgrading`) exactly once
and its count moves with it, whichever instance or redelivered message gets there first. Recomputing counts
from the rows would need a partition scan (up to 5,000 rows) per change; the transaction needs one write.
A lost race (HTTP 412 inside the transaction) re-reads and retries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.batches import entities
from shared.batches.model import BatchRecord, CustomerRow, Outcome, Settlement
from shared.correlation import get_logger
from shared.errors import DependencyUnavailable
from shared.storage.clients import EnsuredResource, error_code
from shared.upgrades.model import CallbackState

log = get_logger(__name__)

MAX_TRANSACTION = 100
MAX_RACES = 20

Operation = tuple[Any, ...]


class _TableNotFound(ResourceNotFoundError):
    """A transaction on a missing table, in the shape `EnsuredResource` creates the table for."""

    error_code = "TableNotFound"


class BatchStore:
    """`before_completing` runs before every write that makes a batch with a callback final (Completed or
    Cancelled): the batch's callback is guarded by a queue message before it can be due (BatchCompletion.guard),
    so an instance that dies after that write and before the send leaves the message to send it."""

    def __init__(self, table: TableClient, before_completing: Callable[[BatchRecord], None] | None = None) -> None:
        self._table = table
        self._ensured = EnsuredResource("table", table.table_name, table.create_table)
        self._before_completing = before_completing

    def _completing(self, record: BatchRecord) -> None:
        """`record` is about to be written final for the first time (its callback not tried yet)."""
        first = record.is_done and record.callback_state == CallbackState.PENDING and record.callback_attempts == 0
        if first and self._before_completing is not None:
            self._before_completing(record)

    def get(self, batch_id: str) -> BatchRecord | None:
        def read() -> BatchRecord | None:
            entity = self._point(entities.partition(batch_id), entities.BATCH_ROW)
            return None if entity is None else entities.batch_from(dict(entity), entity.metadata.get("etag"))

        return self._ensured.run("read the batch", read)

    def create(self, record: BatchRecord, rows: Sequence[CustomerRow], excluded: Sequence[str] = ()) -> None:
        """The rows (and exclusions) first, the batch entity last: a batch is visible only with all its rows."""

        def write() -> None:
            key = entities.partition(record.batch_id)
            operations = [("upsert", entities.row_entity(record.batch_id, r)) for r in rows]
            operations += [("upsert", entities.excluded_entity(record.batch_id, c)) for c in excluded]
            for start in range(0, len(operations), MAX_TRANSACTION):
                self._transact(operations[start : start + MAX_TRANSACTION])
            self._completing(record)  # a batch with nothing to do is final at once
            record.etag = self._table.create_entity(entities.batch_entity(record)).get("etag")
            log.info("batch %s stored with %d customers (partition %s)", record.batch_id, len(rows), key)

        self._ensured.run("store the batch", write)

    def save(self, record: BatchRecord) -> bool:
        """Replace the batch entity if unchanged since read; False when someone else changed it first."""
        self._completing(record)

        def write() -> bool:
            try:
                result = self._table.update_entity(
                    entities.batch_entity(record),
                    mode=UpdateMode.REPLACE,
                    etag=record.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceNotFoundError, ResourceExistsError) as error:
                if error_code(error) == "TableNotFound":
                    raise
                return False
            except Exception as error:
                if getattr(error, "status_code", None) == 412:
                    return False
                raise
            record.etag = result.get("etag")
            return True

        return self._ensured.run("update the batch", write)

    def rows(self, batch_id: str, customer_ids: Sequence[str]) -> dict[str, CustomerRow]:
        def read() -> dict[str, CustomerRow]:
            found = {}
            for customer_id in customer_ids:
                entity = self._point(entities.partition(batch_id), entities.row_key(customer_id))
                if entity is not None:
                    found[customer_id] = entities.row_from(dict(entity), entity.metadata.get("etag"))
            return found

        return self._ensured.run("read batch rows", read)

    def query(self, batch_id: str, outcome: Outcome | None, after: str | None, limit: int) -> list[CustomerRow]:
        """Up to `limit` rows in customer-id order, after customer `after`, of one outcome or all."""
        start = entities.row_key(after) if after else entities.ROW_PREFIX
        condition = "PartitionKey eq @pk and RowKey gt @start and RowKey lt @end"
        params: dict[str, Any] = {"pk": entities.partition(batch_id), "start": start, "end": "c}"}
        if outcome is not None:
            condition += " and outcome eq @outcome"
            params["outcome"] = str(outcome)

        def read() -> list[CustomerRow]:
            found: list[CustomerRow] = []
            pages = self._table.query_entities(condition, parameters=params, results_per_page=min(limit, 1000))
            for entity in pages:
                found.append(entities.row_from(dict(entity), entity.metadata.get("etag")))
                if len(found) >= limit:
                    break
            return found

        return self._ensured.run("list batch rows", read)

    def all_rows(self, batch_id: str, outcome: Outcome | None = None) -> Iterator[CustomerRow]:
        after: str | None = None
        while True:
            page = self.query(batch_id, outcome, after, 1000)
            yield from page
            if len(page) < 1000:
                return
            after = page[-1].customer_id

    def settle(
        self,
        batch_id: str,
        settlements: Sequence[Settlement],
        now: float,
        *,
        finish_listing: bool = False,
        known: dict[str, CustomerRow] | None = None,
        error: str | None = None,
    ) -> tuple[BatchRecord | None, bool]:
        """Apply the settlements whose rows are still open as they expect (and, if asked, mark the listing
        done), with the counts, in one transaction per try. Returns the batch and whether THIS call completed it.
        `known`: the rows as the caller read them (with their ETags), used for the first try; a row changed
        since fails that try's transaction (412) and the next try reads them again. `error`: recorded as the
        batch's error (the first one stays) when it finishes the listing."""
        by_id = {s.customer_id: s for s in settlements}
        for race in range(MAX_RACES):
            record = self.get(batch_id)
            if record is None:
                return None, False
            if race == 0 and known is not None and all(c in known for c in by_id):
                rows = {c: known[c] for c in by_id}
            else:
                rows = self.rows(batch_id, list(by_id))
            operations = _row_updates(batch_id, rows, by_id, record, now)
            if not operations and (not finish_listing or record.listing_done):
                return record, False
            if finish_listing and not record.listing_done:
                record.error = record.error or error
            record.listing_done = record.listing_done or finish_listing
            record.updated_at = now
            completed = record.may_complete()
            if completed:
                record.complete(now)
                self._completing(record)
            if self._commit(operations, record):
                return record, completed
        raise DependencyUnavailable(f"batch {batch_id} is too busy to update; retry", retry_after=2)

    def mark_queued(self, batch_id: str) -> None:
        """The batch's first message is on the queue (a merge of that one property: no other change is lost)."""
        entity = {"PartitionKey": entities.partition(batch_id), "RowKey": entities.BATCH_ROW, "queued": True}
        self._ensured.run("update the batch", lambda: self._table.update_entity(entity, mode=UpdateMode.MERGE))

    def add_listed(self, batch_id: str, customers: Sequence[tuple[str, str | None]], now: float) -> bool:
        """Insert rows (pending) for listed customers not in the batch yet (nor excluded from it), counting them as
        pending. False (and nothing added) once the listing is done or the batch cancelled: another delivery of a
        `list` message finished it (or ended it on a refusal), so the batch may already be Completed and must not
        take rows it will never settle."""
        for start in range(0, len(customers), MAX_TRANSACTION - 1):
            if not self._add_slice(batch_id, customers[start : start + MAX_TRANSACTION - 1], now):
                return False
        return True

    def _add_slice(self, batch_id: str, customers: Sequence[tuple[str, str | None]], now: float) -> bool:
        """One transaction, conditional on the batch entity's ETag: a listing finished after this read fails
        it (412) and the retry sees `listing_done`."""
        for _ in range(MAX_RACES):
            record = self.get(batch_id)
            if record is None or record.listing_done or record.is_cancelled:
                return False
            existing = set(self.rows(batch_id, [c for c, _ in customers]))
            if record.excluded:
                existing |= self._excluded(batch_id, [c for c, _ in customers])
            new = [CustomerRow(c, company_name=name, updated_at=now) for c, name in customers if c not in existing]
            if not new:
                return True
            record.counts[Outcome.PENDING] += len(new)
            record.updated_at = now
            if self._commit([("create", entities.row_entity(batch_id, row)) for row in new], record):
                return True
        raise DependencyUnavailable(f"batch {batch_id} is too busy to update; retry", retry_after=2)

    def _excluded(self, batch_id: str, customer_ids: Sequence[str]) -> set[str]:
        key = entities.partition(batch_id)
        return {c for c in customer_ids if self._point(key, entities.excluded_key(c)) is not None}

    def _commit(self, operations: list[Operation], record: BatchRecord) -> bool:
        batch_op = ("update", entities.batch_entity(record), _if_match(record.etag))

        def write() -> bool:
            try:
                result = self._transact([*operations, batch_op])
            except TableTransactionError as error:
                if error.status_code in (409, 412) or error_code(error) in ("EntityAlreadyExists",):
                    return False
                raise
            record.etag = result[-1].get("etag")
            return True

        return self._ensured.run("update the batch", write)

    def _transact(self, operations: list[Operation]) -> list[Any]:
        """An entity-group transaction; a missing table surfaces as it does for single operations."""
        try:
            return list(self._table.submit_transaction(operations))
        except TableTransactionError as error:
            if error_code(error) == "TableNotFound":
                raise _TableNotFound("the table does not exist", response=error.response) from None
            raise

    def _point(self, partition_key: str, row: str) -> Any:
        try:
            return self._table.get_entity(partition_key, row)
        except ResourceNotFoundError as error:
            if error_code(error) == "TableNotFound":
                raise
            return None


def _row_updates(
    batch_id: str, rows: dict[str, CustomerRow], by_id: dict[str, Settlement], record: BatchRecord, now: float
) -> list[Operation]:
    operations: list[Operation] = []
    for customer_id, settlement in by_id.items():
        row = rows.get(customer_id)
        if row is None or row.outcome not in settlement.from_outcomes or row.outcome == settlement.outcome:
            continue
        record.counts[row.outcome] -= 1
        record.counts[settlement.outcome] += 1
        etag = row.etag
        row.outcome, row.reason, row.updated_at = settlement.outcome, settlement.reason, now
        row.upgrade_id = settlement.upgrade_id or row.upgrade_id
        operations.append(("update", entities.row_entity(batch_id, row), _if_match(etag)))
    return operations


def _if_match(etag: str | None) -> dict[str, Any]:
    return {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
