"""Batches end to end at harness level: StartBatch / GetBatch / GetBatchCustomers with real requests, RunBatch and
UpgradeStatus fed from Azurite's queues in virtual time (localrun/virtual_queues.py), the sandbox's generated fleet
as Partner Center. Assertions are on what Partner Center received and on what callers get back.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.functions.queue import QueueMessage
from test_callback_windows import kill_once_at_the_send

import RunBatch
from localrun.azurite import PutMessage
from sandbox.clock import ManualClock
from sandbox.fleet import Fleet, Kind
from sandbox.partner_center import Customer
from sandbox.stack import SamSeed, Sandbox
from shared.batches.model import batch_request_id
from shared.batches.pacing import MAX_WAIT_PER_MESSAGE
from shared.batches.store import BatchStore
from shared.services import services
from shared.tracking.callbacks import sign
from support.harness import BASE_URL, AppHarness
from support.receiver import CallbackReceiver

PROBLEM = "urn:partner-center-upgrade:problem:"
REPORT_OUTCOME = {
    Kind.ELIGIBLE: "eligible",
    Kind.NOT_ELIGIBLE: "notEligible",
    Kind.HAS_UPGRADE: "hasUpgrade",
    Kind.REFUSED: "eligible",  # eligibility says eligible; only a create is refused
    Kind.LINE_ITEM_FAILS: "eligible",
}
UPGRADE_OUTCOME = {
    Kind.ELIGIBLE: "completed",
    Kind.NOT_ELIGIBLE: "notEligible",
    Kind.HAS_UPGRADE: "completed",  # the existing upgrade, tracked to its end
    Kind.REFUSED: "error",
    Kind.LINE_ITEM_FAILS: "failed",
}


@pytest.fixture
def unthrottled(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox's throttle outlives `reset()`: switch it off after the test that set it."""
    yield sandbox
    sandbox.partner_center.throttle(None)


def fleet_of(sandbox: Sandbox, count: int = 20) -> Fleet:
    """A fleet of this test only (a fresh seed: customers and upgrades stay in the sandbox between tests)."""
    return sandbox.add_fleet(count, seed=uuid.uuid4().int % 10**9)


def ids(fleet: Fleet) -> list[str]:
    return [c.customer_id for c in fleet.customers]


def start(app: AppHarness, mode: str, customer_ids: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"productFamily": "Azure", "mode": mode, **extra}
    if customer_ids is None:
        body["allCustomers"] = True
    else:
        body["customerIds"] = customer_ids
    answer = app.post_batch(body)
    assert answer.status == 202, answer.body
    return answer.json()  # type: ignore[no-any-return]


def rows(app: AppHarness, batch_id: str, **params: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    query = dict(params)
    while True:
        page = app.get_batch_customers(batch_id, query)
        assert page.status == 200, page.body
        found += page.json()["items"]
        token = page.json()["continuationToken"]
        if token is None:
            return found
        query["continuationToken"] = token


def outcome_by_customer(app: AppHarness, batch_id: str) -> dict[str, str]:
    return {r["customerId"]: r["outcome"] for r in rows(app, batch_id)}


def expected_counts(outcomes: dict[str, str]) -> dict[str, int]:
    counts = dict.fromkeys(
        ("pending", "eligible", "notEligible", "hasUpgrade", "upgrading", "completed", "failed", "error", "cancelled"),
        0,
    )
    counts.update(Counter(outcomes.values()))
    return counts


# --- report and upgrade batches -------------------------------------------------------------------


def test_report_batch_over_a_customer_list_gives_every_outcome_and_counts(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    fleet = fleet_of(sandbox)
    started = start(app, "report", ids(fleet))
    batch_id = started["batchId"]
    assert started["status"] == "Running"
    assert started["total"] == 20
    assert started["counts"]["pending"] == 20
    assert sandbox.partner_center.log == []  # nothing reaches Partner Center from the POST

    running = app.get_batch(batch_id)
    assert running.status == 202
    location = running.header("Location") or ""
    assert location.startswith(f"{BASE_URL}/api/follow/batches/{batch_id}?expires=")  # a follow link: no key needed
    assert running.header("Retry-After") == "10"
    assert app.follow(location).status == 202  # answers what GET /api/batches/{id} answers

    app.virtual_queues(virtual_clock).run()

    done = app.get_batch(batch_id)
    assert done.status == 200
    assert app.follow(location).json() == done.json() | {"correlationId": app.follow(location).json()["correlationId"]}
    body = done.json()
    outcomes = outcome_by_customer(app, batch_id)
    assert outcomes == {c: REPORT_OUTCOME[fleet.kind_of(c)] for c in ids(fleet)}
    assert body["status"] == "Completed"
    assert body["counts"] == expected_counts(outcomes)
    assert body["total"] == 20
    assert body["completedAt"] is not None
    assert body["statusUri"] == f"{BASE_URL}/api/batches/{batch_id}"
    assert body["customersUri"] == f"{BASE_URL}/api/batches/{batch_id}/customers"
    assert len(sandbox.partner_center.requests_to("eligibility")) == 20
    assert sandbox.partner_center.requests_to("create") == []
    by_id = {r["customerId"]: r for r in rows(app, batch_id)}
    for customer in fleet.of_kind(Kind.NOT_ELIGIBLE):
        assert by_id[customer.customer_id]["reason"] == customer.reason
    for customer in fleet.of_kind(Kind.HAS_UPGRADE):
        assert by_id[customer.customer_id]["upgradeId"] == customer.existing_upgrade_id


def test_upgrade_batch_creates_through_the_create_path_tracks_and_settles_every_outcome(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    fleet = fleet_of(sandbox)
    batch_id = start(app, "upgrade", ids(fleet))["batchId"]

    app.virtual_queues(virtual_clock).run()

    body = app.get_batch(batch_id).json()
    outcomes = outcome_by_customer(app, batch_id)
    assert outcomes == {c: UPGRADE_OUTCOME[fleet.kind_of(c)] for c in ids(fleet)}
    assert body["status"] == "Completed"
    assert body["counts"] == expected_counts(outcomes)
    creates = sandbox.partner_center.requests_to("create")
    creating = fleet.of_kind(Kind.ELIGIBLE) + fleet.of_kind(Kind.LINE_ITEM_FAILS) + fleet.of_kind(Kind.REFUSED)
    assert sorted(r.json["customerId"] for r in creates) == sorted(c.customer_id for c in creating)
    for request in creates:  # the MS-RequestId derived from batch and customer
        assert request.headers["MS-RequestId"] == batch_request_id(batch_id, request.json["customerId"])
    by_id = {r["customerId"]: r for r in rows(app, batch_id)}
    for customer in fleet.of_kind(Kind.REFUSED):
        assert "Microsoft Customer Agreement" in by_id[customer.customer_id]["reason"]
    for customer in fleet.of_kind(Kind.LINE_ITEM_FAILS):
        row = by_id[customer.customer_id]
        assert row["upgradeId"] and row["reason"].startswith("Failed")
        # tracked like any upgrade: its status route knows it
        assert app.get(row["upgradeId"], customer.customer_id).json()["status"] == "Failed"
    for customer in fleet.of_kind(Kind.HAS_UPGRADE):
        assert by_id[customer.customer_id]["upgradeId"] == customer.existing_upgrade_id


def test_customers_refused_for_the_same_reason_share_one_reason_the_page_counts_together(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    """A refused row's reason is Partner Center's description and code, not a sentence naming the customer: the
    progress page counts the most common reasons, and a reason per customer would make every count 1."""
    fleet = sandbox.add_fleet(3, seed=uuid.uuid4().int % 10**9, mix={Kind.REFUSED: 1})
    batch_id = start(app, "upgrade", ids(fleet))["batchId"]

    app.virtual_queues(virtual_clock).run()

    reasons = {r["reason"] for r in rows(app, batch_id)}
    assert len(reasons) == 1 and "(code 900120)" in next(iter(reasons))
    assert not any(c in next(iter(reasons)) for c in ids(fleet))
    page = app.get_batch(batch_id, headers={"Accept": "text/html"}).body.decode()
    assert page.count('<tr class="reason">') == 1 and '<data value="3">3</data>' in page  # one reason, 3 customers


def test_all_customers_are_listed_page_by_page_following_links_next(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = fleet_of(sandbox, 12)
    monkeypatch.setattr(sandbox.partner_center.customer_pages, "max_size", 5)
    listed = list(sandbox.partner_center.customers)  # this session's customers so far, this fleet's included

    started = start(app, "report")
    assert started["total"] is None
    queues = app.virtual_queues(virtual_clock)
    queues.run()

    pages = sandbox.partner_center.requests_to("customers")
    assert len(pages) == -(-len(listed) // 5) >= 3
    assert [p.arg("seekOperation") for p in pages] == [None] + ["Next"] * (len(pages) - 1)
    assert all(p.headers.get("MS-ContinuationToken") for p in pages[1:])
    body = app.get_batch(started["batchId"]).json()
    assert body["status"] == "Completed"
    assert body["total"] == len(listed)
    outcomes = outcome_by_customer(app, started["batchId"])
    assert set(outcomes) == set(listed)
    assert {c: outcomes[c] for c in ids(fleet)} == {c: REPORT_OUTCOME[fleet.kind_of(c)] for c in ids(fleet)}
    names = {r["customerId"]: r["companyName"] for r in rows(app, started["batchId"])}
    assert all(names[c.customer_id] == c.company_name for c in fleet.customers)
    assert len(queues.of(app.batch_queue_name)) >= len(pages)


def test_a_throttled_batch_holds_every_call_until_retry_after_and_ends_with_correct_counts(
    app: AppHarness, unthrottled: Sandbox, virtual_clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = unthrottled
    fleet = fleet_of(sandbox, 40)
    sandbox.partner_center.throttle(calls_per_minute=12)
    batch_id = start(app, "report", ids(fleet))["batchId"]

    queues = app.virtual_queues(virtual_clock)
    queues.run()

    assert sandbox.partner_center.throttled >= 1
    body = app.get_batch(batch_id).json()
    outcomes = outcome_by_customer(app, batch_id)
    assert outcomes == {c: REPORT_OUTCOME[fleet.kind_of(c)] for c in ids(fleet)}
    assert body["counts"] == expected_counts(outcomes)
    assert queues.poisoned == [] and not [d for d in queues.deliveries if d.failed]
    assert app.azurite.put_messages(app.batch_queue_name + "-poison") == []
    holds = [
        float(m.group(1))
        for r in caplog.records
        if (m := re.search(r"hold batch calls until ([0-9.]+)", r.getMessage()))
    ]
    refused = [r for r in sandbox.partner_center.log if r.status == 429]
    assert len(holds) == len(refused) >= 1
    calls = [r.at for r in sandbox.partner_center.log]
    for refusal, until in zip(refused, holds, strict=True):
        inside = [at for at in calls if refusal.at < at < until - 0.001]
        assert inside == [], f"batch calls made inside the hold ({refusal.at:.1f}..{until:.1f}): {inside}"
    # adapted: far fewer 429s than calls, and no two 429s in a row
    statuses = [r.status for r in sandbox.partner_center.log]
    print(f"throttled batch: {len(calls)} calls, {len(refused)} x 429, {calls[-1] - calls[0]:.0f} s virtual")
    assert all(not (a == b == 429) for a, b in itertools.pairwise(statuses))


def test_batch_work_waits_for_its_pace_only_briefly_inside_a_function_and_requeues_the_rest(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock, configure: Callable[..., None]
) -> None:
    """A slow pace (one call every 4 s) must not keep a message's function running: each delivery waits at most
    MAX_WAIT_PER_MESSAGE in all, and the rest of its customers come back as a new message after the slot."""
    configure(PARTNER_CENTER_BATCH_CALLS_PER_MINUTE="15")
    fleet = fleet_of(sandbox, 12)
    batch_id = start(app, "report", ids(fleet))["batchId"]

    queues = app.virtual_queues(virtual_clock)
    queues.run()

    batch_deliveries = queues.of(app.batch_queue_name)
    held = [d.ended_at - d.at for d in batch_deliveries if d.ended_at is not None]
    assert held and max(held) <= MAX_WAIT_PER_MESSAGE + 0.01, f"a delivery waited {max(held):.1f} s for its pace"
    assert len(batch_deliveries) > 2  # the work went back to the queue instead of waiting
    calls = [r.at for r in sandbox.partner_center.log]
    assert len(calls) == 12 and min(b - a for a, b in itertools.pairwise(calls)) >= 4 - 0.01  # the pace held
    outcomes = outcome_by_customer(app, batch_id)
    assert outcomes == {c: REPORT_OUTCOME[fleet.kind_of(c)] for c in ids(fleet)}
    assert app.get_batch(batch_id).json()["status"] == "Completed"


def test_a_single_upgrade_is_not_held_behind_a_batch_hold(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    until = services().pacer.throttled(600)  # as a 429 on batch work would
    before = virtual_clock.now()

    answer = app.post({"customerId": str(uuid.uuid4()), "productFamily": "Azure"})

    assert answer.status == 202
    assert virtual_clock.now() - before < 5 < until - before
    assert [r.route for r in sandbox.partner_center.log] == ["eligibility", "create"]


def test_a_redelivered_message_creates_nothing_twice(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = sandbox.add_fleet(5, seed=uuid.uuid4().int % 10**9, mix={"eligible": 1})
    batch_id = start(app, "upgrade", ids(fleet))["batchId"]
    settle = BatchStore.settle
    crashed: list[bool] = []

    def crash_before_the_first_settle(store: BatchStore, *args: Any, **kwargs: Any) -> Any:
        if not crashed:  # the instance dies after Partner Center accepted, before the rows say so
            crashed.append(True)
            raise RuntimeError("instance lost")
        return settle(store, *args, **kwargs)

    monkeypatch.setattr(BatchStore, "settle", crash_before_the_first_settle)
    queues = app.virtual_queues(virtual_clock)
    queues.run()

    assert crashed
    [chunk] = {d.text for d in queues.of(app.batch_queue_name) if '"kind":"customers"' in d.text}
    assert [d.dequeue_count for d in queues.of(app.batch_queue_name) if d.text == chunk] == [1, 2]
    assert sandbox.partner_center.creates == 5  # the redelivery created nothing more
    for customer in fleet.customers:
        sent = {
            r.headers["MS-RequestId"]
            for r in sandbox.partner_center.requests_to("create")
            if r.json["customerId"] == customer.customer_id
        }
        assert sent <= {batch_request_id(batch_id, customer.customer_id)}
    counts = app.get_batch(batch_id).json()["counts"]
    assert counts["completed"] == 5

    calls = len(sandbox.partner_center.log)
    asyncio.run(RunBatch.main(QueueMessage(id="again", body=chunk.encode(), dequeue_count=1)))  # once more
    assert len(sandbox.partner_center.log) == calls
    assert app.get_batch(batch_id).json()["counts"] == counts


# --- callback -------------------------------------------------------------------------------------


@pytest.fixture
def receiver(sandbox: Sandbox, configure: Callable[..., None]) -> Iterator[CallbackReceiver]:
    with CallbackReceiver(sandbox.ca) as running:
        configure(CALLBACK_ALLOWED_HOSTS=f"localhost:{running.port}")  # an entry names its port (else only 443)
        yield running


def test_a_completed_batch_calls_back_exactly_once_signed_with_the_batch_resource(
    app: AppHarness, sandbox: Sandbox, sam: SamSeed, receiver: CallbackReceiver, virtual_clock: ManualClock
) -> None:
    fleet = fleet_of(sandbox, 10)
    batch_id = start(app, "upgrade", ids(fleet), callbackUrl=receiver.url)["batchId"]
    queues = app.virtual_queues(virtual_clock)
    queues.run()
    for delivery in queues.of(app.queue_name)[-3:]:  # late duplicates of status checks change nothing
        app.deliver(PutMessage(app.queue_name, 0, delivery.text))

    [delivery] = receiver.deliveries
    timestamp = delivery.headers["X-Upgrade-Timestamp"]
    expected = sign(sam.callback_signing_key.encode(), timestamp, delivery.body)
    assert delivery.headers["X-Upgrade-Signature"] == expected
    sent = json.loads(delivery.body)
    assert sent["batchId"] == batch_id and sent["status"] == "Completed"
    assert sent["counts"] == expected_counts(outcome_by_customer(app, batch_id))
    assert sent["statusUri"] == f"{BASE_URL}/api/batches/{batch_id}"
    assert app.get_batch(batch_id).json()["callback"] == {"url": receiver.url, "state": "delivered", "attempts": 1}


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_batch_whose_completing_instance_dies_at_the_send_still_calls_back(
    app: AppHarness,
    sandbox: Sandbox,
    receiver: CallbackReceiver,
    virtual_clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    """The instance that completed the batch dies as it sends the callback (before it leaves, or after the
    receiver answered and before the state is saved): the message queued before the completing write sends it."""
    fleet = fleet_of(sandbox, 4)
    batch_id = start(app, "report", ids(fleet), callbackUrl=receiver.url)["batchId"]
    kill_once_at_the_send(monkeypatch, when, RuntimeError)  # the host sees the invocation fail; nothing after ran
    queues = app.virtual_queues(virtual_clock)
    queues.run()

    sent = {json.loads(d.body)["status"] for d in receiver.deliveries}
    assert sent == {"Completed"} and len(receiver.deliveries) == (2 if when == "after" else 1)
    assert app.get_batch(batch_id).json()["callback"]["state"] == "delivered"


# --- CSV ------------------------------------------------------------------------------------------


def test_csv_has_the_header_rfc4180_quoting_and_formula_safe_cells(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    tricky = {
        str(uuid.uuid4()): '=HYPERLINK("https://evil.example")',
        str(uuid.uuid4()): "+49 Trading, Ltd",
        str(uuid.uuid4()): '-minus "quoted"\nnew line',
        str(uuid.uuid4()): "@import",
    }
    for customer_id, name in tricky.items():
        sandbox.partner_center.add_customer(
            Customer(customer_id=customer_id, company_name=name, eligible=False, reason="=1+1 not eligible")
        )
    started = start(app, "report")
    app.virtual_queues(virtual_clock).run()

    answer = app.get_batch_customers(started["batchId"], accept="text/csv")

    assert answer.status == 200
    assert answer.content_type.startswith("text/csv")
    text = answer.body.decode("utf-8")
    assert text.startswith("customerId,companyName,outcome,upgradeId,reason,updatedAt\r\n")
    parsed = {r["customerId"]: r for r in csv.DictReader(io.StringIO(text, newline=""))}
    assert len(parsed) == app.get_batch(started["batchId"]).json()["total"]
    for customer_id, name in tricky.items():
        assert parsed[customer_id]["companyName"] == "'" + name
        assert parsed[customer_id]["reason"] == "'=1+1 not eligible"
        assert parsed[customer_id]["outcome"] == "notEligible"
    assert '"\'-minus ""quoted""\nnew line"' in text  # RFC 4180: quoted, quotes doubled, line break kept


def test_customer_pages_filter_by_outcome_and_page_with_a_continuation_token(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    fleet = fleet_of(sandbox)
    batch_id = start(app, "report", ids(fleet))["batchId"]
    app.virtual_queues(virtual_clock).run()

    eligible = rows(app, batch_id, outcome="eligible", top="3")
    assert {r["customerId"] for r in eligible} == {
        c for c in ids(fleet) if REPORT_OUTCOME[fleet.kind_of(c)] == "eligible"
    }
    first = app.get_batch_customers(batch_id, {"top": "7"}).json()
    assert len(first["items"]) == 7 and first["continuationToken"]
    assert len(rows(app, batch_id)) == 20


@pytest.mark.parametrize(
    ("params", "field"),
    [({"outcome": "maybe"}, "outcome"), ({"outcome": ""}, "outcome"), ({"top": "0"}, "top"), ({"top": "1001"}, "top"),
     ({"continuationToken": "not-a-token"}, "continuationToken")],
)  # fmt: skip
def test_bad_customer_filters_are_400_naming_the_parameter(app: AppHarness, params: dict[str, str], field: str) -> None:
    batch_id = start(app, "report", [str(uuid.uuid4())])["batchId"]
    answer = app.get_batch_customers(batch_id, params)
    assert answer.status == 400
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_unknown_batches_are_404(app: AppHarness) -> None:
    assert app.get_batch(str(uuid.uuid4())).status == 404
    assert app.get_batch_customers(str(uuid.uuid4())).status == 404
    assert app.get_batch("not-a-guid").status == 400


# --- validation: nothing reaches Partner Center -----------------------------------------------------


def valid_body(**changes: Any) -> dict[str, Any]:
    return {"productFamily": "Azure", "mode": "report", "customerIds": [str(uuid.uuid4())], **changes}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"productFamily": "Azure", "customerIds": [str(uuid.uuid4())]}, "mode"),
        (valid_body(mode="check"), "mode"),
        (valid_body(allCustomers=True), "customerIds"),
        ({"productFamily": "Azure", "mode": "report"}, "customerIds"),
        (valid_body(customerIds=[]), "customerIds"),
        (valid_body(customerIds=[str(uuid.uuid4()), str(uuid.uuid4()), "nope", str(uuid.uuid4())]), "customerIds[2]"),
        (valid_body(customerIds=["4f6a2d1e-8c3b-4e5f-9a7d-2b1c0e9f8a76"] * 2), "customerIds[1]"),
        (valid_body(customerIds=[str(uuid.uuid4()) for _ in range(5001)]), "customerIds"),
        (valid_body(extra=1), "extra"),
        (valid_body(productFamily="Office"), "productFamily"),
        (valid_body(callbackUrl="https://example.test/hook"), "callbackUrl"),
        ({"productFamily": "Azure", "mode": "report", "allCustomers": False}, "allCustomers"),
    ],
)
def test_invalid_batches_are_400_naming_the_field(
    app: AppHarness, sandbox: Sandbox, body: dict[str, Any], field: str
) -> None:
    answer = app.post_batch(body)
    assert answer.status == 400, answer.body
    assert answer.json()["type"] == PROBLEM + "validation-failed"
    assert field in [e["field"] for e in answer.json()["errors"]]
    assert sandbox.partner_center.log == []


def test_oversized_wrong_type_and_reused_key_are_413_415_422(app: AppHarness, sandbox: Sandbox) -> None:
    big = json.dumps(valid_body(padding="x" * (256 * 1024))).encode()
    assert app.post_batch(raw=big).status == 413
    assert app.post_batch(valid_body(), content_type="text/plain").status == 415
    assert app.post_batch(raw=b"{not json").status == 400
    key = {"Idempotency-Key": f"batch-{uuid.uuid4()}"}
    first = app.post_batch(valid_body(), headers=key)
    assert first.status == 202
    assert app.post_batch(valid_body(), headers=key).status == 422  # another body: a new customer id
    assert sandbox.partner_center.log == []


def test_the_same_idempotency_key_and_body_replays_the_batch(app: AppHarness, sandbox: Sandbox) -> None:
    key = {"Idempotency-Key": f"batch-{uuid.uuid4()}"}
    body = valid_body()
    first, second = app.post_batch(body, headers=key), app.post_batch(body, headers=key)
    assert first.status == second.status == 202
    assert first.json()["batchId"] == second.json()["batchId"]
    assert (first.header("Location") or "").split("?")[0] == (second.header("Location") or "").split("?")[0]
    other = app.post_batch(body)
    assert other.json()["batchId"] != first.json()["batchId"]
