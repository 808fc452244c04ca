"""Several instances, one killed: submissions spread over instances (separate OS processes) on one Azurite and
one sandbox, with Partner Center faults, one instance SIGKILLed mid-run; then what was lost or doubled.

Used by `make bench` (600 upgrades) and tests/test_scale_out.py (45). docs/design.md "Scale" is the promise.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from bench.callers import FINAL, Callers, Submission
from bench.instances import instances
from bench.scale_waits import ScaleWaits
from localrun.callback_sink import CallbackSink
from localrun.environment import StatusSchedule, app_environment
from sandbox.faults import Fault, Faults
from sandbox.partner_center import Customer, Step
from sandbox.stack import Sandbox

REDELIVERED = re.compile(r"UpgradeStatus queue=\S+ id=\S+ dequeue=([2-9]|\d\d+) ")
FAILED = re.compile(r"UpgradeStatus queue=\S+ id=\S+ dequeue=\d+ -> failed")
TAKEN_OVER = "took over an abandoned Idempotency-Key claim"
SCHEDULE = StatusSchedule(1, 2)  # the instances check an upgrade 1 s after its creation, then every 2 s


@dataclass(frozen=True)
class ScaleOutPlan:
    instances: int = 3
    upgrades: int = 60
    twice_every: int = 10  # every 10th key is also sent to another instance at the same time
    fault_rate: float = 0.05  # of Partner Center calls: 503, 429 (Retry-After 1) or a delay past the timeout
    spread_seconds: float = 5.0  # submissions start evenly over this long
    kill_at: float = 0.5  # instance 0 is SIGKILLed when this share of the submissions has started
    callers: int = 12
    complete_after: float = 2.0  # Partner Center completes each upgrade this long after its creation
    claim_lease_seconds: int = 4  # IDEMPOTENCY_CLAIM_LEASE_SECONDS
    queue_lease_seconds: float = 3.0  # the instances' queue message lease
    deadline_seconds: float | None = None  # for every upgrade to be final; None: `waits.final`
    seed: int = 7

    @property
    def waits(self) -> ScaleWaits:
        """The run's deadlines, from its own leases, timeouts and back-off (bench/scale_waits.py)."""
        return ScaleWaits(
            queue_lease_seconds=self.queue_lease_seconds,
            claim_lease_seconds=self.claim_lease_seconds,
            spread_seconds=self.spread_seconds,
            complete_after=self.complete_after,
            schedule=SCHEDULE,
        )


@dataclass
class ScaleOutResult:
    plan: ScaleOutPlan
    submissions: list[Submission]
    accepted: set[str]  # upgrade ids that got a 202
    final: dict[str, str]  # upgrade id -> final status seen through a surviving instance
    creates: int  # upgrades Partner Center created for this run's customers
    duplicate_creates: int  # creates beyond one per customer
    stuck_claims: int  # Idempotency-Key claims still pending at the end
    callbacks: Counter[tuple[str, str]]  # (upgradeId, status) -> deliveries
    status_queue_left: int
    poison: list[str]
    requests_in_flight_at_kill: int
    redelivered_messages: int  # status messages the survivors got again (dequeue >= 2): the killed one's, or retries
    failed_invocations: int  # survivors' UpgradeStatus runs that failed (retried after visibilityTimeout)
    drain_seconds: float  # from every upgrade final and called back to an empty status queue
    claims_taken_over: int  # survivors' log lines
    faults_injected: Counter[str]
    wall_seconds: float
    responses: list[requests.Response]  # every answer the callers got
    logs: str  # every instance's console, the killed one's too
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return len(self.accepted - self.final.keys())

    @property
    def unanswered_keys(self) -> int:
        return sum(1 for s in self.submissions if s.upgrade_id is None)

    @property
    def callback_duplicates(self) -> int:
        return sum(n - 1 for n in self.callbacks.values() if n > 1)

    @property
    def callbacks_missing(self) -> int:
        delivered = {upgrade_id for upgrade_id, status in self.callbacks if status in FINAL}
        return len(self.accepted - delivered)

    @property
    def keys_retried_after_takeover(self) -> int:
        return sum(1 for s in self.submissions if s.in_flight_after_kill and s.upgrade_id)


KILL_WAIT_SECONDS = 3.0


def run_scale_out(
    plan: ScaleOutPlan, sandbox: Sandbox, storage: str, signing_key: str, workdir: Path
) -> ScaleOutResult:
    run = uuid.uuid4().hex[:8]
    queue, table = f"scale-{run}", f"scale{run}"
    customers = _customers(sandbox, plan)
    normal_faults = sandbox.partner_center.faults
    faults = _random_faults(sandbox, plan)
    sink = CallbackSink(sandbox.ca.server_context(), signing_key.encode(), port=0).start()
    try:
        settings = app_environment(
            sandbox, storage, status_queue=queue, upgrades_table=table, schedule=SCHEDULE,
            callback_hosts=f"localhost:{sink.port}",  # an allow-list entry names its port (else only 443)
        ) | {
            "IDEMPOTENCY_CLAIM_LEASE_SECONDS": str(plan.claim_lease_seconds),
            "PARTNER_CENTER_TIMEOUT_SECONDS": "2",
        }  # fmt: skip
        waits, deadline = plan.waits, plan.deadline_seconds or plan.waits.final
        with instances(plan.instances, settings, workdir, queue_lease=plan.queue_lease_seconds, app_logs=True) as hosts:
            started = time.monotonic()
            key = sandbox.seed_caller_key(f"scale-{run}")
            callers = Callers(hosts, started + deadline, {"X-Caller-Key": key})
            submissions = _submissions(customers, plan, sink.url)
            at_kill = _submit_and_kill(callers, submissions, plan)
            sandbox.partner_center.faults = normal_faults
            final = _follow(callers, submissions, started + deadline)
            # every upgrade is final by now; a callback whose instance died comes back with its next attempt
            ids: set[str | None] = {s.upgrade_id for s in submissions if s.upgrade_id}
            callbacks = _callbacks(sink, ids, time.monotonic() + waits.callbacks)
            drain_started = time.monotonic()
            left = _drain(QueueClient.from_connection_string(storage, queue), drain_started + waits.drain)
            drained = time.monotonic() - drain_started
            wall = time.monotonic() - started
            survivors = "".join(h.log() for h in hosts if h.alive)
            logs = "".join(h.log() for h in hosts)
    finally:
        sink.stop()
        sandbox.partner_center.faults = normal_faults
    pc = sandbox.partner_center
    per_customer = Counter(u.customer_id.lower() for u in list(pc.upgrades.values()))
    counts = [per_customer[c.customer_id.lower()] for c in customers]
    return ScaleOutResult(
        plan=plan,
        submissions=submissions,
        accepted={s.upgrade_id for s in submissions if s.upgrade_id},
        final=final,
        creates=sum(counts),
        duplicate_creates=sum(n - 1 for n in counts if n > 1),
        stuck_claims=_pending_claims(TableClient.from_connection_string(storage, table)),
        callbacks=callbacks,
        status_queue_left=left,
        poison=_poison(QueueClient.from_connection_string(storage, f"{queue}-poison")),
        requests_in_flight_at_kill=at_kill,
        redelivered_messages=len(REDELIVERED.findall(survivors)),
        failed_invocations=len(FAILED.findall(survivors)),
        drain_seconds=drained,
        claims_taken_over=survivors.count(TAKEN_OVER),
        faults_injected=faults.served,
        wall_seconds=wall,
        responses=callers.responses,
        logs=logs,
    )


def _customers(sandbox: Sandbox, plan: ScaleOutPlan) -> list[Customer]:
    progression = [Step(0, "InProgress"), Step(plan.complete_after, "Completed")]
    customers = [Customer(str(uuid.uuid4()), progression=list(progression)) for _ in range(plan.upgrades)]
    for customer in customers:
        sandbox.partner_center.add_customer(customer)
    return customers


class CountingFaults(Faults):
    """The sandbox's faults, counting the ones served by kind ("503", "429", "timeout")."""

    def __init__(self) -> None:
        super().__init__()
        self.served: Counter[str] = Counter()

    def take(self, route: str) -> Fault | None:
        fault = super().take(route)
        if fault is not None:
            self.served[str(fault.status) if fault.status else "timeout"] += 1
        return fault


def _random_faults(sandbox: Sandbox, plan: ScaleOutPlan) -> CountingFaults:
    """5xx, 429 and a delay past PARTNER_CENTER_TIMEOUT_SECONDS (2 s): a timeout after which the create happened."""
    faults = CountingFaults()
    kinds = [Fault(None, status=503), Fault(None, status=429, retry_after=1), Fault(None, delay=2.5)]
    faults.randomly(plan.fault_rate, kinds, seed=plan.seed)
    sandbox.partner_center.faults = faults
    return faults


def _submissions(customers: list[Customer], plan: ScaleOutPlan, callback_url: str) -> list[Submission]:
    """One per customer, with the instance it goes to first; every `twice_every`-th key twice, the copy to the
    next instance."""
    submissions = []
    for index, customer in enumerate(customers):
        key = f"scale-{uuid.uuid4()}"
        first = index % plan.instances
        submissions.append(Submission(key, customer.customer_id, first, callback_url))
        if plan.twice_every and index % plan.twice_every == 0:
            submissions.append(Submission(key, customer.customer_id, first + 1, callback_url))
    return submissions


def _submit_and_kill(callers: Callers, submissions: list[Submission], plan: ScaleOutPlan) -> int:
    """Start the submissions evenly over `spread_seconds`; once `kill_at` of them started, SIGKILL instance 0 at
    the first moment it is answering a request (a watcher thread polls; after KILL_WAIT_SECONDS it kills anyway),
    so the kill lands mid-work rather than between requests. Returns how many requests it was answering."""
    kill_after = int(len(submissions) * plan.kill_at)
    step = plan.spread_seconds / max(len(submissions), 1)
    began = time.monotonic()
    at_kill: list[int] = []

    def kill_when_busy() -> None:
        deadline = time.monotonic() + KILL_WAIT_SECONDS
        while callers.in_flight[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        at_kill.append(callers.in_flight[0])
        callers.instances[0].kill()

    with ThreadPoolExecutor(max_workers=plan.callers + 1) as pool:
        futures: list[Future[object]] = []
        for index, submission in enumerate(submissions):
            time.sleep(max(0.0, began + index * step - time.monotonic()))
            if index == kill_after:
                futures.append(pool.submit(kill_when_busy))
            futures.append(pool.submit(callers.submit, submission))
        for future in futures:
            future.result()
    return at_kill[0] if at_kill else 0


def _follow(callers: Callers, submissions: list[Submission], deadline: float) -> dict[str, str]:
    """GET each accepted upgrade through a surviving instance until it is final (or the deadline)."""
    pending = {s.upgrade_id: s.status_uri for s in submissions if s.upgrade_id and s.status_uri}
    final: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        while pending and time.monotonic() < deadline:
            statuses = dict(zip(pending, pool.map(callers.final_status, pending.values()), strict=True))
            for upgrade_id, status in statuses.items():
                if status in FINAL:
                    final[upgrade_id] = status
                    del pending[upgrade_id]
            if pending:
                time.sleep(0.5)
    return final


def _callbacks(sink: CallbackSink, upgrade_ids: set[str | None], deadline: float) -> Counter[tuple[str, str]]:
    """(upgradeId, status) -> deliveries, once every upgrade has a final one (or at the deadline)."""
    while True:
        received = Counter(
            (str(c.body.get("upgradeId")), str(c.body.get("status")))
            for c in list(sink.received)
            if c.body is not None and c.signature_ok
        )
        delivered = {u for u, status in received if status in FINAL}
        if upgrade_ids <= delivered or time.monotonic() > deadline:
            return received
        time.sleep(0.2)


def _drain(queue: QueueClient, deadline: float) -> int:
    """Wait until the status queue is empty (a killed instance's messages return after their lease)."""
    while True:
        left = int(queue.get_queue_properties().approximate_message_count or 0)
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.25)


def _pending_claims(table: TableClient) -> int:
    entities = table.query_entities("RowKey eq 'idempotency-key' and state eq 'pending'")
    return sum(1 for _ in entities)


def _poison(queue: QueueClient) -> list[str]:
    try:
        return [str(m.content) for m in queue.peek_messages(max_messages=32)]
    except ResourceNotFoundError:  # no poison queue: nothing was poisoned
        return []
