"""Time and attempts allowed for each Partner Center call of one request or message."""

from __future__ import annotations

from collections.abc import Callable

from shared.clock import Clock

MAX_CALL_ATTEMPTS = 4


class Budget:
    """The create path retries in-process and waits out a 429 that fits (the caller waits for one answer); a
    queue-triggered check tries less and never waits on a 429, because the queue reschedules it instead. The
    deadline keeps an HTTP answer far below the 230 s front-end limit. Batch work passes a `gate`."""

    def __init__(
        self,
        seconds: float,
        clock: Clock,
        attempts: int = MAX_CALL_ATTEMPTS,
        *,
        wait_when_throttled: bool = True,
        gate: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock
        self._gate = gate
        self._end = clock.monotonic() + seconds
        self.attempts = attempts
        self.wait_when_throttled = wait_when_throttled

    def before_call(self) -> None:
        """Runs before every HTTP exchange: batch work waits here for its pace (shared/batches/pacing.py); a
        caller's own request has no gate and is never held behind a batch."""
        if self._gate is not None:
            self._gate()

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock.monotonic())
