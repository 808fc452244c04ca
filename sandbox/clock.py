"""One clock for the app and the sandbox: real time by default, frozen and advanced by hand by tests and the
benchmark that simulate hours of tracking in a moment.

Waiting never takes wall time: `sleep` moves this clock forward instead (while frozen, the frozen time; else an
offset added to real time). Concurrent sleepers that start together wake together: the clock moves to the latest
wake-up time, not to the sum of their waits. The app's retries and back-off therefore cost tests nothing, while
the sandbox (which reads the same clock) sees the time they waited."""

from __future__ import annotations

import threading
import time


class ManualClock:
    __test__ = False  # not a pytest test class (tests import it)

    def __init__(self) -> None:
        self._frozen: float | None = None
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def __call__(self) -> float:  # the sandbox's clock is a callable
        return self.now()

    def now(self) -> float:  # the app's Clock protocol
        with self._lock:
            return time.time() + self._offset if self._frozen is None else self._frozen

    def monotonic(self) -> float:  # frozen: the frozen time, so deadlines follow advance() and sleep()
        with self._lock:
            return time.monotonic() + self._offset if self._frozen is None else self._frozen

    def sleep(self, seconds: float) -> None:
        """Advance instead of waiting, so retries and back-off take no wall time."""
        wake = self.monotonic() + max(0.0, seconds)
        with self._lock:
            if self._frozen is not None:
                self._frozen = max(self._frozen, wake)
            else:
                self._offset = max(self._offset, wake - time.monotonic())

    def freeze(self, at: float | None = None) -> float:
        with self._lock:
            self._frozen = time.time() + self._offset if at is None else at
            return self._frozen

    def advance(self, seconds: float) -> float:
        with self._lock:
            assert self._frozen is not None, "freeze() the clock before advancing it"
            self._frozen += seconds
            return self._frozen

    def thaw(self) -> None:
        """Back to real time (and no offset): each test starts from the wall clock."""
        with self._lock:
            self._frozen = None
            self._offset = 0.0
