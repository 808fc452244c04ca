"""The SAM consent's last recorded state, one entity in the `UPGRADES_TABLE` table.

PartitionKey `consent`, RowKey `state` (no upgrade id or idempotency key can take that partition). Written by
`KeepConsentAlive`, read by `GET /api/health` (docs/design.md, "Consent keep-alive, health and alerts"). Times
are seconds since the epoch, as in the upgrade records. The write is an ETag-safe upsert: a check never
overwrites a newer check recorded by another instance meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.correlation import get_logger
from shared.storage.clients import EnsuredResource, error_code

log = get_logger(__name__)

PARTITION_KEY = "consent"
ROW_KEY = "state"
OK = "ok"
WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class ConsentState:
    last_checked_at: float
    outcome: str  # "ok", or the problem slug: consent-required, mfa-required, ...
    detail: str  # for the operator; never a secret
    mfa: bool | None  # None: no access token was obtained
    refresh_token_version: str | None
    refresh_token_stored_at: float | None  # the Key Vault version's created time
    refresh_token_expires_at: float | None  # stored at + 90 days

    @property
    def ok(self) -> bool:
        return self.outcome == OK


def to_entity(state: ConsentState) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": PARTITION_KEY,
        "RowKey": ROW_KEY,
        "lastCheckedAt": state.last_checked_at,
        "outcome": state.outcome,
        "detail": state.detail,
        "mfa": state.mfa,
        "refreshTokenVersion": state.refresh_token_version,
        "refreshTokenStoredAt": state.refresh_token_stored_at,
        "refreshTokenExpiresAt": state.refresh_token_expires_at,
    }
    return {k: v for k, v in entity.items() if v is not None}


def from_entity(entity: dict[str, Any]) -> ConsentState:
    def number(name: str) -> float | None:
        value = entity.get(name)
        return None if value is None else float(value)

    mfa = entity.get("mfa")
    return ConsentState(
        last_checked_at=float(entity["lastCheckedAt"]),
        outcome=str(entity.get("outcome") or "unknown"),
        detail=str(entity.get("detail") or ""),
        mfa=mfa if isinstance(mfa, bool) else None,
        refresh_token_version=entity.get("refreshTokenVersion"),
        refresh_token_stored_at=number("refreshTokenStoredAt"),
        refresh_token_expires_at=number("refreshTokenExpiresAt"),
    )


class ConsentStateStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._ensured = EnsuredResource("table", table.table_name, table.create_table)

    def read(self) -> ConsentState | None:
        """The recorded state, None when no check was ever recorded. Raises UpgradeError when storage fails."""
        found = self._ensured.run("read the consent state", self._read)
        return found[0] if found else None

    def record(self, state: ConsentState) -> None:
        """Store `state` unless a newer check is already recorded."""
        self._ensured.run("record the consent state", lambda: self._record(state))

    def _read(self) -> tuple[ConsentState, str | None] | None:
        try:
            entity = self._table.get_entity(PARTITION_KEY, ROW_KEY)
        except ResourceNotFoundError as error:
            if error_code(error) == "TableNotFound":
                raise
            return None
        return from_entity(dict(entity)), entity.metadata.get("etag")

    def _record(self, state: ConsentState) -> None:
        for _ in range(WRITE_ATTEMPTS):
            current = self._read()
            if current and current[0].last_checked_at > state.last_checked_at:
                log.info("a newer consent check is already recorded; keeping it")
                return
            try:
                if current is None:
                    self._table.create_entity(to_entity(state))
                else:
                    self._table.update_entity(
                        to_entity(state),
                        mode=UpdateMode.REPLACE,
                        etag=current[1],
                        match_condition=MatchConditions.IfNotModified,
                    )
                return
            except (ResourceExistsError, ResourceModifiedError):
                continue  # another instance wrote in between: read again and decide again
        log.warning("the consent state changed under every write attempt; keeping the other writer's")
