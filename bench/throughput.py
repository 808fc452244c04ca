"""Status checks per second with 1, 2 and 3 instances (separate OS processes) sharing one status queue, at a
Partner Center latency of 100 ms per call; with the CPU every process used, since this machine has 2 cores.

Each measured upgrade is one status check: it is recorded and queued (the app's own `Tracker.start`, in this
process) with its first check due a few seconds later, and Partner Center reports it Completed, so each message
is one check that records the final state and deletes the message. The rate is fitted between the 10th and the
90th percentile of the checks' arrival times at the sandbox, which leaves out the instances' cold first calls
and the poll back-off at the start.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.instances import instances, process_cpu_seconds
from localrun.azurite import Azurite
from localrun.environment import StatusSchedule, app_environment
from sandbox.partner_center import Customer, Step
from sandbox.stack import Sandbox
from shared.services import reset_services, services
from shared.upgrades.model import UpgradeRecord

FIRST_CHECK_SECONDS = 8  # long enough to record and queue every upgrade before the first is due


@dataclass(frozen=True)
class Throughput:
    instances: int
    checks: int
    per_second: float
    drain_seconds: float  # from the first check due to the last check's arrival
    instance_cpu: float  # CPU seconds of the instance processes while they drained the queue
    other_cpu: float  # this process (sandbox stand-ins) and Azurite, same window

    @property
    def cores_busy(self) -> float:
        return (self.instance_cpu + self.other_cpu) / self.drain_seconds

    @property
    def cpu_ms_per_check(self) -> float:
        return 1000 * (self.instance_cpu + self.other_cpu) / self.checks


def status_throughput(
    sandbox: Sandbox, azurite: Azurite, workdir: Path, count: int, checks: int, *, latency: float = 0.1
) -> Throughput:
    run = uuid.uuid4().hex[:8]
    settings = app_environment(
        sandbox,
        azurite.connection_string,
        status_queue=f"rate-{run}",
        upgrades_table=f"rate{run}",
        schedule=StatusSchedule(FIRST_CHECK_SECONDS, FIRST_CHECK_SECONDS),
    )
    upgrades = _completed_upgrades(sandbox, checks, latency)
    with instances(count, settings, workdir) as hosts:
        due = _track(settings, upgrades)
        time.sleep(max(0.0, due - time.time()))
        cpu_before = [h.cpu_seconds() for h in hosts]
        other_before = _other_cpu(azurite)
        started = time.monotonic()
        arrivals = _wait_for_checks(sandbox, {u for u, _ in upgrades}, deadline=started + 300)
        drain = time.monotonic() - started
        instance_cpu = sum(h.cpu_seconds() - b for h, b in zip(hosts, cpu_before, strict=True))
        other_cpu = _other_cpu(azurite) - other_before
    return Throughput(count, len(arrivals), steady_rate(arrivals), drain, instance_cpu, other_cpu)


def steady_rate(arrivals: list[float]) -> float:
    """Checks per second: the inverse slope of arrival time over rank, fitted between the 10th and the 90th
    percentile (a fit, not first-to-last, because checks arrive in waves of one thread pool each)."""
    low, high = len(arrivals) // 10, len(arrivals) * 9 // 10
    fit = statistics.linear_regression(range(low, high), arrivals[low:high])
    return 1 / fit.slope


def _completed_upgrades(sandbox: Sandbox, checks: int, latency: float) -> list[tuple[str, str]]:
    """(upgrade id, customer id): upgrades Partner Center reports Completed, each status call `latency` long."""
    pc = sandbox.partner_center
    upgrades = []
    for _ in range(checks):
        customer = Customer(str(uuid.uuid4()), progression=[Step(0, "Completed")], latency=latency)
        pc.add_customer(customer)
        upgrades.append((pc.seed_upgrade(customer.customer_id), customer.customer_id))
    return upgrades


def _track(settings: dict[str, str], upgrades: list[tuple[str, str]]) -> float:
    """Record and queue each upgrade with the app's own Tracker, first check FIRST_CHECK_SECONDS from now;
    returns when the first check is due."""
    saved = dict(os.environ)
    os.environ.update(settings)
    reset_services()
    try:
        tracker, now = services().tracker, time.time()

        def start(upgrade: tuple[str, str]) -> None:
            tracker.start(UpgradeRecord.new(upgrade[0], upgrade[1], now, next_check_at=now + FIRST_CHECK_SECONDS))

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(start, upgrades))
        return now + FIRST_CHECK_SECONDS
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_services()


def _wait_for_checks(sandbox: Sandbox, upgrade_ids: set[str], deadline: float) -> list[float]:
    """Arrival times of the first status call for each upgrade, once every upgrade had one."""
    while True:
        first: dict[str, float] = {}
        for request in sandbox.partner_center.requests_to("status"):
            upgrade_id = request.path.split("/")[-2].lower() if request.path.count("/") >= 3 else ""
            if upgrade_id in upgrade_ids and upgrade_id not in first:
                first[upgrade_id] = request.at
        if len(first) == len(upgrade_ids) or time.monotonic() > deadline:
            return sorted(first.values())
        time.sleep(0.2)


def _other_cpu(azurite: Azurite) -> float:
    times = os.times()
    own = times.user + times.system
    return own + (process_cpu_seconds(azurite.pid) if azurite.pid else 0.0)
