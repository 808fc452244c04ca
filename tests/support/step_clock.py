"""A clock for unit tests: it only moves when told, and `sleep` advances it (and is recorded)."""

from __future__ import annotations


class StepClock:
    """A clock that only moves when told: `sleep` advances it and is recorded."""

    __test__ = False

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.at = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.at

    def monotonic(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.at += seconds
