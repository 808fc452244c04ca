"""Section 7 of `make bench`: the whole fleet (docs/design.md "Batches"), in virtual time.

The app runs its real code: StartBatch.main, then RunBatch.main and UpgradeStatus.main fed by
`localrun.virtual_queues` (every message the app queued, in visibility order, on the ManualClock the app and the
sandbox share). Side by side, on the same sandbox and throttle: a sequential script and a naive 16-thread loop
(bench/fleet_clients.py). Counts come from the sandbox's request log.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import azure.functions as func

import GetBatch
import RunBatch
import StartBatch
import UpgradeStatus
from bench.fleet_clients import BareClient, ClientRun, run_script
from bench.stack import CALLER, Stack
from localrun.virtual_queues import VirtualQueues
from sandbox.fleet import Fleet, Kind
from sandbox.server import Recorded
from shared.services import services

THROTTLE_PER_MINUTE = 1200
CEILING_PER_MINUTE = 3000  # above the throttle: the pace must adapt, the ceiling never binds
LATENCY = 0.050
MAX_DELIVERIES = 100_000
_UPGRADE_PATH = re.compile(r"/productupgrades/(?P<id>[^/]+)/status", re.IGNORECASE)


@dataclass(frozen=True)
class FleetRow:
    name: str
    seconds: float
    calls: int
    throttled: int
    failures: int  # customers without a final outcome (lost) or given up
    duplicates: int  # customers checked more than once


@dataclass(frozen=True)
class UpgradeBatchRow:
    customers: int
    eligible: int  # eligibility said eligible: exactly these get one create each
    creates: int
    customers_created_twice: int
    tracked: int
    status_calls: int
    status_calls_max: int
    seconds: float
    counts: dict[str, int]


def _customer(request: Recorded) -> str:
    return str((request.json or {}).get("customerId", "")).lower()


def _use_app(stack: Stack, name: str) -> None:
    stack.fresh_app(
        UPGRADE_BATCH_QUEUE=f"{name}-batch",
        UPGRADE_STATUS_QUEUE=f"{name}-status",
        UPGRADES_TABLE=name.replace("-", ""),
        PARTNER_CENTER_BATCH_CALLS_PER_MINUTE=str(CEILING_PER_MINUTE),
    )
    services().clock = stack.clock


def _run_batch(stack: Stack, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """POST /api/batches, then the queues until they drain. Returns the batch and its virtual duration."""
    request = func.HttpRequest(
        "POST", "https://bench.example/api/batches", headers={"Content-Type": "application/json", **CALLER},
        body=json.dumps(body).encode(),
    )  # fmt: skip
    started = stack.clock.now()
    answer = StartBatch.main(request)
    assert answer.status_code == 202, answer.get_body()
    batch_id = json.loads(answer.get_body())["batchId"]
    handlers = {f"{name}-batch": RunBatch.main, f"{name}-status": UpgradeStatus.main}
    queues = VirtualQueues(stack.azurite, stack.clock, handlers)
    queues.run(max_deliveries=MAX_DELIVERIES)
    assert not queues.poisoned, queues.poisoned[:3]
    record = services().batch_store.get(batch_id)
    assert record is not None and record.completed_at is not None, "the batch did not complete"
    read = func.HttpRequest(
        "GET", f"https://bench.example/api/batches/{batch_id}", headers=CALLER, route_params={"batchId": batch_id},
        body=b"",
    )  # fmt: skip
    return json.loads(GetBatch.main(read).get_body()), record.completed_at - started


def app_report(stack: Stack, fleet: Fleet) -> FleetRow:
    """A report batch over every customer (allCustomers), the sandbox throttling at THROTTLE_PER_MINUTE."""
    pc = stack.sandbox.partner_center
    _use_app(stack, "bench-fleet")
    pc.throttle(calls_per_minute=THROTTLE_PER_MINUTE)
    before = len(pc.log)
    batch, seconds = _run_batch(
        stack, "bench-fleet", {"productFamily": "Azure", "mode": "report", "allCustomers": True}
    )
    calls = pc.log[before:]
    checked = Counter(_customer(r) for r in calls if r.route == "eligibility" and r.status == 200)
    counts = batch["counts"]
    final = sum(v for k, v in counts.items() if k not in ("pending", "upgrading"))
    lost = len(fleet.customers) - final + counts["error"]
    return FleetRow(
        "app (batch, one queue)", seconds, len(calls), sum(1 for r in calls if r.status == 429), lost,
        sum(n - 1 for n in checked.values()),
    )  # fmt: skip


def script(stack: Stack, fleet: Fleet, name: str, threads: int) -> FleetRow:
    pc = stack.sandbox.partner_center
    stack.clock.advance(120)  # a fresh throttle window
    pc.throttle(calls_per_minute=THROTTLE_PER_MINUTE)
    run: ClientRun = run_script(
        BareClient(pc.url, services().tokens.access_token()), stack.clock, threads=threads, latency=LATENCY
    )
    missing = sum(1 for c in fleet.customers if c.customer_id.lower() not in run.checked)
    return FleetRow(
        name, run.seconds, run.calls, run.throttled, max(run.failures, missing),
        sum(n - 1 for n in run.checked.values()),
    )  # fmt: skip


def lower_bound(customers: int, page_size: int) -> float:
    """Seconds for (pages + one eligibility call per customer) at exactly the throttle's rate."""
    pages = -(-customers // page_size)
    return (pages + customers) * 60.0 / THROTTLE_PER_MINUTE


def app_upgrade(stack: Stack, fleet: Fleet) -> UpgradeBatchRow:
    """An upgrade batch over the fleet's ids; creates and status calls counted at the sandbox."""
    pc = stack.sandbox.partner_center
    _use_app(stack, "bench-upgrade")
    stack.clock.advance(120)
    pc.throttle(calls_per_minute=THROTTLE_PER_MINUTE)
    before = len(pc.log)
    ids = [c.customer_id for c in fleet.customers]
    batch, seconds = _run_batch(
        stack, "bench-upgrade", {"productFamily": "Azure", "mode": "upgrade", "customerIds": ids}
    )
    calls = pc.log[before:]
    creates = Counter(_customer(r) for r in calls if r.route == "create" and r.status in (200, 201, 202))
    refused = Counter(_customer(r) for r in calls if r.route == "create" and r.status == 403)
    status = Counter(
        m.group("id").lower()
        for r in calls
        if r.route == "status" and r.status == 200 and (m := _UPGRADE_PATH.search(r.path))
    )
    eligible = sum(len(fleet.of_kind(k)) for k in (Kind.ELIGIBLE, Kind.LINE_ITEM_FAILS, Kind.REFUSED))
    return UpgradeBatchRow(
        customers=len(ids),
        eligible=eligible,
        creates=sum(creates.values()) + sum(refused.values()),
        customers_created_twice=sum(1 for c in set(creates) | set(refused) if creates[c] + refused[c] > 1),
        tracked=len(status),
        status_calls=sum(status.values()),
        status_calls_max=max(status.values(), default=0),
        seconds=seconds,
        counts={k: v for k, v in batch["counts"].items() if v},
    )
