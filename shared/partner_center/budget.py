"""Time and attempts allowed for each Partner Center call of one request or message."""

from __future__ import annotations

from shared.clock import Clock

MAX_ATTEMPTS = 4


class Budget:
    """The create path retries in-process and waits out a 429 that fits (the caller waits for one answer); a
    queue-triggered check tries less and never waits on a 429, because the queue reschedules it instead. The
    deadline keeps an HTTP answer far below the 230 s front-end limit."""

    def __init__(
        self, seconds: float, clock: Clock, attempts: int = MAX_ATTEMPTS, *, wait_when_throttled: bool = True
    ) -> None:
        self._clock = clock
        self._end = clock.monotonic() + seconds
        self.attempts = attempts
        self.wait_when_throttled = wait_when_throttled

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock.monotonic())
