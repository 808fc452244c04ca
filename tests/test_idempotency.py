"""Idempotency-Key: one Partner Center create per key and body, replayed for 24 hours, on real Table storage."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from sandbox.clock import ManualClock
from sandbox.partner_center import Customer
from sandbox.stack import Sandbox
from support.harness import AppHarness

PROBLEM = "urn:partner-center-upgrade:problem:"


def body(customer_id: str) -> dict[str, str]:
    return {"customerId": customer_id, "productFamily": "Azure"}


def test_the_same_key_and_body_twice_is_one_create_and_identical_answers(app: AppHarness, sandbox: Sandbox) -> None:
    customer = str(uuid.uuid4())
    headers = {"Idempotency-Key": "crm-order-4711", "x-correlation-id": str(uuid.uuid4())}

    first = app.post(body(customer), headers=headers)
    second = app.post(body(customer), headers=headers)

    assert first.status == second.status == 202
    assert first.body == second.body
    # Location is a follow link signed afresh for each answer (tests/test_follow_links.py checks the signatures).
    upgrade_id = first.json()["upgradeId"]
    for answer in (first, second):
        assert (answer.header("Location") or "").startswith(
            f"https://upgrades.example.test/api/follow/upgrades/{upgrade_id}?"
        )
    assert first.header("Retry-After") == second.header("Retry-After")
    assert len(sandbox.partner_center.requests_to("create")) == 1
    assert sandbox.partner_center.creates == 1


def test_the_request_id_sent_to_partner_center_is_derived_from_the_key(app: AppHarness, sandbox: Sandbox) -> None:
    customer = str(uuid.uuid4())
    app.post(body(customer), headers={"Idempotency-Key": "k-1"})
    first_id = sandbox.partner_center.requests_to("create")[0].headers["MS-RequestId"]

    # A fresh process (no stored response) with the same key and body sends the same MS-RequestId,
    # so Partner Center de-duplicates even if our record of the key were lost.
    sandbox.partner_center.faults.add("create", status=503)
    app.post(body(str(uuid.uuid4())), headers={"Idempotency-Key": "k-2"})

    ids = [r.headers["MS-RequestId"] for r in sandbox.partner_center.requests_to("create")]
    assert ids[0] == first_id and ids[1] == ids[2] != first_id


def test_the_same_key_with_another_body_is_422(app: AppHarness, sandbox: Sandbox) -> None:
    app.post(body(str(uuid.uuid4())), headers={"Idempotency-Key": "shared-key"})

    answer = app.post(body(str(uuid.uuid4())), headers={"Idempotency-Key": "shared-key"})

    assert answer.status == 422
    assert answer.json()["type"] == PROBLEM + "idempotency-key-reused"
    assert len(sandbox.partner_center.requests_to("create")) == 1


def test_concurrent_requests_with_one_key_create_once(app: AppHarness, sandbox: Sandbox) -> None:
    customer = str(uuid.uuid4())
    sandbox.partner_center.latency = 0.3  # keep the first request in flight while the others arrive

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: app.post(body(customer), headers={"Idempotency-Key": "burst"}), range(8)))

    assert sandbox.partner_center.creates == 1
    assert len(sandbox.partner_center.requests_to("create")) == 1
    statuses = sorted(a.status for a in answers)
    assert set(statuses) <= {202, 409}
    in_flight = [a for a in answers if a.status == 409]
    assert all(a.json()["type"] == PROBLEM + "idempotency-key-in-flight" and a.header("Retry-After") for a in in_flight)
    accepted = {a.json()["upgradeId"] for a in answers if a.status == 202}
    assert len(accepted) == 1


def test_concurrent_first_submissions_for_one_customer_with_different_keys_all_get_the_one_upgrade(
    app: AppHarness, sandbox: Sandbox
) -> None:
    customer = str(uuid.uuid4())
    # Slow answers keep every eligibility check in flight together, so all eight race to create.
    sandbox.partner_center.add_customer(Customer(customer, latency=0.2))

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda n: app.post(body(customer), headers={"Idempotency-Key": f"flow-{n}"}), range(8)))

    assert [a.status for a in answers] == [202] * 8, [a.body for a in answers if a.status != 202]
    assert len({a.json()["upgradeId"] for a in answers}) == 1
    assert sandbox.partner_center.creates == 1
    creates = sandbox.partner_center.requests_to("create")
    assert len(creates) > 1, "the submissions did not race; the test proves nothing"
    assert sorted(a.json()["existing"] for a in answers) == [False] + [True] * 7
    upgrade_id = answers[0].json()["upgradeId"]
    assert app.get(upgrade_id, customer).json()["status"] == "InProgress"  # tracked


def test_a_failed_request_releases_its_key_so_the_caller_can_retry(app: AppHarness, sandbox: Sandbox) -> None:
    customer = str(uuid.uuid4())
    sandbox.partner_center.faults.add("create", status=500, times=4)

    failed = app.post(body(customer), headers={"Idempotency-Key": "retry-me"})
    retried = app.post(body(customer), headers={"Idempotency-Key": "retry-me"})

    assert failed.status == 502 and retried.status == 202
    ids = {r.headers["MS-RequestId"] for r in sandbox.partner_center.requests_to("create")}
    assert len(ids) == 1  # the retry reuses the key's MS-RequestId


def test_a_key_is_remembered_for_24_hours_only(app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock) -> None:
    customer = str(uuid.uuid4())
    first = app.post(body(customer), headers={"Idempotency-Key": "daily"})

    virtual_clock.advance(23 * 3600)
    assert app.post(body(str(uuid.uuid4())), headers={"Idempotency-Key": "daily"}).status == 422

    virtual_clock.advance(2 * 3600)
    later = app.post(body(str(uuid.uuid4())), headers={"Idempotency-Key": "daily"})
    assert later.status == 202
    assert later.json()["upgradeId"] != first.json()["upgradeId"]
