"""A gate that holds a stand-in's requests until a test opens it: "Partner Center is stuck" made deterministic.

`with stand_in.holding("eligibility") as gate:` makes every request to those routes wait inside the stand-in (as
a slow outside service would) until the block ends, or `max_seconds` passed, so a test can look at what the app
does meanwhile; `gate.waiting` counts the requests being held.
"""

from __future__ import annotations

import threading


class Gate:
    def __init__(self, routes: frozenset[str], max_seconds: float) -> None:
        self.routes = routes
        self.max_seconds = max_seconds
        self.waiting = 0
        self._open = threading.Event()
        self._lock = threading.Lock()

    def hold(self, route: str) -> None:
        if route not in self.routes:
            return
        with self._lock:
            self.waiting += 1
        try:
            self._open.wait(self.max_seconds)
        finally:
            with self._lock:
                self.waiting -= 1

    def open(self) -> None:
        self._open.set()
