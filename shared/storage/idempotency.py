"""The Idempotency-Key component: `Idempotency.run(key, fingerprint, work, replay)` is the one place that decides
what a request with a key does. POST /api/upgrades and POST /api/batches both call it (their keys are kept apart
by a prefix, shared/batches/service.py); the records and their storage verbs are in
shared/storage/idempotency_table.py.

The decision table (`decide`), for the key's record, within `WINDOW_SECONDS` (24 h) of its `createdAt`:

    no record                                      claim it (an insert only one writer wins), then `work`
    another fingerprint                            422 IdempotencyKeyReused
    COMPLETED                                      `replay` the stored answer
    IN_PROGRESS within the lease                   409 IdempotencyKeyInFlight (Retry-After)
    IN_PROGRESS past the lease (abandoned)         take it over (ETag-conditional), then `work`
    past the window (expired)                      take it over as new, then `work`

`work` gets the `Claim` and stores its answer with `complete` once it knows it (best effort: a failure only
delays replays until the claim is abandoned). A failure before that releases the claim, so the caller may retry
with the same key at once; after it, the stored answer stands (a batch whose first message could not be queued
is replayed, and the replay queues it). A claim left by a crashed instance is taken over after its lease,
`IDEMPOTENCY_CLAIM_LEASE_SECONDS` (default `STALE_CLAIM_SECONDS`, above the create path's 60 s budget so a live
claim is never taken); that is safe because the Partner Center MS-RequestId is derived from the key, so Partner
Center de-duplicates the create (docs/design.md "Scale").

The overlap: for a new upgrade (Partner Center has just created it, so its answer is InProgress and known),
`complete` runs side by side with recording and scheduling the upgrade (shared/upgrades/create.py `_forward`,
shared/tracking/tracker.py `start`), one storage round trip less on the create path. An instance may die with
the answer stored and the record not: the replay then re-creates the record with its request's callbackUrl
(`UpgradeService._keep_tracked`), and the Location recovers the upgrade either way. If the record turns out to
exist already, its status wins and the answer is stored again with it.

The stored answer holds no URL: a replay builds `statusUri` and `Location` on its own request's base, never on
the Host of the request that stored it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum, auto
from typing import Any

from shared.clock import Clock
from shared.correlation import get_logger
from shared.errors import IdempotencyKeyInFlight, IdempotencyKeyReused, UpgradeError
from shared.storage.idempotency_table import IdempotencyRecord, IdempotencyStatus, IdempotencyTable

log = get_logger(__name__)

WINDOW_SECONDS = 24 * 60 * 60
STALE_CLAIM_SECONDS = 120


@dataclass(frozen=True)
class StoredAnswer:
    """What a replay answers: the first try's answer (JSON, holding no URL) and its Retry-After."""

    body: dict[str, Any]
    retry_after: int


@dataclass
class Claim:
    """Held by the one request that may do the work for this key."""

    claimed: IdempotencyRecord  # as claimed: a release deletes only this version
    current: IdempotencyRecord  # as last written: a completion replaces only this version
    answered: bool = False  # `complete` was called: a failure after it keeps the answer


class Decision(Enum):
    CLAIM = auto()
    REPLAY = auto()
    IN_FLIGHT = auto()
    REUSED = auto()
    TAKE_OVER = auto()


def decide(existing: IdempotencyRecord | None, fingerprint: str, now: float, lease: float) -> Decision:
    """The decision table above, for the record found (None: no record)."""
    if existing is None:
        return Decision.CLAIM
    age = now - existing.created_at
    if age > WINDOW_SECONDS:
        return Decision.TAKE_OVER
    if existing.fingerprint != fingerprint:
        return Decision.REUSED
    if existing.status is IdempotencyStatus.COMPLETED:
        return Decision.REPLAY
    return Decision.TAKE_OVER if age > lease else Decision.IN_FLIGHT


class Idempotency:
    def __init__(
        self, table: IdempotencyTable, clock: Clock, *, claim_lease_seconds: float = STALE_CLAIM_SECONDS
    ) -> None:
        self.table = table
        self._clock = clock
        self._claim_lease = claim_lease_seconds

    def run[T](self, key: str, fingerprint: str, work: Callable[[Claim], T], replay: Callable[[StoredAnswer], T]) -> T:
        """`work(claim)` for a new (or abandoned, or expired) key, `replay(answer)` for a completed one; raises
        IdempotencyKeyReused (422) and IdempotencyKeyInFlight (409)."""
        record = self._claim(key, fingerprint)
        if record.status is IdempotencyStatus.COMPLETED:
            return replay(StoredAnswer(record.response or {}, record.retry_after))
        claim = Claim(record, record)
        try:
            return work(claim)
        except BaseException:
            if not claim.answered:
                self.release(claim)
            raise

    def complete(self, claim: Claim, answer: StoredAnswer) -> None:
        """Store the answer for replays. Best effort, never raises (see the module docstring, "The overlap")."""
        claim.answered = True
        try:
            stored = self.table.update_if_unchanged(claim.current.completed(answer.body, answer.retry_after))
        except UpgradeError as error:
            log.warning("could not store the response for replay: %s", error.detail)
            return
        if stored is None:
            log.warning("could not store the response for replay: the Idempotency-Key changed hands")
            return
        claim.current = stored

    def release(self, claim: Claim) -> None:
        """Forget the claim after a failure, so the same key can be retried at once. Best effort, never raises."""
        try:
            released = self.table.delete(claim.claimed)
        except UpgradeError as error:
            log.warning("could not release the Idempotency-Key claim: %s", error.detail)
            return
        if not released:
            log.warning("could not release the Idempotency-Key claim: it changed hands")

    def _claim(self, key: str, fingerprint: str) -> IdempotencyRecord:
        """The claimed IN_PROGRESS record, or the COMPLETED one to replay."""
        fresh = IdempotencyRecord.in_progress(key, fingerprint, self._clock.now())
        claimed = self.table.put_if_absent(fresh)
        if claimed is not None:
            return claimed
        existing = self.table.get(fresh.partition_key)
        if existing is None:
            raise IdempotencyKeyInFlight("the Idempotency-Key changed hands while it was checked; retry")
        decision = decide(existing, fingerprint, fresh.created_at, self._claim_lease)
        if decision is Decision.REUSED:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body in the last 24 hours"
            )
        if decision is Decision.REPLAY:
            return existing
        if decision is Decision.IN_FLIGHT:
            raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still being processed; retry shortly")
        taken = self.table.update_if_unchanged(replace(fresh, etag=existing.etag))
        if taken is None:
            raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still being processed; retry")
        expired = fresh.created_at - existing.created_at > WINDOW_SECONDS
        log.info("took over an %s Idempotency-Key claim", "expired" if expired else "abandoned")
        return taken
