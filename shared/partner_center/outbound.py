"""What both outbound HTTP clients (Entra's token endpoint and Partner Center) share: one retry loop with
back-off, Retry-After parsing, and reading a JSON answer whatever the service sent.

Hand-written rather than urllib3's `Retry` or tenacity: the Partner Center loop must see every response (a 401
forces a token refresh, a 429 whose Retry-After outlives the caller's budget is passed on at once, and a
queue-triggered check never waits on a 429), and its waits must go through the injectable `Clock` so tests take
no wall time. Twenty lines of loop are simpler than configuring a library to do all of that.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import requests

from shared.clock import Clock
from shared.whole_number import whole_number


class AttemptAgain(Exception):
    """Raised by one attempt that is worth another after `wait` seconds; `failure` is raised when none is left."""

    def __init__(self, wait: float, failure: Exception) -> None:
        super().__init__(str(failure))
        self.wait = wait
        self.failure = failure


def with_retries[T](attempt: Callable[[int], T], *, attempts: int, remaining: Callable[[], float], clock: Clock) -> T:
    """Call `attempt(1)`, `attempt(2)`, ... until one returns, or raise the last failure when the attempts are
    used up or the wait would not fit in the time `remaining()`."""
    number = 1
    while True:
        try:
            return attempt(number)
        except AttemptAgain as retry:
            if number >= attempts or retry.wait >= remaining():
                raise retry.failure from None
            clock.sleep(retry.wait)
            number += 1


def backoff(attempt: int, base: float) -> float:
    """Exponential back-off with ±20 % jitter: base, 2 base, 4 base, ..."""
    return base * float(2 ** (attempt - 1)) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (the delta-seconds form: ASCII digits), or None when missing, a date or malformed."""
    seconds = whole_number(headers.get("Retry-After"), max_digits=9)
    return None if seconds is None else float(seconds)


def json_object(response: requests.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is empty, not JSON, or not an object."""
    try:
        document = response.json()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
