"""Partner Center's throttling as a sliding window: at most `limit` calls per caller key (the partner tenant) in
any `window` seconds, on an injectable clock.

`admit(key)` records the call and answers None (go ahead) or the whole seconds until a call would be let through
again (the `Retry-After`). Partner Center's guidance says retries count, so by default a refused call also takes
its place in the window (`count_rejected=False` counts only the calls let through); `Retry-After` is computed so
that a caller that waits exactly that long, and nobody else calls meanwhile, gets through.
"""

from __future__ import annotations

import math
import threading
from collections import deque

from sandbox.server import Clock


class SlidingWindow:
    def __init__(self, limit: int, clock: Clock, *, window: float = 60.0, count_rejected: bool = True) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be at least 1 and window positive")
        self.limit = limit
        self.window = window
        self.count_rejected = count_rejected
        self._clock = clock
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> int | None:
        """None if the call may go ahead, else its Retry-After in whole seconds (at least 1)."""
        with self._lock:
            now = self._clock()
            calls = self._calls.setdefault(key, deque())
            while calls and calls[0] <= now - self.window:
                calls.popleft()
            if len(calls) < self.limit:
                calls.append(now)
                return None
            if self.count_rejected:
                calls.append(now)
            # Free once all but limit - 1 of the calls in the window have aged out.
            frees_at = calls[len(calls) - self.limit] + self.window
            return max(1, math.ceil(frees_at - now))

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
