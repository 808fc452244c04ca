"""The pace of batch calls to Partner Center, shared by every instance through two Table entities:

- `throttle|hold` (`PartitionKey = "throttle"`, `RowKey = "hold"`): `until`, epoch seconds. A Partner Center
  429 on batch work sets it to now + Retry-After; every instance reads it through a short per-instance cache
  and makes no batch call before it.
- `throttle|pace` (`RowKey = "pace"`): `rate` (calls per minute) and `next` (epoch of the next free call slot).
  Each batch call reserves the next slot with an ETag-conditional write (slot = max(now, next, hold); next =
  slot + 60 / rate), then waits for it on the injectable clock: a virtual schedule that no number of instances
  can exceed. `rate` never exceeds `PARTNER_CENTER_BATCH_CALLS_PER_MINUTE` and adapts below it like TCP's
  congestion control (AIMD): halved on a 429 (once per hold), and raised by `INCREASE_PER_MINUTE` calls per
  minute of calling while no 429 comes.

Each instance remembers the pace entity it last wrote (with its ETag) and reserves the next slot by writing on
that ETag straight away: one storage call per batch call while this instance is the only one calling, and a read
only after another instance changed the pace (the conditional write fails with 412 and the loop re-reads).

Batch work never holds a worker thread to wait for its pace: one queue message may wait at most
`MAX_WAIT_PER_MESSAGE` seconds in all (its `WaitAllowance`); a slot further away than what is left of that is not
reserved, and `PaceDeferred` sends the rest of the work back to the queue with a visibility delay until the slot
(docs/design.md, "Batches"). Single upgrades (POST /api/upgrades) never pass through here.
"""

from __future__ import annotations

from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.clock import Clock
from shared.correlation import get_logger
from shared.storage.clients import EnsuredResource, error_code

log = get_logger(__name__)

PARTITION = "throttle"
MAX_WAIT_PER_MESSAGE = 2.0  # DESIGN.md: batch work waits for its pace inside a function "about 2 s at most"
HOLD_CACHE_SECONDS = 1.5
INCREASE_PER_MINUTE = 30.0
MIN_RATE = 1.0
MAX_RACES = 25


class PaceDeferred(Exception):
    """The next call slot is too far away to wait for in the function; requeue the work after `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"batch calls are paced; next slot in {seconds:.0f} s")
        self.seconds = seconds


class WaitAllowance:
    """How long one batch message may still wait for its pace inside the function (it starts at
    `MAX_WAIT_PER_MESSAGE`); what is left shrinks with every wait."""

    def __init__(self, seconds: float = MAX_WAIT_PER_MESSAGE) -> None:
        self.remaining = seconds

    def spend(self, seconds: float) -> None:
        self.remaining = max(0.0, self.remaining - seconds)


class Pacer:
    def __init__(self, table: TableClient, clock: Clock, ceiling_per_minute: int) -> None:
        self._table = table
        self._clock = clock
        self._ceiling = float(ceiling_per_minute)
        self._ensured = EnsuredResource("table", table.table_name, table.create_table)
        self._hold: tuple[float, float] = (0.0, float("-inf"))  # (until, read at)
        self._pace: dict[str, Any] | None = None  # the pace entity as this instance last wrote it (with its ETag)

    def acquire(self, allowance: WaitAllowance) -> None:
        """Wait for this instance's next batch call slot (the Budget gate of every batch call), or raise
        `PaceDeferred` when the slot is further away than the message may still wait."""
        hold = self.hold_until()
        now = self._clock.now()
        if hold - now > allowance.remaining:
            raise PaceDeferred(hold - now)
        slot = self._ensured.run("reserve a batch call slot", lambda: self._reserve(hold, allowance.remaining))
        wait = slot - self._clock.now()
        if wait > 0:
            self._clock.sleep(wait)
            allowance.spend(wait)

    def hold_until(self) -> float:
        """The shared hold, read at most every HOLD_CACHE_SECONDS per instance."""
        until, read_at = self._hold
        now = self._clock.now()
        if now - read_at >= HOLD_CACHE_SECONDS:
            entity = self._ensured.run("read the batch hold", lambda: self._read("hold"))
            until = float(entity.get("until", 0.0)) if entity else 0.0
            self._hold = (until, now)
        return until

    def throttled(self, retry_after: float) -> float:
        """Record a 429 on batch work: hold every instance until now + retry_after, halve the pace (once per
        hold). Returns the hold's end."""
        until = self._clock.now() + max(1.0, retry_after)
        self._ensured.run("record the batch hold", lambda: self._update("hold", lambda e: _hold(e, until)))
        self._ensured.run("slow the batch pace", lambda: self._update("pace", lambda e: self._slow(e, until)))
        self._hold = (until, self._clock.now())
        log.warning("Partner Center throttled batch work; all instances hold batch calls until %.3f", until)
        return until

    def _reserve(self, hold: float, max_wait: float) -> float:
        for race in range(MAX_RACES):
            entity = self._pace if race == 0 and self._pace is not None else self._read("pace")
            rate = min(self._ceiling, float(entity.get("rate", self._ceiling)) if entity else self._ceiling)
            now = self._clock.now()
            slot = max(now, hold, float(entity.get("next", 0.0)) if entity else 0.0)
            if slot - now > max_wait:  # not reserved: the slot stays free for a message that can wait for it
                raise PaceDeferred(slot - now)
            fields = {"rate": min(self._ceiling, rate + INCREASE_PER_MINUTE / rate), "next": slot + 60.0 / rate}
            if self._write("pace", entity, fields):
                return slot
        raise PaceDeferred(1.0)

    def _slow(self, entity: dict[str, Any] | None, until: float) -> dict[str, Any]:
        rate = min(self._ceiling, float(entity.get("rate", self._ceiling)) if entity else self._ceiling)
        previous_hold = float(entity.get("holdUntil", 0.0)) if entity else 0.0
        if self._clock.now() >= previous_hold:  # a new 429, not one more from calls made before the last hold
            rate = max(MIN_RATE, rate / 2)
            log.info("batch pace halved to %.1f calls per minute", rate)
        next_slot = max(until, float(entity.get("next", 0.0)) if entity else 0.0)
        return {"rate": rate, "next": next_slot, "holdUntil": max(previous_hold, until)}

    def _update(self, row: str, change: Any) -> None:
        for _ in range(MAX_RACES):
            entity = self._read(row)
            if self._write(row, entity, change(entity)):
                return

    def _read(self, row: str) -> dict[str, Any] | None:
        try:
            entity = self._table.get_entity(PARTITION, row)
        except ResourceNotFoundError as error:
            if error_code(error) == "TableNotFound":
                raise
            return None
        return dict(entity) | {"__etag": entity.metadata.get("etag")}

    def _write(self, row: str, entity: dict[str, Any] | None, fields: dict[str, Any]) -> bool:
        new = {"PartitionKey": PARTITION, "RowKey": row, **fields}
        try:
            if entity is None:
                written = self._table.create_entity(new)
            else:
                written = self._table.update_entity(
                    new, mode=UpdateMode.MERGE, etag=entity["__etag"], match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError):
            if row == "pace":
                self._pace = None
            return False
        except ResourceNotFoundError as error:
            if error_code(error) == "TableNotFound":
                raise
            return False
        if row == "pace":
            self._pace = {**(entity or {}), **fields, "__etag": written.get("etag")}
        return True


def _hold(entity: dict[str, Any] | None, until: float) -> dict[str, Any]:
    return {"until": max(until, float(entity.get("until", 0.0)) if entity else 0.0)}
