"""Fault injection for the stand-ins: the next N requests to a route get an error, a delay or a reset."""

from __future__ import annotations

import threading
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

    def take(self, route: str) -> Fault | None:
        with self._lock:
            for fault in self._pending:
                if fault.route in (None, route):
                    fault.times -= 1
                    if fault.times == 0:
                        self._pending.remove(fault)
                    return fault
        return None

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._pending)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
