"""Index entities that let `GET /api/upgrades` list upgrades newest first without scanning the table
(docs/design.md, "GET /api/upgrades (list)").

The record stays where it was (PartitionKey = upgradeId, RowKey = "upgrade": point reads by id). Beside it, in
the same `UPGRADES_TABLE`, each upgrade has two small index entities, both with RowKey
`{inverted createdAt in ms, 13 digits}|{upgradeId}` so that ascending key order is newest first:

    PartitionKey `customer|{customerId}`            one partition per customer (list by customer)
    PartitionKey `recent|{9999-yyyy}{12-mm}`        one partition per month of createdAt, inverted so that the
                                                    range `recent|` .. `recent}` reads newest month first

Each holds `upgradeId`, `customerId`, `createdAt` and `status`; a status filter is a server-side `$filter` on
`status` within that key range. The list then point-reads the records of a page (concurrently): the record is
the truth, the index only finds it. A list entry whose record is missing, belongs to another customer or has
another createdAt (an orphan of an interrupted write) is skipped; one whose status is behind its record is
repaired on read.

Writes, all idempotent upserts, come *before* the record's own write, so a crash between the two never loses
an upgrade from the list (at worst it leaves an entry that the list skips):
- create (insert, or a record re-created by the recovery paths): both entities, concurrently (one round trip);
- every save of a final record (the one status change an upgrade has, and its callback updates): both again,
  with the final status. In-progress saves (most of them: one per status check) write no index entity.
A create that finds the record already there deletes the entities it just wrote.

Cost: a create writes 3 entities instead of 1 (the two index upserts in parallel, one extra round trip); a final
save 2 more; in-progress saves none. A list page of `top` items is usually one query transaction (one more per
month boundary crossed) plus `top` point reads, 16 at a time (shared/upgrades/listing.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.concurrency import run_concurrently
from shared.dependency_errors import dependency_error
from shared.upgrades.model import UpgradeRecord

MAX_MILLIS = 10**13 - 1  # 13 digits: inverted timestamps sort correctly until the year 2286
CUSTOMER_PREFIX = "customer|"
RECENT_PREFIX = "recent|"
RECENT_RANGE_END = "recent}"  # "}" follows "|": every `recent|…` partition lies in [RECENT_PREFIX, RECENT_RANGE_END)
INDEX_FIELDS = ("PartitionKey", "RowKey", "upgradeId", "customerId", "createdAt", "status")
__all__ = ["run_concurrently"]  # re-exported: shared/upgrades/listing.py reads pages with it

Position = dict[str, str]  # the Table service's continuation: {"PartitionKey": …, "RowKey": …}


@dataclass(frozen=True)
class IndexEntry:
    partition_key: str
    row_key: str
    upgrade_id: str
    customer_id: str
    status: str

    def matches(self, record: UpgradeRecord) -> bool:
        """The entry was written for this record (not an orphan of an earlier, interrupted create)."""
        return record.customer_id == self.customer_id and row_key(record) == self.row_key


@dataclass(frozen=True)
class IndexPage:
    entries: list[IndexEntry]
    position: Position | None  # where the next page starts; None at the end


def row_key(record: UpgradeRecord) -> str:
    millis = round(record.created_at * 1000)
    return f"{MAX_MILLIS - millis:013d}|{record.upgrade_id}"


def customer_partition(customer_id: str) -> str:
    return f"{CUSTOMER_PREFIX}{customer_id}"


def recent_partition(created_at: float) -> str:
    when = datetime.fromtimestamp(created_at, UTC)
    return f"{RECENT_PREFIX}{9999 - when.year:04d}{12 - when.month:02d}"


def index_entities(record: UpgradeRecord) -> list[dict[str, Any]]:
    fields = {
        "RowKey": row_key(record),
        "upgradeId": record.upgrade_id,
        "customerId": record.customer_id,
        "createdAt": record.created_at,
        "status": str(record.status),
    }
    partitions = (customer_partition(record.customer_id), recent_partition(record.created_at))
    return [{"PartitionKey": partition, **fields} for partition in partitions]


def list_filter(customer_id: str | None, status: str | None) -> str:
    """The OData filter of one list query. Values are validated GUIDs and states: nothing to escape."""
    if customer_id is not None:
        clause = f"PartitionKey eq '{customer_partition(customer_id)}'"
    else:
        clause = f"PartitionKey ge '{RECENT_PREFIX}' and PartitionKey lt '{RECENT_RANGE_END}'"
    return clause if status is None else f"{clause} and status eq '{status}'"


class UpgradeIndex:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def write(self, record: UpgradeRecord) -> None:
        """Upsert both index entities of the record (concurrently). Raises the SDK's error on failure."""
        entities = index_entities(record)
        run_concurrently([partial(self._table.upsert_entity, e, mode=UpdateMode.REPLACE) for e in entities])

    def remove(self, record: UpgradeRecord) -> None:
        """Delete the index entities written for exactly this record (idempotent)."""
        keys = [(e["PartitionKey"], e["RowKey"]) for e in index_entities(record)]
        run_concurrently([partial(self._table.delete_entity, *k) for k in keys])

    def page(self, customer_id: str | None, status: str | None, size: int, position: Position | None) -> IndexPage:
        """At most `size` entries from `position`, newest first: one query transaction (the service may return
        fewer, e.g. at a partition boundary; the position then says where to go on)."""
        pages = self._table.query_entities(
            list_filter(customer_id, status), results_per_page=size, select=list(INDEX_FIELDS)
        ).by_page(continuation_token=position)  # type: ignore[arg-type]  # the Table SDK's token is this dict
        try:
            found = list(next(pages))
        except (StopIteration, ResourceNotFoundError):  # ResourceNotFound: no table yet, nothing recorded
            return IndexPage([], None)
        except AzureError as error:
            raise dependency_error(
                error,
                service="Azure Storage",
                action=f"list upgrades (table {self._table.table_name})",
                roles="Storage Table Data Contributor",
            ) from None
        entries = [_entry(entity) for entity in found[:size]]
        return IndexPage(entries, pages.continuation_token or None)  # type: ignore[attr-defined]


def _entry(entity: dict[str, Any]) -> IndexEntry:
    return IndexEntry(
        partition_key=entity["PartitionKey"],
        row_key=entity["RowKey"],
        upgrade_id=entity["upgradeId"],
        customer_id=entity["customerId"],
        status=entity.get("status", ""),
    )
