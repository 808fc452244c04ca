"""A short, bounded, per-instance memory of the upgrades Partner Center said it does not know.

`GET /api/upgrades/{id}?customerId=…` checks Partner Center live when no record exists; without this memory a
key holder asking for random ids spends one Partner Center call (and the partner's throttling budget) per
request. Partner Center's "unknown" answer is kept `TTL_SECONDS` per (upgrade, customer), at most `MAX_ENTRIES`
of them (the oldest go first). A record written meanwhile is read before this memory is asked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

TTL_SECONDS = 45.0
MAX_ENTRIES = 4096


class UnknownUpgrades:
    def __init__(self, ttl_seconds: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._until: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def known_unknown(self, upgrade_id: str, customer_id: str, now: float) -> bool:
        """Whether Partner Center said it does not know this upgrade less than `TTL_SECONDS` ago."""
        with self._lock:
            until = self._until.get((upgrade_id, customer_id))
            if until is not None and until <= now:
                del self._until[(upgrade_id, customer_id)]
            return until is not None and until > now

    def remember(self, upgrade_id: str, customer_id: str, now: float) -> None:
        with self._lock:
            self._until.pop((upgrade_id, customer_id), None)
            self._until[(upgrade_id, customer_id)] = now + self._ttl
            while len(self._until) > self._max:
                self._until.popitem(last=False)


UNKNOWN = UnknownUpgrades()  # one per instance (process), shared by its threads
