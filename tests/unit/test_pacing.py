"""Batch pacing's AIMD (shared/batches/pacing.py): call slots at the shared rate, halved on a 429 once per hold,
raised again while no 429 comes, never above the ceiling, and never over-booked by two instances.

The pacer runs against `MemoryTable`, an in-memory stand-in for the five TableClient methods it uses, with the same
ETag rules as the Table service (a write on a stale ETag fails), so the arithmetic is seen without Azurite.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared.batches import pacing
from shared.batches.pacing import PaceDeferred, Pacer, WaitAllowance
from support.step_clock import StepClock


class _Entity(dict[str, Any]):
    def __init__(self, fields: dict[str, Any], etag: str) -> None:
        super().__init__(fields)
        self.metadata = {"etag": etag}


class MemoryTable:
    """get_entity, create_entity and update_entity (MERGE, If-Match) on one table, in memory."""

    table_name = "memorytable"

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        self._etags = (f'W/"{n}"' for n in itertools.count(1))

    def create_table(self) -> None:
        return None

    def get_entity(self, partition_key: str, row_key: str) -> _Entity:
        if (partition_key, row_key) not in self.rows:
            raise ResourceNotFoundError("ResourceNotFound")
        fields, etag = self.rows[partition_key, row_key]
        return _Entity(fields, etag)

    def create_entity(self, entity: dict[str, Any]) -> dict[str, Any]:
        key = (entity["PartitionKey"], entity["RowKey"])
        if key in self.rows:
            raise ResourceExistsError("EntityAlreadyExists")
        return self._store(key, dict(entity))

    def update_entity(self, entity: dict[str, Any], *, mode: Any, etag: str, match_condition: Any) -> dict[str, Any]:
        key = (entity["PartitionKey"], entity["RowKey"])
        if key not in self.rows:
            raise ResourceNotFoundError("ResourceNotFound")
        fields, current = self.rows[key]
        if etag != current:
            raise ResourceModifiedError("UpdateConditionNotSatisfied")
        return self._store(key, fields | entity)

    def _store(self, key: tuple[str, str], fields: dict[str, Any]) -> dict[str, Any]:
        etag = next(self._etags)
        self.rows[key] = (fields, etag)
        return {"etag": etag}


def PATIENT() -> WaitAllowance:
    """An allowance that never runs out: the pace arithmetic, without the per-message limit."""
    return WaitAllowance(3600.0)


def _slots(pacer: Pacer, clock: StepClock, calls: int) -> list[float]:
    """When each of `calls` batch calls may go, relative to the first."""
    times = []
    for _ in range(calls):
        pacer.acquire(PATIENT())
        times.append(clock.now())
    return [round(t - times[0], 6) for t in times]


def _next_call_in(pacer: Pacer, clock: StepClock) -> float:
    """Seconds from one call to the next one's slot, whether waited in the function or deferred to the queue."""
    pacer.acquire(PATIENT())
    before = clock.now()
    try:
        pacer.acquire(PATIENT())
    except PaceDeferred as deferred:
        return float(deferred.seconds)
    return clock.now() - before


def _gaps(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in itertools.pairwise(times)]


def test_calls_are_spaced_at_the_ceiling_rate(step_clock: StepClock) -> None:
    pacer = Pacer(MemoryTable(), step_clock, ceiling_per_minute=120)  # type: ignore[arg-type]

    assert _slots(pacer, step_clock, 4) == [0.0, 0.5, 1.0, 1.5]


def test_a_429_holds_the_calls_and_halves_the_rate(step_clock: StepClock) -> None:
    pacer = Pacer(MemoryTable(), step_clock, ceiling_per_minute=120)  # type: ignore[arg-type]
    pacer.acquire(PATIENT())

    until = pacer.throttled(retry_after=10)

    assert until == step_clock.now() + 10
    pacer.acquire(PATIENT())
    assert step_clock.now() == until  # the first call after the 429 waits out the hold
    # 60 calls per minute now, creeping back up by INCREASE_PER_MINUTE per minute of calling
    first, second = _gaps(_slots(pacer, step_clock, 3))
    assert first == pytest.approx(60 / 60, abs=0.01)
    assert second < first


def test_more_429s_inside_one_hold_halve_the_rate_once(step_clock: StepClock) -> None:
    once, burst = MemoryTable(), MemoryTable()
    single = Pacer(once, step_clock, ceiling_per_minute=240)  # type: ignore[arg-type]
    single.throttled(retry_after=5)
    repeated = Pacer(burst, step_clock, ceiling_per_minute=240)  # type: ignore[arg-type]
    for _ in range(3):  # answers to calls that were already in flight when the first 429 came
        repeated.throttled(retry_after=5)

    step_clock.advance(5)
    assert _gaps(_slots(single, step_clock, 2)) == _gaps(_slots(repeated, step_clock, 2)) == [0.5]


def test_a_429_after_the_hold_halves_again_but_never_below_one_call_per_minute(step_clock: StepClock) -> None:
    pacer = Pacer(MemoryTable(), step_clock, ceiling_per_minute=4)  # type: ignore[arg-type]
    for _ in range(5):  # 4 -> 2 -> 1 -> 1 ...
        until = pacer.throttled(retry_after=1)
        step_clock.at = until

    assert _next_call_in(pacer, step_clock) == pytest.approx(60 / pacing.MIN_RATE)


def test_the_rate_recovers_additively_and_never_passes_the_ceiling(step_clock: StepClock) -> None:
    pacer = Pacer(MemoryTable(), step_clock, ceiling_per_minute=300)  # type: ignore[arg-type]
    step_clock.at = pacer.throttled(retry_after=1)  # 150 calls per minute

    times = _slots(pacer, step_clock, 2000)

    calls_in = [sum(1 for t in times if start <= t < start + 60) for start in (0, 60, 120, 180)]
    assert calls_in[0] == pytest.approx(150 + pacing.INCREASE_PER_MINUTE / 2, abs=3)
    assert calls_in[1] == pytest.approx(150 + 1.5 * pacing.INCREASE_PER_MINUTE, abs=3)
    assert calls_in[3] <= 300 and min(_gaps(times)) >= round(60 / 300, 3)


def test_two_instances_share_one_schedule(step_clock: StepClock) -> None:
    table = MemoryTable()
    first = Pacer(table, step_clock, ceiling_per_minute=60)  # type: ignore[arg-type]
    second = Pacer(table, step_clock, ceiling_per_minute=60)  # type: ignore[arg-type]

    times = []
    for pacer in (first, second, second, first, second, first):
        pacer.acquire(PATIENT())
        times.append(step_clock.now())

    assert _gaps(times) == [1.0] * 5  # one call per second between them, not per instance


def test_a_hold_longer_than_a_message_may_wait_sends_the_work_back(step_clock: StepClock) -> None:
    pacer = Pacer(MemoryTable(), step_clock, ceiling_per_minute=60)  # type: ignore[arg-type]
    pacer.throttled(retry_after=pacing.MAX_WAIT_PER_MESSAGE + 90)

    with pytest.raises(PaceDeferred) as deferred:
        pacer.acquire(WaitAllowance())

    assert deferred.value.seconds == pytest.approx(pacing.MAX_WAIT_PER_MESSAGE + 90)
    assert step_clock.slept == []  # nothing was waited in the function


def test_a_slot_further_away_than_a_message_may_wait_is_deferred_not_waited(step_clock: StepClock) -> None:
    pacer = Pacer(MemoryTable(), step_clock, ceiling_per_minute=1)  # type: ignore[arg-type]
    pacer.acquire(WaitAllowance())
    step_clock.advance(60 - pacing.MAX_WAIT_PER_MESSAGE - 5)  # the next slot is 5 s beyond what a message may wait

    with pytest.raises(PaceDeferred) as deferred:
        pacer.acquire(WaitAllowance())

    assert deferred.value.seconds == pytest.approx(pacing.MAX_WAIT_PER_MESSAGE + 5)
    assert step_clock.slept == []


def test_one_message_waits_at_most_its_allowance_in_all_then_defers(step_clock: StepClock) -> None:
    """Each wait alone is short (1 s at 60 calls a minute), but one message's waits add up to at most
    MAX_WAIT_PER_MESSAGE; the call after that goes back to the queue, and its slot stays free."""
    pacer = Pacer(MemoryTable(), step_clock, ceiling_per_minute=60)  # type: ignore[arg-type]
    allowance = WaitAllowance()
    calls = 0
    with pytest.raises(PaceDeferred) as deferred:
        while True:
            pacer.acquire(allowance)
            calls += 1

    assert sum(step_clock.slept) <= pacing.MAX_WAIT_PER_MESSAGE
    assert calls == int(pacing.MAX_WAIT_PER_MESSAGE) + 1 and deferred.value.seconds == pytest.approx(1.0)
    before = step_clock.now()
    pacer.acquire(WaitAllowance())  # the next message takes the slot the deferred call left free
    assert step_clock.now() - before == pytest.approx(1.0)
