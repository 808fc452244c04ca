"""One clock for the app and the sandbox: real time by default, frozen and advanced by hand by tests and the
benchmark that simulate hours of tracking in a moment."""

from __future__ import annotations

import threading
import time


class ManualClock:
    __test__ = False  # not a pytest test class (tests import it)

    def __init__(self) -> None:
        self._frozen: float | None = None
        self._lock = threading.Lock()

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def __call__(self) -> float:  # the sandbox's clock is a callable
        return self.now()

    def now(self) -> float:  # the app's Clock protocol
        with self._lock:
            return time.time() if self._frozen is None else self._frozen

    def monotonic(self) -> float:  # frozen: the frozen time, so deadlines follow advance() and sleep()
        with self._lock:
            return time.monotonic() if self._frozen is None else self._frozen

    def sleep(self, seconds: float) -> None:
        """Frozen: advance instead of waiting, so retries and back-off take no wall time."""
        with self._lock:
            if self._frozen is not None:
                self._frozen += max(0.0, seconds)
                return
        time.sleep(seconds)

    def freeze(self, at: float | None = None) -> float:
        with self._lock:
            self._frozen = time.time() if at is None else at
            return self._frozen

    def advance(self, seconds: float) -> float:
        with self._lock:
            assert self._frozen is not None, "freeze() the clock before advancing it"
            self._frozen += seconds
            return self._frozen

    def thaw(self) -> None:
        with self._lock:
            self._frozen = None
