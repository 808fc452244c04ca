"""The one callback retry policy, for upgrades and batches alike (pure: no I/O).

An attempt's result is DELIVERED (2xx), RETRY (the receiver or the network failed) or REFUSED (the URL is no
longer allowed, retrying cannot help). After `MAX_CALLBACK_ATTEMPTS` attempts, or a refusal, the callback is
FAILED. The attempt after `n` attempts comes `next_attempt_delay` seconds later, on the status-check schedule
(STATUS_FIRST_CHECK_SECONDS doubling up to STATUS_MAX_INTERVAL_SECONDS: 60, 120, 240, 480, 900 s by default).
Every attempt's follow-up is queued before the attempt (upgrades: `Tracker.guard_callback`; batches:
`BatchCompletion.guard` and `retry_callback`), so callbacks are at least once whatever instance dies.
"""

from __future__ import annotations

from enum import Enum

from shared.settings import Settings
from shared.upgrades.model import CallbackState

MAX_CALLBACK_ATTEMPTS = 5


class Delivery(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # the receiver or the network failed; try again later
    REFUSED = "refused"  # the URL is no longer allowed; retrying cannot help


def state_after(result: Delivery, attempts: int) -> CallbackState:
    """The callback's state after an attempt with `result`, `attempts` attempts made in all."""
    if result is Delivery.DELIVERED:
        return CallbackState.DELIVERED
    if result is Delivery.REFUSED or attempts >= MAX_CALLBACK_ATTEMPTS:
        return CallbackState.FAILED
    return CallbackState.PENDING


def next_attempt_delay(settings: Settings, attempts: int) -> int:
    """Seconds from the attempt after `attempts` attempts to the message that follows it up. That message is
    queued even before the last attempt: if the instance dies during it, the message makes it again (and after
    a finished last attempt it finds the callback delivered or failed and does nothing)."""
    return min(settings.first_check_seconds * int(2**attempts), settings.max_interval_seconds)
