"""Time as a collaborator: wall-clock time, the monotonic clock and waiting all go through a `Clock`, so that
schedules, retries and throttling can be tested with a controllable clock and take no wall time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for durations and deadlines."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait (a virtual clock advances instead)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def iso(epoch: float | None) -> str | None:
    """`2026-11-21T12:00:00.123Z`, or None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
