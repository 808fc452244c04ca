"""Fault injection for the stand-ins: the next N requests to a route get an error, a delay or a reset; or,
for load tests, a random share of all requests gets one of several faults."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Fault:
    route: str | None
    status: int | None = None
    times: int = 1
    retry_after: int | None = None
    body: Any = None
    delay: float = 0.0
    reset_connection: bool = False


class Faults:
    """Pending faults, first added first used. Each one replaces the normal answer for its next `times`
    requests to `route` (None = any route); a fault with only `delay` delays the normal answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []
        self._rate = 0.0
        self._kinds: Sequence[Fault] = ()
        self._random = random.Random()

    def add(
        self,
        route: str | None = None,
        *,
        status: int | None = None,
        times: int = 1,
        retry_after: int | None = None,
        body: Any = None,
        delay: float = 0.0,
        reset_connection: bool = False,
    ) -> Fault:
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = Fault(route, status, times, retry_after, body, delay, reset_connection)
        with self._lock:
            self._pending.append(fault)
        return fault

    def randomly(self, rate: float, kinds: Sequence[Fault], seed: int | None = None) -> None:
        """From now on (until `clear`), each request not served by a pending fault gets one of `kinds` (each with
        `route` None or the request's route) with probability `rate`."""
        if not 0.0 <= rate <= 1.0 or (rate and not kinds):
            raise ValueError("rate must be within 0..1 and kinds must not be empty")
        with self._lock:
            self._rate, self._kinds, self._random = rate, tuple(kinds), random.Random(seed)

    def take(self, route: str) -> Fault | None:
        with self._lock:
            for fault in self._pending:
                if fault.route in (None, route):
                    fault.times -= 1
                    if fault.times == 0:
                        self._pending.remove(fault)
                    return fault
            if self._rate and self._random.random() < self._rate:
                candidates = [k for k in self._kinds if k.route in (None, route)]
                if candidates:
                    return self._random.choice(candidates)
        return None

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._pending)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._rate, self._kinds = 0.0, ()
