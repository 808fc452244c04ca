"""Timer triggers: run a function at each occurrence of its NCRONTAB schedule (UTC), like the host's TimerListener.

One thread per timer function. It waits for the next occurrence, invokes the function with the payload the
worker turns into ``func.TimerRequest`` (``{"Schedule": …, "ScheduleStatus": {"Last", "Next", "LastUpdated"},
"IsPastDue": false}``), then waits for the one after; invocations of one function never overlap. ``runOnStartup``
fires once when the host starts. ``useMonitor`` is ignored (no schedule status is kept in storage, so a missed
occurrence is not caught up and ``IsPastDue`` is always false). The clock is injectable: ``SteppedClock`` lets a
test move time by hand instead of sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from devhost.config import FunctionConfig
from devhost.errors import InvocationError
from devhost.ncrontab import Schedule

log = logging.getLogger("devhost.timer")

# (function name, timer payload) -> None; raises InvocationError when the function fails.
TimerInvoker = Callable[[str, dict[str, Any]], None]


class TimerClock(Protocol):
    def now(self) -> datetime: ...

    def wait_until(self, moment: datetime, stop: threading.Event) -> None:
        """Return when ``now() >= moment`` or ``stop`` is set, whichever comes first."""


class RealClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait_until(self, moment: datetime, stop: threading.Event) -> None:
        while not stop.is_set():
            remaining = (moment - self.now()).total_seconds()
            if remaining <= 0:
                return
            stop.wait(min(remaining, 1.0))  # re-read the clock: it may be adjusted meanwhile


class SteppedClock:
    """A clock that only moves when told to (``advance_to``); for tests."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._changed = threading.Condition()

    def now(self) -> datetime:
        with self._changed:
            return self._now

    def advance_to(self, moment: datetime) -> None:
        with self._changed:
            self._now = max(self._now, moment)
            self._changed.notify_all()

    def wait_until(self, moment: datetime, stop: threading.Event) -> None:
        with self._changed:
            while self._now < moment and not stop.is_set():
                self._changed.wait(0.05)  # wakes on advance_to; the timeout only notices `stop`


def timer_payload(schedule: Schedule, last: datetime | None, now: datetime) -> dict[str, Any]:
    """What the host sends for a ``timerTrigger`` parameter (``TimerInfo`` serialized)."""
    return {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": {
            "Last": (last or now).isoformat(),
            "Next": schedule.next_after(now).isoformat(),
            "LastUpdated": now.isoformat(),
        },
        "IsPastDue": False,
    }


class TimerScheduler:
    """Fires one timer-triggered function on its schedule until ``stop()``."""

    def __init__(self, function: FunctionConfig, invoke: TimerInvoker, clock: TimerClock | None = None) -> None:
        self.function = function.name
        self.schedule = Schedule.parse(function.schedule)
        self.run_on_startup = function.run_on_startup
        self.fired = 0
        self._invoke = invoke
        self._clock = clock or RealClock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def next_occurrence(self) -> datetime:
        return self.schedule.next_after(self._clock.now())

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"devhost-timer-{self.function}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._thread = None

    def _run(self) -> None:
        last: datetime | None = None
        if self.run_on_startup:
            last = self._fire(last, self._clock.now())
        while not self._stop.is_set():
            due = self.next_occurrence()
            self._clock.wait_until(due, self._stop)
            if self._stop.is_set():
                return
            last = self._fire(last, due)

    def _fire(self, last: datetime | None, due: datetime) -> datetime:
        try:
            self._invoke(self.function, timer_payload(self.schedule, last, due))
            outcome = "ok"
        except InvocationError:
            outcome = "failed"  # logged by the host; the next occurrence runs as usual
        except Exception:
            log.exception("%s: the timer could not invoke the function", self.function)
            outcome = "failed"
        self.fired += 1
        level = logging.INFO if outcome == "ok" else logging.WARNING
        log.log(level, "%s timer %s -> %s", self.function, due.strftime("%Y-%m-%dT%H:%M:%SZ"), outcome)
        return due
