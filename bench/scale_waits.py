"""How long a scale-out run waits for each thing, worked out from the run's own leases, timeouts and back-off.

Every wait is a deadline on a condition (the run goes on as soon as the condition holds), so a generous one
costs nothing on a quiet machine and keeps a loaded one from failing a run that would have finished. The parts:

- a message the killed instance held comes back when its lease ends, then waits for the next poll;
- a failed run's message comes back after host.json's `visibilityTimeout`, then waits for the next poll;
- a callback's next attempt is queued before each attempt (`Tracker.guard_callback`), due after at most the
  longest check interval, and the attempt before it may take the whole callback timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devhost.config import HostConfig, QueueOptions
from localrun.environment import StatusSchedule
from shared.tracking.callbacks import TIMEOUT as CALLBACK_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
MARGIN = 2.0  # each worst case is doubled: on a busy machine every step may take twice as long


@dataclass(frozen=True)
class ScaleWaits:
    queue_lease_seconds: float  # the instances' queue message lease (`--queue-lease`)
    claim_lease_seconds: float  # IDEMPOTENCY_CLAIM_LEASE_SECONDS
    spread_seconds: float  # submissions start evenly over this long
    complete_after: float  # Partner Center completes an upgrade this long after its creation
    schedule: StatusSchedule
    queues: QueueOptions = HostConfig.load(ROOT).queues  # the host.json the instances run

    @property
    def redelivery_after_kill(self) -> float:
        return self.queue_lease_seconds + self.queues.max_polling_interval

    @property
    def failed_run_retry(self) -> float:
        return self.queues.visibility_timeout + self.queues.max_polling_interval

    @property
    def callback_retry(self) -> float:
        return sum(CALLBACK_TIMEOUT) + self.schedule.max_interval_seconds + self.queues.max_polling_interval

    @property
    def final(self) -> float:
        """From the run's start until every accepted upgrade is final: the last submission, taken over after
        the claim lease when the killed instance held its claim, completed by Partner Center, and its status
        check failed once or held by the killed instance (a GET checks a stale record live meanwhile)."""
        submitted = self.spread_seconds + self.claim_lease_seconds + self.complete_after
        return MARGIN * (submitted + max(self.failed_run_retry, self.redelivery_after_kill))

    @property
    def callbacks(self) -> float:
        """From every upgrade final until every callback arrived: the final write's instance killed (its
        delivery message comes back after the lease), then one failed attempt and the retry."""
        return MARGIN * (self.redelivery_after_kill + self.callback_retry)

    @property
    def drain(self) -> float:
        """From the last callback until the status queue is empty: the last callback's follow-up message is due
        after the longest interval; a failed run's message, or the killed instance's, comes back later."""
        return MARGIN * (self.schedule.max_interval_seconds + max(self.failed_run_retry, self.redelivery_after_kill))

    @property
    def total(self) -> float:
        return self.final + self.callbacks + self.drain
