"""Campaigns at harness level (docs/design.md, "Campaigns: review, approve, schedule, cancel, retry"): a batch made
from a finished batch's rows, excluded customers, an uploaded CSV, a schedule, a cancel, and customers Partner
Center will never serve. StartBatch / GetBatch / CancelBatch with real requests, RunBatch and UpgradeStatus fed
from Azurite's queues in virtual time, the sandbox's generated fleet as Partner Center.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.functions.queue import QueueMessage

import RunBatch
from localrun.virtual_queues import call_queue_function
from sandbox.clock import ManualClock
from sandbox.fleet import Fleet, Kind, moved_away
from sandbox.stack import Sandbox
from shared.batches.worker import BatchWorker
from support.harness import AppHarness
from support.receiver import CallbackReceiver

PROBLEM = "urn:partner-center-upgrade:problem:"
REPORT_ELIGIBLE = (Kind.ELIGIBLE, Kind.REFUSED, Kind.LINE_ITEM_FAILS)  # eligibility says eligible for these


def fleet_of(sandbox: Sandbox, count: int = 20, **mix: int) -> Fleet:
    return sandbox.add_fleet(count, seed=uuid.uuid4().int % 10**9, mix=mix or None)


def ids_of(fleet: Fleet, *kinds: Kind) -> list[str]:
    return [c.customer_id for c in fleet.customers if not kinds or fleet.kind_of(c.customer_id) in kinds]


def start(app: AppHarness, **body: Any) -> dict[str, Any]:
    answer = app.post_batch({"productFamily": "Azure", **body})
    assert answer.status == 202, answer.body
    return answer.json()  # type: ignore[no-any-return]


def run(app: AppHarness, clock: ManualClock, batch_id: str) -> dict[str, Any]:
    app.virtual_queues(clock).run()
    done = app.get_batch(batch_id)
    assert done.status == 200, done.body
    return done.json()  # type: ignore[no-any-return]


def outcomes(app: AppHarness, batch_id: str) -> dict[str, str]:
    page = app.get_batch_customers(batch_id, {"top": "1000"})
    return {r["customerId"]: r["outcome"] for r in page.json()["items"]}


def created_for(sandbox: Sandbox) -> list[str]:
    return sorted(r.json["customerId"] for r in sandbox.partner_center.requests_to("create"))


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- approve from a report, retry, exclude ----------------------------------------------------------------------


def test_an_upgrade_from_a_reports_eligible_rows_creates_for_exactly_those_customers(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    fleet = fleet_of(sandbox)
    report = start(app, mode="report", customerIds=ids_of(fleet))["batchId"]
    run(app, virtual_clock, report)
    assert sandbox.partner_center.requests_to("create") == []

    upgrade = start(app, mode="upgrade", fromBatch=report, outcomes=["eligible"])
    assert upgrade["fromBatch"] == report
    assert upgrade["total"] == len(ids_of(fleet, *REPORT_ELIGIBLE))
    body = run(app, virtual_clock, upgrade["batchId"])

    assert created_for(sandbox) == sorted(ids_of(fleet, *REPORT_ELIGIBLE))
    assert set(outcomes(app, upgrade["batchId"])) == set(ids_of(fleet, *REPORT_ELIGIBLE))
    assert body["status"] == "Completed" and body["fromBatch"] == report


def test_a_retry_batch_takes_the_error_and_failed_rows_of_an_upgrade_batch(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    fleet = fleet_of(sandbox)
    first = start(app, mode="upgrade", customerIds=ids_of(fleet))["batchId"]
    run(app, virtual_clock, first)
    sandbox.partner_center.log.clear()

    retry = start(app, mode="upgrade", fromBatch=first, outcomes=["error", "failed"])
    run(app, virtual_clock, retry["batchId"])

    again = ids_of(fleet, Kind.REFUSED, Kind.LINE_ITEM_FAILS)
    assert sorted(outcomes(app, retry["batchId"])) == sorted(again)
    asked = {r.json["customerId"] for r in sandbox.partner_center.requests_to("eligibility")}
    assert asked == set(again)  # the completed and not-eligible customers are left alone


def test_excluded_customers_are_never_touched_whatever_the_source(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = fleet_of(sandbox, 10, eligible=1)
    every = ids_of(fleet)
    # the partner's customers are this fleet (not every customer this session's tests added): allCustomers lists 10
    pc = sandbox.partner_center
    monkeypatch.setattr(pc, "customers", {c: pc.customers[c] for c in pc.customers if c in set(every)})
    excluded = every[:3]
    listed = start(app, mode="report", customerIds=every, excludeCustomerIds=excluded)
    assert listed["total"] == 7
    everyone = start(app, mode="report", allCustomers=True, excludeCustomerIds=excluded)
    run(app, virtual_clock, listed["batchId"])
    body = run(app, virtual_clock, everyone["batchId"])
    source = start(
        app, mode="report", fromBatch=listed["batchId"], outcomes=["eligible"], excludeCustomerIds=every[3:5]
    )
    run(app, virtual_clock, source["batchId"])

    assert set(outcomes(app, listed["batchId"])) == set(every[3:])
    assert not set(excluded) & set(outcomes(app, everyone["batchId"]))
    assert set(every[3:]) <= set(outcomes(app, everyone["batchId"]))
    assert body["total"] == len(sandbox.partner_center.customers) - 3
    assert set(outcomes(app, source["batchId"])) == set(every[5:])
    asked = [r.json["customerId"] for r in sandbox.partner_center.requests_to("eligibility")]
    assert not set(excluded) & set(asked)


def test_a_source_batch_that_is_unknown_or_not_finished_is_404_or_409_naming_it(
    app: AppHarness, sandbox: Sandbox
) -> None:
    unknown = str(uuid.uuid4())
    missing = app.post_batch(
        {"productFamily": "Azure", "mode": "upgrade", "fromBatch": unknown, "outcomes": ["eligible"]}
    )
    assert missing.status == 404 and unknown in missing.json()["detail"]
    running = start(app, mode="report", customerIds=[str(uuid.uuid4())])["batchId"]
    busy = app.post_batch({"productFamily": "Azure", "mode": "upgrade", "fromBatch": running, "outcomes": ["eligible"]})
    assert busy.status == 409
    assert busy.json()["type"] == PROBLEM + "batch-not-finished" and running in busy.json()["detail"]
    assert sandbox.partner_center.log == []


# --- CSV upload ----------------------------------------------------------------------------------------------------


def test_an_edited_csv_export_starts_a_batch_of_its_remaining_rows(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    fleet = fleet_of(sandbox, 8, eligible=1)
    report = start(app, mode="report", customerIds=ids_of(fleet))["batchId"]
    run(app, virtual_clock, report)
    exported = app.get_batch_customers(report, accept="text/csv").body.decode()
    lines = exported.splitlines()
    kept = lines[:1] + lines[1:6]  # the partner deleted the last three rows
    kept[2] = kept[2].replace(",eligible,", ',\'=HYPERLINK("x"),')  # a formula-safe cell, as the export writes them
    customer = next(csv.DictReader(io.StringIO(lines[0] + "\r\n" + lines[3])))["customerId"]
    kept[3] = kept[3].replace(customer, "'" + "\t" + customer)  # a prefixed customerId cell is the id
    body = ("\ufeff" + "\r\n".join(kept) + "\r\n").encode()

    answer = app.post_batch_csv(body, mode="upgrade", productFamily="Azure")

    assert answer.status == 202, answer.body
    wanted = [row["customerId"] for row in csv.DictReader(io.StringIO(lines[0] + "\r\n" + "\r\n".join(lines[1:6])))]
    run(app, virtual_clock, answer.json()["batchId"])
    assert created_for(sandbox) == sorted(wanted)


@pytest.mark.parametrize(
    ("body", "status", "field", "detail"),
    [
        (
            b"customerId,outcome\r\n" + f"{uuid.uuid4()},eligible\r\nnot-a-guid,eligible\r\n".encode(),
            400,
            "line 3",
            "GUID",
        ),
        (b"customer,outcome\r\nabc,eligible\r\n", 400, "body", "customerId column"),
        (b"customerId\r\n" + "".join(f"{uuid.uuid4()}\r\n" for _ in range(5001)).encode(), 400, "body", "5000"),
        (b"customerId\r\n" + b"x" * (256 * 1024), 413, None, "bytes"),
    ],
    ids=["bad-line", "no-column", "too-many-rows", "too-many-bytes"],
)
def test_a_bad_csv_is_answered_with_its_line_or_limit_and_reaches_nothing(
    app: AppHarness, sandbox: Sandbox, body: bytes, status: int, field: str | None, detail: str
) -> None:
    answer = app.post_batch_csv(body, mode="report", productFamily="Azure")
    assert answer.status == status, answer.body
    problem = answer.json()
    if field is not None:
        assert [e for e in problem["errors"] if e["field"] == field and detail in e["detail"]], problem
    else:
        assert detail in problem["detail"]
    assert sandbox.partner_center.log == []


# --- schedule --------------------------------------------------------------------------------------------------------


def test_a_scheduled_batch_makes_no_partner_center_call_before_not_before(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    fleet = fleet_of(sandbox, 5, eligible=1)
    not_before = int(virtual_clock.now()) + 10 * 24 * 3600  # past the queue's 7-day delay: messages chain
    started = start(app, mode="report", customerIds=ids_of(fleet), notBefore=rfc3339(not_before))
    assert started["status"] == "Scheduled" and started["notBefore"] == rfc3339(not_before).replace("Z", ".000Z")
    scheduled = app.get_batch(started["batchId"])
    assert scheduled.status == 202
    assert scheduled.json()["estimatedCompletionAt"] > scheduled.json()["notBefore"]
    [first] = app.azurite.put_messages(app.batch_queue_name)
    call_queue_function(
        RunBatch.main, QueueMessage(id="early", body=first.text.encode(), dequeue_count=1)
    )  # an early delivery

    body = run(app, virtual_clock, started["batchId"])

    calls = [r.at for r in sandbox.partner_center.log]
    assert len(calls) == 5 and min(calls) >= not_before
    assert body["status"] == "Completed"
    delays = [p.visibility_timeout for p in app.azurite.put_messages(app.batch_queue_name)]
    assert max(delays) <= 7 * 24 * 3600 and len(delays) >= 3  # the first, the early one sent back, the chain


# --- cancel ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("checks", [4, 5], ids=["between-customers", "between-eligibility-and-create"])
def test_a_cancel_in_the_middle_of_an_upgrade_batch_stops_every_create_after_it(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock, monkeypatch: pytest.MonkeyPatch, checks: int
) -> None:
    fleet = fleet_of(sandbox, 45, eligible=1)
    batch_id = start(app, mode="upgrade", customerIds=ids_of(fleet))["batchId"]
    [plan] = app.azurite.put_messages(app.batch_queue_name)
    call_queue_function(RunBatch.main, QueueMessage(id="plan", body=plan.text.encode(), dequeue_count=1))
    first, held, *_ = [p.text for p in app.azurite.put_messages(app.batch_queue_name)[1:]]  # another instance holds one
    answers: list[Any] = []
    check = BatchWorker._cancelled

    def cancel_after_the_fourth(worker: BatchWorker, batch: str) -> bool:
        creates, asked = (len(sandbox.partner_center.requests_to(r)) for r in ("create", "eligibility"))
        if creates == 4 and asked == checks and not answers:
            answers.append(app.cancel_batch(batch_id))  # a caller's cancel lands before the next Partner Center call
        return check(worker, batch)

    monkeypatch.setattr(BatchWorker, "_cancelled", cancel_after_the_fourth)
    call_queue_function(RunBatch.main, QueueMessage(id="first", body=first.encode(), dequeue_count=1))
    call_queue_function(
        RunBatch.main, QueueMessage(id="held", body=held.encode(), dequeue_count=1)
    )  # read before the cancel

    [cancelling] = answers
    assert cancelling.status == 202 and cancelling.json()["status"] == "Cancelling"
    assert cancelling.header("Location")
    assert cancelling.json()["counts"]["cancelled"] == 41 and cancelling.json()["counts"]["pending"] == 0
    assert len(sandbox.partner_center.requests_to("create")) == 4
    assert len(sandbox.partner_center.requests_to("eligibility")) == checks
    app.virtual_queues(virtual_clock).run()  # tracking, and every batch message once more
    assert len(sandbox.partner_center.requests_to("create")) == 4
    done = app.get_batch(batch_id)
    assert done.status == 200
    body = done.json()
    assert body["status"] == "Cancelled" and body["cancelledAt"] is not None
    assert body["counts"]["completed"] == 4 and body["counts"]["cancelled"] == 41 and body["counts"]["upgrading"] == 0
    assert sorted(o for o in outcomes(app, batch_id).values() if o != "cancelled") == ["completed"] * 4
    again = app.cancel_batch(batch_id)
    assert again.status == 200 and again.json()["status"] == "Cancelled"
    assert again.json()["cancelledAt"] == body["cancelledAt"]


def test_cancelling_a_scheduled_batch_ends_it_at_once_and_twice_answers_the_same(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    fleet = fleet_of(sandbox, 3, eligible=1)
    later = rfc3339(virtual_clock.now() + 3600)
    batch_id = start(app, mode="upgrade", customerIds=ids_of(fleet), notBefore=later)["batchId"]

    first, second = app.cancel_batch(batch_id), app.cancel_batch(batch_id)
    app.virtual_queues(virtual_clock).run()

    assert first.status == second.status == 200
    assert first.json()["counts"] == second.json()["counts"] == app.get_batch(batch_id).json()["counts"]
    assert first.json()["counts"]["cancelled"] == 3
    assert sandbox.partner_center.log == []


@pytest.fixture
def receiver(sandbox: Sandbox, configure: Callable[..., None]) -> Iterator[CallbackReceiver]:
    with CallbackReceiver(sandbox.ca) as running:
        configure(CALLBACK_ALLOWED_HOSTS=f"localhost:{running.port}")
        yield running


def test_a_cancelled_batch_calls_back_once_with_its_cancelled_resource(
    app: AppHarness, sandbox: Sandbox, receiver: CallbackReceiver, virtual_clock: ManualClock
) -> None:
    fleet = fleet_of(sandbox, 3, eligible=1)
    later = rfc3339(virtual_clock.now() + 3600)
    batch_id = start(app, mode="report", customerIds=ids_of(fleet), notBefore=later, callbackUrl=receiver.url)[
        "batchId"
    ]

    app.cancel_batch(batch_id)
    app.cancel_batch(batch_id)
    app.virtual_queues(virtual_clock).run()

    [delivery] = receiver.deliveries
    sent = json.loads(delivery.body)
    assert sent["batchId"] == batch_id and sent["status"] == "Cancelled" and sent["counts"]["cancelled"] == 3
    assert app.get_batch(batch_id).json()["callback"]["state"] == "delivered"


def test_a_large_cancel_settles_the_first_rows_inline_and_the_rest_by_message_with_consistent_counts(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customers = [str(uuid.uuid4()) for _ in range(450)]
    batch_id = start(app, mode="report", customerIds=customers)["batchId"]

    answer = app.cancel_batch(batch_id)

    counts = answer.json()["counts"]
    assert answer.status == 202 and answer.json()["status"] == "Cancelling"
    assert counts["cancelled"] >= 300 and counts["cancelled"] + counts["pending"] == 450
    assert Counter(outcomes(app, batch_id).values()) == {k: v for k, v in counts.items() if v}
    app.virtual_queues(virtual_clock).run()
    done = app.get_batch(batch_id)
    assert done.status == 200 and done.json()["status"] == "Cancelled"
    assert done.json()["counts"]["cancelled"] == 450 and done.json()["total"] == 450
    assert sandbox.partner_center.log == []


def test_cancelling_a_completed_batch_is_409_and_an_unknown_one_404(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    fleet = fleet_of(sandbox, 2, eligible=1)
    batch_id = start(app, mode="report", customerIds=ids_of(fleet))["batchId"]
    run(app, virtual_clock, batch_id)

    finished = app.cancel_batch(batch_id)

    assert finished.status == 409 and finished.json()["type"] == PROBLEM + "batch-finished"
    assert app.get_batch(batch_id).json()["status"] == "Completed"
    assert app.cancel_batch(str(uuid.uuid4())).status == 404


# --- customers Partner Center will never serve -------------------------------------------------------------------


def test_a_customer_answered_403_20002_ends_error_at_once_and_a_single_upgrade_is_422(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    gone = moved_away(seed=uuid.uuid4().int % 10**9)
    sandbox.partner_center.add_customer(gone)
    batch_id = start(app, mode="upgrade", customerIds=[gone.customer_id])["batchId"]

    body = run(app, virtual_clock, batch_id)

    assert body["counts"]["error"] == 1
    [row] = app.get_batch_customers(batch_id).json()["items"]
    assert "no commerce relationship" in row["reason"] and "20002" in row["reason"]
    assert len(sandbox.partner_center.requests_to("eligibility")) == 1  # asked once, never again
    single = app.post({"customerId": gone.customer_id, "productFamily": "Azure"})
    assert single.status == 422
    assert single.json()["type"] == PROBLEM + "partner-center-rejected"
    assert single.json()["partnerCenter"]["code"] == "20002"


def test_access_denied_2032_is_an_operator_problem_named_in_a_502(app: AppHarness, sandbox: Sandbox) -> None:
    denied = moved_away(seed=uuid.uuid4().int % 10**9)
    sandbox.partner_center.add_customer(
        type(denied)(customer_id=denied.customer_id, refusal=(403, "2032", "Access denied."))
    )

    answer = app.post({"customerId": denied.customer_id, "productFamily": "Azure"})

    assert answer.status == 502
    assert answer.json()["type"] == PROBLEM + "partner-center-access-denied"
    assert "roles" in answer.json()["detail"]


# --- bad input ---------------------------------------------------------------------------------------------------


def body_with(**changes: Any) -> dict[str, Any]:
    return {"productFamily": "Azure", "mode": "upgrade", **changes}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customerIds": [str(uuid.uuid4())], "fromBatch": str(uuid.uuid4()), "outcomes": ["eligible"]}, "customerIds"),
        ({"allCustomers": True, "fromBatch": str(uuid.uuid4()), "outcomes": ["eligible"]}, "customerIds"),
        ({"fromBatch": str(uuid.uuid4()), "outcomes": []}, "outcomes"),
        ({"fromBatch": str(uuid.uuid4())}, "outcomes"),
        ({"fromBatch": str(uuid.uuid4()), "outcomes": ["eligible", "approved"]}, "outcomes[1]"),
        ({"fromBatch": str(uuid.uuid4()), "outcomes": ["error", "error"]}, "outcomes[1]"),
        ({"fromBatch": "batch-7", "outcomes": ["eligible"]}, "fromBatch"),
        ({"customerIds": [str(uuid.uuid4())], "outcomes": ["eligible"]}, "outcomes"),
        ({"allCustomers": True, "excludeCustomerIds": [str(uuid.uuid4()) for _ in range(5001)]}, "excludeCustomerIds"),
        ({"allCustomers": True, "excludeCustomerIds": ["nope"]}, "excludeCustomerIds[0]"),
        ({"allCustomers": True, "notBefore": "2020-01-01T00:00:00Z"}, "notBefore"),
        ({"allCustomers": True, "notBefore": "2099-01-01T00:00:00Z"}, "notBefore"),
        ({"allCustomers": True, "notBefore": "next Saturday"}, "notBefore"),
        ({"allCustomers": True, "notBefore": "2030-01-01T00:00:00+02:00"}, "notBefore"),
    ],
    ids=[
        "customerIds-and-fromBatch", "allCustomers-and-fromBatch", "outcomes-empty", "outcomes-missing",
        "outcome-unknown", "outcome-repeated", "fromBatch-not-a-guid", "outcomes-without-fromBatch",
        "too-many-excluded", "excluded-not-a-guid", "notBefore-past", "notBefore-too-far", "notBefore-not-a-time",
        "notBefore-not-utc",
    ],
)  # fmt: skip
def test_bad_campaign_input_is_400_naming_the_field_and_reaches_nothing(
    app: AppHarness, sandbox: Sandbox, changes: dict[str, Any], field: str
) -> None:
    answer = app.post_batch(body_with(**changes))
    assert answer.status == 400, answer.body
    errors = answer.json()["errors"]
    assert field in [e["field"] for e in errors]
    assert not [e for e in errors if "not a known field" in e["detail"]]  # understood, and refused for its value
    assert sandbox.partner_center.log == []


@pytest.mark.parametrize("name", ["mode", "productFamily", "notBefore", "callbackUrl"])
def test_a_json_body_with_a_csv_query_parameter_is_400_naming_it(app: AppHarness, sandbox: Sandbox, name: str) -> None:
    """One field in two places (body and query) would be read differently by two parsers: refused, not ignored."""
    answer = app.post_batch(body_with(customerIds=[str(uuid.uuid4())]), params={name: "report"})
    assert answer.status == 400 and [e["field"] for e in answer.json()["errors"]] == [name]
    assert sandbox.partner_center.log == []


def test_the_idempotency_fingerprint_covers_the_campaign_fields(app: AppHarness, sandbox: Sandbox) -> None:
    key = {"Idempotency-Key": f"campaign-{uuid.uuid4()}"}
    customer = str(uuid.uuid4())
    first = app.post_batch(body_with(customerIds=[customer]), headers=key)
    other = app.post_batch(body_with(customerIds=[customer], excludeCustomerIds=[str(uuid.uuid4())]), headers=key)
    assert first.status == 202
    assert other.status == 422 and other.json()["type"] == PROBLEM + "idempotency-key-reused"
    assert app.post_batch(body_with(customerIds=[customer]), headers=key).json()["batchId"] == first.json()["batchId"]


# --- the CSV export honours outcome ------------------------------------------------------------------------------


def test_the_csv_export_honours_the_outcome_filter(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    fleet = fleet_of(sandbox)
    batch_id = start(app, mode="report", customerIds=ids_of(fleet))["batchId"]
    run(app, virtual_clock, batch_id)

    exported = app.get_batch_customers(batch_id, {"outcome": "eligible"}, accept="text/csv")

    table = list(csv.DictReader(io.StringIO(exported.body.decode())))
    assert sorted(r["customerId"] for r in table) == sorted(ids_of(fleet, *REPORT_ELIGIBLE))
    assert {r["outcome"] for r in table} == {"eligible"}
