"""Listing upgrades, newest first: index entries (shared/storage/upgrade_index.py) resolved to their records.

One page of `top` items usually costs one index query plus `top` point reads of the records, run 16 at a time
(docs/design.md, "GET /api/upgrades (list)"). Entries that do not lead to a record of theirs (missing, or an
orphan of an interrupted create) are skipped and the index is read on, at most `MAX_QUERIES` times per page: a
page may hold fewer than `top` items while a continuation position remains. An entry whose status is behind its
final record (a crash between the index and the record write, or a lost race) is repaired on the way; an
entry ahead of its record (the record's save is on its way, or crashed and the next check saves it again) is
left alone.
"""

from __future__ import annotations

from functools import partial

from azure.core.exceptions import AzureError

from shared.correlation import get_logger
from shared.storage.records import UpgradeStore
from shared.storage.upgrade_index import IndexEntry, Position, run_concurrently
from shared.upgrades.model import State, UpgradeRecord

log = get_logger(__name__)

MAX_QUERIES = 5


def list_page(
    store: UpgradeStore, customer_id: str | None, status: State | None, top: int, position: Position | None
) -> tuple[list[UpgradeRecord], Position | None]:
    """Up to `top` records matching the filters, newest first, and where the next page starts (None: no more)."""
    items: list[UpgradeRecord] = []
    for _ in range(MAX_QUERIES):
        page = store.index.page(customer_id, status, top - len(items), position)
        items += _resolve(store, page.entries, status)
        position = page.position
        if position is None or len(items) >= top:
            break
    return items, position


def _resolve(store: UpgradeStore, entries: list[IndexEntry], status: State | None) -> list[UpgradeRecord]:
    records = run_concurrently([partial(store.get, e.upgrade_id) for e in entries])
    found: list[UpgradeRecord] = []
    for entry, record in zip(entries, records, strict=True):
        if record is None or not entry.matches(record):
            log.info("list: skipped index entry %s|%s without its record", entry.partition_key, entry.row_key)
            continue
        if entry.status != str(record.status) and record.is_final:
            _repair(store, record)  # towards a final status only: that never races a save (final never regresses)
        if status is None or record.status == status:
            found.append(record)
    return found


def _repair(store: UpgradeStore, record: UpgradeRecord) -> None:
    try:
        store.index.write(record)
    except AzureError as error:  # the next read or final save repairs it again
        log.warning("list: could not repair the index of upgrade %s: %s", record.upgrade_id, type(error).__name__)
    else:
        log.info("list: repaired the index status of upgrade %s (%s)", record.upgrade_id, record.status)
