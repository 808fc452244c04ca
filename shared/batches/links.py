"""Which batches wait on an upgrade: `PartitionKey = "batchlink|{upgradeId}"`, `RowKey = batchId`.

Written by the batch worker before its row says `upgrading`; read by tracking when the upgrade is final. A link
per (upgrade, batch) lets two batches wait on the same upgrade, and keeps the upgrade record's shape unchanged.
"""

from __future__ import annotations

from azure.data.tables import TableClient, UpdateMode

from shared.storage.clients import EnsuredResource

PREFIX = "batchlink|"


class BatchLinks:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._ensured = EnsuredResource("table", table.table_name, table.create_table)

    def add(self, upgrade_id: str, batch_id: str, customer_id: str) -> None:
        entity = {"PartitionKey": PREFIX + upgrade_id, "RowKey": batch_id, "customerId": customer_id}
        self._ensured.run("link the upgrade to its batch", lambda: self._table.upsert_entity(entity, UpdateMode.MERGE))

    def batches_waiting_on(self, upgrade_id: str) -> list[tuple[str, str]]:
        """(batchId, customerId) of every batch whose row waits on this upgrade."""

        def read() -> list[tuple[str, str]]:
            found = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": PREFIX + upgrade_id})
            return [(e["RowKey"], e["customerId"]) for e in found]

        return self._ensured.run("read the batches of an upgrade", read)
