"""The audit trail: who changed what, and who was turned away (docs/design.md, "Callers, roles and audit").

Entries live in the app's table, partition `audit`, one entity each, created (never updated: insert fails on a
duplicate key, so an entry cannot be overwritten through this code). Row keys sort newest first:
`{9999999999999 - epoch milliseconds:013d}-{random}`, so a page is a plain range query in key order and
`from`/`to` are row-key bounds. Retention (`AUDIT_RETENTION_DAYS`): entries older than that are never returned,
and the read path (`GET /api/audit`) deletes up to `PURGE_LIMIT` of them per call, in transactions of 100.
No entry holds a token, key or secret: the caller is its kind, id, app id and name.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.data.tables import TableClient

from shared.clock import Clock, iso
from shared.correlation import get_logger
from shared.storage.clients import EnsuredResource

log = get_logger(__name__)

PARTITION = "audit"
_MAX_MS = 9_999_999_999_999
PURGE_LIMIT = 500
MAX_TARGETS = 50
FIELDS = (
    "time", "callerKind", "callerId", "callerAppId", "callerName", "action", "targets",
    "correlationId", "status", "problemType", "reason",
)  # fmt: skip


def row_key_at(seconds: float, suffix: str = "") -> str:
    return f"{_MAX_MS - int(seconds * 1000):013d}{suffix}"


@dataclass(frozen=True)
class AuditQuery:
    since: float | None  # `from`, seconds since the epoch
    until: float | None  # `to`
    caller_id: str | None
    action: str | None
    top: int
    after: str | None  # the last row key of the previous page


class AuditLog:
    def __init__(self, table: TableClient, clock: Clock, retention_days: int) -> None:
        self._table = table
        self._clock = clock
        self._retention = retention_days * 86400.0
        self._ensured = EnsuredResource("table", table.table_name, table.create_table)

    def record(self, entry: Mapping[str, Any]) -> None:
        """Append one entry (`FIELDS`; `targets` a list) timed now."""
        now = self._clock.now()
        entity = {k: v for k, v in entry.items() if k in FIELDS and v is not None and k != "targets"}
        entity |= {
            "PartitionKey": PARTITION,
            "RowKey": row_key_at(now, "-" + uuid.uuid4().hex[:12]),
            "time": iso(now),
            "targets": json.dumps(list(entry.get("targets") or ())[:MAX_TARGETS]),
        }
        self._ensured.run("write the audit entry", lambda: self._table.create_entity(entity))

    def query(self, query: AuditQuery) -> tuple[list[dict[str, Any]], str | None]:
        """One page, newest first, and the row key to continue after (None on the last page)."""
        oldest = self._clock.now() - self._retention
        since = max(query.since, oldest) if query.since is not None else oldest
        condition = "PartitionKey eq @pk and RowKey le @end"
        params: dict[str, Any] = {"pk": PARTITION, "end": row_key_at(since, "~")}
        if query.until is not None:
            condition += " and RowKey ge @start"
            params["start"] = row_key_at(query.until)
        if query.after is not None:
            condition += " and RowKey gt @after"
            params["after"] = query.after
        for name, value in (("callerId", query.caller_id), ("action", query.action)):
            if value is not None:
                condition += f" and {name} eq @{name}"
                params[name] = value

        def read() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            pages = self._table.query_entities(condition, parameters=params, results_per_page=min(query.top + 1, 1000))
            for entity in pages:
                found.append(dict(entity))
                if len(found) > query.top:
                    break
            return found

        rows = self._ensured.run("read the audit trail", read)
        more = len(rows) > query.top
        page = rows[: query.top]
        return [_entry(row) for row in page], (str(page[-1]["RowKey"]) if more and page else None)

    def purge(self) -> int:
        """Delete up to PURGE_LIMIT entries older than the retention; how many went."""
        condition = "PartitionKey eq @pk and RowKey gt @start"
        params = {"pk": PARTITION, "start": row_key_at(self._clock.now() - self._retention, "~")}

        def delete() -> int:
            keys = []
            for entity in self._table.query_entities(condition, parameters=params, select=["RowKey"]):
                keys.append(str(entity["RowKey"]))
                if len(keys) >= PURGE_LIMIT:
                    break
            for start in range(0, len(keys), 100):
                batch = keys[start : start + 100]
                self._table.submit_transaction([("delete", {"PartitionKey": PARTITION, "RowKey": k}) for k in batch])
            return len(keys)

        deleted = self._ensured.run("purge old audit entries", delete)
        if deleted:
            log.info("deleted %d audit entries older than the retention", deleted)
        return deleted


def _entry(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The API's shape of one entry."""
    targets = json.loads(entity.get("targets") or "[]")
    return {
        "time": entity.get("time"),
        "caller": {
            "kind": entity.get("callerKind"),
            "id": entity.get("callerId"),
            "appId": entity.get("callerAppId"),
            "name": entity.get("callerName"),
        },
        "action": entity.get("action"),
        "targets": targets,
        "correlationId": entity.get("correlationId"),
        "outcome": {
            "status": int(entity.get("status") or 0),
            "problemType": entity.get("problemType"),
            "reason": entity.get("reason"),
        },
    }
