"""Batches through Microsoft's worker: the real app folder in `DevHost`, requests over HTTP, batch and status work
only through the hosts's queue pollers on Azurite (`%UPGRADE_BATCH_QUEUE%`, `%UPGRADE_STATUS_QUEUE%`).

tests/test_batches.py covers the same behaviour in virtual time through the functions' entry points; here it runs
in real time through the function.json bindings: an upgrade batch with every outcome, its one callback and its
CSV; a batch throttled by Partner Center; a message delivered twice. Every response is checked against the
OpenAPI description and every response and log line for leaked secrets (`checked`, as in test_e2e_devhost.py).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import re
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient
from test_e2e_devhost import ROOT, Client, checked, e2e_env, wait_for  # noqa: F401 - fixtures

from devhost import DevHost
from localrun.azurite import Azurite
from localrun.storage import app_queue_service
from sandbox.fleet import Fleet, Kind, moved_away
from sandbox.stack import Sandbox
from sandbox.upgrades import Customer, Step
from shared.api.queue_threads import BATCH_THREADS, POOL_THREADS
from support.receiver import CallbackReceiver

UPGRADE_OUTCOME = {
    Kind.ELIGIBLE: "completed",
    Kind.NOT_ELIGIBLE: "notEligible",
    Kind.HAS_UPGRADE: "completed",  # the upgrade eligibility named, tracked to its end
    Kind.REFUSED: "error",  # no Microsoft Customer Agreement: Partner Center refuses the create for good
    Kind.LINE_ITEM_FAILS: "failed",
}
EVERY_KIND = {kind.value: 1 for kind in Kind}
JSON = {"Content-Type": "application/json"}

pytestmark = pytest.mark.timeout(180)  # a ceiling: the waits below end on their conditions


@pytest.fixture
def receiver(sandbox: Sandbox) -> Iterator[CallbackReceiver]:
    with CallbackReceiver(sandbox.ca) as running:
        yield running


@pytest.fixture
def batch_app(
    e2e_env: dict[str, str],  # noqa: F811 - the fixture
    configure: Callable[..., None],
    receiver: CallbackReceiver,
    checked: list[Client],  # noqa: F811
) -> Iterator[tuple[DevHost, Client]]:
    fast = {"PARTNER_CENTER_BATCH_CALLS_PER_MINUTE": "6000", "CALLBACK_ALLOWED_HOSTS": f"localhost:{receiver.port}"}
    configure(**fast)
    host = DevHost(ROOT, http_port=0, environ=e2e_env | fast, queue_service=app_queue_service).start()
    client = Client(host.url)
    checked.append(client)
    yield host, client
    host.stop()


def fleet_of(sandbox: Sandbox, mix: dict[str, int]) -> Fleet:
    """Customers of this test only (a fresh seed), whose upgrades complete a second after creation."""
    return sandbox.add_fleet(sum(mix.values()), seed=uuid.uuid4().int % 10**9, mix=mix, complete_after=1.0)


def run_batch(client: Client, body: dict[str, object]) -> dict[str, object]:
    """POST the batch and follow its Location (a follow link, no key needed) until it answers 200."""
    accepted = client.request("POST", "/api/batches", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert accepted.status_code == 202, accepted.text
    final = client.follow(accepted.headers["Location"], until=lambda r: r.status_code != 202, timeout=90)
    assert final.status_code == 200, final.text
    return dict(final.json())


def outcomes(client: Client, batch_id: object) -> dict[str, str]:
    answer = client.request("GET", f"/api/batches/{batch_id}/customers", params={"top": "100"})
    return {row["customerId"]: row["outcome"] for row in answer.json()["items"]}


def test_an_upgrade_batch_ends_every_outcome_calls_back_once_and_exports_its_csv_through_the_worker(
    batch_app: tuple[DevHost, Client], sandbox: Sandbox, receiver: CallbackReceiver
) -> None:
    _, client = batch_app
    fleet = fleet_of(sandbox, EVERY_KIND)
    ids = [c.customer_id for c in fleet.customers]

    final = run_batch(client, {"productFamily": "Azure", "mode": "upgrade", "customerIds": ids,
                               "callbackUrl": receiver.url})  # fmt: skip

    assert outcomes(client, final["batchId"]) == {c: UPGRADE_OUTCOME[fleet.kind_of(c)] for c in ids}
    creates = [
        r.json["customerId"] for r in sandbox.partner_center.requests_to("create") if r.json["customerId"] in ids
    ]
    assert sorted(set(creates)) == sorted(creates)  # one create per customer at most, whatever was retried
    wait_for(lambda: receiver.deliveries, 60, "the batch callback")
    time.sleep(0.5)  # a second delivery would come now
    [delivery] = receiver.deliveries
    assert delivery.headers.get("X-Upgrade-Signature", "").startswith("sha256=")
    assert b'"status":"Completed"' in delivery.body and str(final["batchId"]).encode() in delivery.body
    exported = client.request("GET", f"/api/batches/{final['batchId']}/customers", headers={"Accept": "text/csv"})
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert {row["customerId"]: row["outcome"] for row in table} == outcomes(client, final["batchId"])


def test_a_throttled_batch_holds_its_calls_and_ends_with_correct_counts_through_the_worker(
    batch_app: tuple[DevHost, Client],
    sandbox: Sandbox,
    azurite: Azurite,
    e2e_env: dict[str, str],  # noqa: F811 - the fixture
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, client = batch_app
    fleet = fleet_of(sandbox, {"eligible": 6, "notEligible": 4})
    ids = [c.customer_id for c in fleet.customers]
    sandbox.partner_center.throttle(calls_per_minute=4, window_seconds=1.0)  # Retry-After of a second or so
    try:
        final = run_batch(client, {"productFamily": "Azure", "mode": "report", "customerIds": ids})
    finally:
        sandbox.partner_center.throttle(None)

    expected = {c.customer_id: "eligible" if fleet.kind_of(c.customer_id) is Kind.ELIGIBLE else "notEligible"
                for c in fleet.customers}  # fmt: skip
    assert outcomes(client, final["batchId"]) == expected
    assert sandbox.partner_center.throttled >= 1
    holds = [float(m.group(1)) for r in caplog.records if (m := re.search(r"hold batch calls until ([0-9.]+)",
                                                                           r.getMessage()))]  # fmt: skip
    refused = [r for r in sandbox.partner_center.log if r.status == 429]
    assert holds and len(holds) == len(refused)
    calls = [r.at for r in sandbox.partner_center.log]
    for refusal, until in zip(refused, holds, strict=True):
        assert [at for at in calls if refusal.at < at < until - 0.05] == []  # nothing inside a hold
    poison = QueueClient.from_connection_string(azurite.connection_string, e2e_env["UPGRADE_BATCH_QUEUE"] + "-poison")
    with contextlib.suppress(ResourceNotFoundError):  # no poison queue at all: nothing was poisoned
        assert list(poison.peek_messages()) == []


def test_a_batch_message_delivered_twice_creates_nothing_twice_through_the_worker(
    batch_app: tuple[DevHost, Client],
    sandbox: Sandbox,
    azurite: Azurite,
    e2e_env: dict[str, str],  # noqa: F811 - the fixture
) -> None:
    host, client = batch_app
    fleet = fleet_of(sandbox, {"eligible": 3})
    ids = [c.customer_id for c in fleet.customers]
    final = run_batch(client, {"productFamily": "Azure", "mode": "upgrade", "customerIds": ids})
    queue = e2e_env["UPGRADE_BATCH_QUEUE"]
    [chunk] = [p.text for p in azurite.put_messages(queue) if '"kind":"customers"' in p.text]
    creates = sandbox.partner_center.creates
    poller = next(p for p in host.pollers if p.function == "RunBatch")
    handled = poller.outcomes["ok"]

    QueueClient.from_connection_string(azurite.connection_string, queue).send_message(
        base64.b64encode(chunk.encode()).decode()
    )  # the same message again, as the queue delivers one whose handler died before deleting it
    wait_for(lambda: poller.outcomes["ok"] > handled or None, 60, "the second delivery")

    assert sandbox.partner_center.creates == creates
    assert outcomes(client, final["batchId"]) == dict.fromkeys(ids, "completed")
    assert requests.codes.ok == client.request("GET", f"/api/batches/{final['batchId']}").status_code


def test_http_routes_answer_while_batch_work_is_stuck_on_partner_center_through_the_worker(
    batch_app: tuple[DevHost, Client], sandbox: Sandbox
) -> None:
    """Batch messages whose Partner Center calls hang must not take the worker's threads from HTTP requests: with
    more stuck batch messages than the worker has threads (6 here), every HTTP route still answers."""
    host, client = batch_app
    fleet = fleet_of(sandbox, {"eligible": 200})  # ten work messages, more than the worker's pool of threads
    ids = [c.customer_id for c in fleet.customers]
    poller = next(p for p in host.pollers if p.function == "RunBatch")
    with sandbox.partner_center.holding("eligibility") as gate:
        accepted = client.request("POST", "/api/batches", json={"productFamily": "Azure", "mode": "report",
                                                                "customerIds": ids})  # fmt: skip
        assert accepted.status_code == 202, accepted.text
        batch_id = accepted.json()["batchId"]
        wait_for(lambda: gate.waiting >= BATCH_THREADS or None, 30, "batch calls stuck at Partner Center")
        wait_for(lambda: poller.in_flight >= 6 or None, 30, "batch messages in flight")  # more than the worker's pool

        answers = [
            client.request("GET", f"/api/batches/{batch_id}", timeout=20),
            client.request("GET", "/api/upgrades", params={"top": "1"}, timeout=20),
            client.request("GET", "/api/health", timeout=20),
            client.request(
                "POST", "/api/upgrades", data=b"{}", headers={"Content-Type": "application/json"}, timeout=20
            ),
        ]
        assert [a.status_code for a in answers][:2] == [202, 200] and answers[3].status_code == 400
        assert gate.waiting <= BATCH_THREADS  # the batch's own pool bounds what one instance has stuck
    final = client.follow(accepted.headers["Location"], until=lambda r: r.status_code != 202, timeout=45)
    assert final.status_code == 200 and final.json()["counts"]["eligible"] == len(ids)


def test_a_report_then_an_upgrade_of_its_eligible_rows_only_through_the_worker(
    batch_app: tuple[DevHost, Client], sandbox: Sandbox
) -> None:
    _, client = batch_app
    fleet = fleet_of(sandbox, EVERY_KIND)
    gone = moved_away(seed=uuid.uuid4().int % 10**9)  # answers 403 / 20002: `error` at once, never asked again
    sandbox.partner_center.add_customer(gone)
    ids = [c.customer_id for c in fleet.customers] + [gone.customer_id]

    report = run_batch(client, {"productFamily": "Azure", "mode": "report", "customerIds": ids})
    approved = run_batch(client, {"productFamily": "Azure", "mode": "upgrade", "fromBatch": report["batchId"],
                                  "outcomes": ["eligible"]})  # fmt: skip

    eligible = sorted(c for c, o in outcomes(client, report["batchId"]).items() if o == "eligible")
    assert outcomes(client, report["batchId"])[gone.customer_id] == "error"
    assert approved["fromBatch"] == report["batchId"] and approved["total"] == len(eligible)
    creates = sorted(r.json["customerId"] for r in sandbox.partner_center.requests_to("create"))
    assert creates == eligible
    asked_gone = [
        r for r in sandbox.partner_center.requests_to("eligibility") if r.json["customerId"] == gone.customer_id
    ]
    assert len(asked_gone) == 1


def test_a_cancel_in_the_middle_of_an_upgrade_batch_stops_its_creates_through_the_worker(
    batch_app: tuple[DevHost, Client], sandbox: Sandbox
) -> None:
    _, client = batch_app
    customers = [
        Customer(str(uuid.uuid4()), latency=0.2, progression=[Step(0, "InProgress"), Step(1, "Completed")])
        for _ in range(30)
    ]  # each call takes 0.2 s: the batch is still running when the cancel comes
    for customer in customers:
        sandbox.partner_center.add_customer(customer)
    ids = {c.customer_id for c in customers}

    def creates() -> list[float]:
        return [r.at for r in sandbox.partner_center.requests_to("create") if r.json["customerId"] in ids]

    body = {"productFamily": "Azure", "mode": "upgrade", "customerIds": sorted(ids)}
    accepted = client.request("POST", "/api/batches", json=body)
    assert accepted.status_code == 202, accepted.text
    batch_id = accepted.json()["batchId"]
    wait_for(lambda: len(creates()) >= 2, 30, "the first creates")

    cancelled = client.request("POST", f"/api/batches/{batch_id}/cancel")
    recorded = time.time()

    assert cancelled.status_code in (200, 202), cancelled.text
    assert cancelled.json()["status"] in ("Cancelling", "Cancelled") and cancelled.json()["counts"]["cancelled"] > 0
    final = client.follow(cancelled.headers.get("Location") or accepted.headers["Location"],
                          until=lambda r: r.status_code != 202, timeout=45)  # fmt: skip
    assert final.status_code == 200 and final.json()["status"] == "Cancelled"
    made = creates()
    late = [at for at in made if at > recorded]
    assert len(late) <= 2, f"creates after the cancel was recorded: {late}"  # at most one on the wire per message

    def settled() -> dict[str, int] | None:  # every upgrade made is tracked to its end, even one on the wire
        counts: dict[str, int] = client.request("GET", f"/api/batches/{batch_id}").json()["counts"]
        return counts if counts["completed"] == len(made) and not counts["upgrading"] else None

    counts = wait_for(settled, 20, "the upgrades made before the cancel to complete")
    assert counts["completed"] + counts["cancelled"] == 30 and counts["pending"] == 0
    assert sorted(c for c, o in outcomes(client, batch_id).items() if o == "completed") == sorted(
        r.json["customerId"] for r in sandbox.partner_center.requests_to("create") if r.json["customerId"] in ids
    )


def test_http_routes_answer_while_status_checks_are_stuck_on_partner_center_through_the_worker(
    batch_app: tuple[DevHost, Client], sandbox: Sandbox
) -> None:
    """A queue of status checks whose Partner Center calls hang must not take the worker's threads from HTTP
    requests either: with more stuck checks than the worker has threads (6 here), every HTTP route still answers."""
    host, client = batch_app
    poller = next(p for p in host.pollers if p.function == "UpgradeStatus")
    with sandbox.partner_center.holding("status") as gate:
        for _ in range(10):  # first checks due a second later (STATUS_FIRST_CHECK_SECONDS=1)
            created = client.request("POST", "/api/upgrades", json={"customerId": str(uuid.uuid4()),
                                                                     "productFamily": "Azure"})  # fmt: skip
            assert created.status_code == 202, created.text
        wait_for(lambda: gate.waiting >= POOL_THREADS["status"] or None, 30, "status checks stuck at Partner Center")
        wait_for(lambda: poller.in_flight >= 6 or None, 30, "status messages in flight")  # more than the worker's pool

        answers = [
            client.request("GET", "/api/upgrades", params={"top": "1"}, timeout=20),
            client.request("GET", f"/api/batches/{uuid.uuid4()}", timeout=20),
            client.request("POST", "/api/upgrades", data=b"{}", headers=JSON, timeout=20),
        ]
        assert [a.status_code for a in answers] == [200, 404, 400]
        assert gate.waiting <= POOL_THREADS["status"]  # the status pool bounds what one instance has stuck
