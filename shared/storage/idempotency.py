"""Idempotency-Key records in the `UPGRADES_TABLE` table.

The first request with a key claims it (an insert that only one writer can win). It then either completes
the claim with its 202 response, which later requests with the same key and body replay for 24 hours, or
releases it on failure so the caller can retry with the same key. A claim left behind by a crashed
instance is taken over after its lease, `IDEMPOTENCY_CLAIM_LEASE_SECONDS` (default `STALE_CLAIM_SECONDS`, above the
create path's 60 s budget so a live claim is never taken); that is safe because the Partner Center MS-RequestId is
derived from the key, so Partner Center de-duplicates the create (docs/design.md "Scale"). The stored body holds no
URL: a replay builds `statusUri` and `Location` on its own request's base, never on the Host of the request that
stored it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.clock import Clock
from shared.correlation import get_logger
from shared.errors import IdempotencyKeyInFlight, IdempotencyKeyReused, UpgradeError
from shared.storage.clients import EnsuredResource, error_code

log = get_logger(__name__)

WINDOW_SECONDS = 24 * 60 * 60
STALE_CLAIM_SECONDS = 120
ROW_KEY = "idempotency-key"


@dataclass(frozen=True)
class StoredResponse:
    body: dict[str, Any]  # holds no URL
    retry_after: int


@dataclass(frozen=True)
class Claim:
    """Held by the request that may call Partner Center for this key."""

    partition_key: str
    etag: str | None


class IdempotencyStore:
    def __init__(self, table: TableClient, clock: Clock, *, claim_lease_seconds: float = STALE_CLAIM_SECONDS) -> None:
        self._table = table
        self._clock = clock
        self._claim_lease = claim_lease_seconds
        self._ensured = EnsuredResource("table", table.table_name, table.create_table)

    def claim(self, key: str, fingerprint: str) -> Claim | StoredResponse:
        """A Claim to proceed, or the stored response to replay. Raises 422 / 409 errors."""
        return self._ensured.run("claim the Idempotency-Key", lambda: self._claim(key, fingerprint))

    def complete(self, claim: Claim, response: StoredResponse) -> None:
        """Store the response for replay. Best effort: a failure only delays replays until the claim is stale."""
        entity = {
            "PartitionKey": claim.partition_key,
            "RowKey": ROW_KEY,
            "response": json.dumps(response.body, separators=(",", ":")),
            "retryAfter": response.retry_after,
            "state": "done",
        }
        try:
            self._ensured.run("store the idempotent response", lambda: self._merge(entity))
        except UpgradeError as error:
            log.warning("could not store the response for replay: %s", error.detail)

    def release(self, claim: Claim) -> None:
        """Forget the claim after a failure, so the same key can be retried at once."""

        try:
            self._ensured.run(
                "release the Idempotency-Key",
                lambda: self._table.delete_entity(
                    claim.partition_key, ROW_KEY, etag=claim.etag, match_condition=MatchConditions.IfNotModified
                ),
            )
        except UpgradeError as error:
            log.warning("could not release the Idempotency-Key claim: %s", error.detail)

    def _claim(self, key: str, fingerprint: str) -> Claim | StoredResponse:

        partition_key = "idempotency-" + hashlib.sha256(key.encode()).hexdigest()
        now = self._clock.now()
        fresh = {
            "PartitionKey": partition_key,
            "RowKey": ROW_KEY,
            "fingerprint": fingerprint,
            "state": "pending",
            "createdAt": now,
        }
        try:
            return Claim(partition_key, self._table.create_entity(fresh).get("etag"))
        except ResourceExistsError:
            pass
        try:
            existing = self._table.get_entity(partition_key, ROW_KEY)
        except ResourceNotFoundError as error:
            if error_code(error) == "TableNotFound":
                raise
            raise IdempotencyKeyInFlight("the Idempotency-Key changed hands while it was checked; retry") from None
        age = now - float(existing.get("createdAt", 0))
        expired = age > WINDOW_SECONDS
        abandoned = existing.get("state") == "pending" and age > self._claim_lease
        if not expired and existing.get("fingerprint") != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body in the last 24 hours"
            )
        if not expired and existing.get("state") == "done":
            body = json.loads(existing["response"])
            body.pop("statusUri", None)  # written by an earlier version, on another Host
            return StoredResponse(body=body, retry_after=int(existing.get("retryAfter", 60)))
        if not (expired or abandoned):
            raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still being processed; retry shortly")
        try:
            result = self._table.update_entity(
                fresh,
                mode=UpdateMode.REPLACE,
                etag=existing.metadata.get("etag"),
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise IdempotencyKeyInFlight(
                "a request with this Idempotency-Key is still being processed; retry"
            ) from None
        log.info("took over an %s Idempotency-Key claim", "expired" if expired else "abandoned")
        return Claim(partition_key, result.get("etag"))

    def _merge(self, entity: dict[str, Any]) -> None:

        self._table.update_entity(entity, mode=UpdateMode.MERGE)
