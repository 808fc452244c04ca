"""Signed callbacks to https://localhost receivers (certificates from the sandbox CA) when upgrades end."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterator

import pytest

from sandbox.clock import ManualClock
from sandbox.partner_center import Customer, Step
from sandbox.stack import SamSeed, Sandbox
from support.harness import AppHarness
from support.receiver import CallbackReceiver


@pytest.fixture
def receiver(sandbox: Sandbox, configure: Callable[..., None]) -> Iterator[CallbackReceiver]:
    configure(CALLBACK_ALLOWED_HOSTS="localhost")
    with CallbackReceiver(sandbox.ca) as server:
        yield server


def submit(app: AppHarness, sandbox: Sandbox, callback_url: str, *steps: Step) -> tuple[str, str]:
    customer = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer, progression=list(steps)))
    answer = app.post({"customerId": customer, "productFamily": "Azure", "callbackUrl": callback_url})
    assert answer.status == 202, answer.body
    return answer.json()["upgradeId"], customer


def run_to_end(app: AppHarness, clock: ManualClock, upgrade_id: str, customer: str, limit: int = 20) -> None:
    """Deliver each scheduled message after its delay (virtual time) until nothing new is scheduled."""
    handled = 0
    while handled < len(app.scheduled()) and handled < limit:
        message = app.scheduled()[handled]
        clock.advance(message.visibility_timeout)
        app.deliver(message)
        handled += 1


def test_a_final_state_is_posted_once_with_a_valid_signature(
    app: AppHarness, sandbox: Sandbox, sam: SamSeed, receiver: CallbackReceiver, virtual_clock: ManualClock
) -> None:
    upgrade_id, customer = submit(app, sandbox, receiver.url, Step(0, "InProgress"), Step(100, "Completed"))

    run_to_end(app, virtual_clock, upgrade_id, customer)

    [delivery] = receiver.deliveries
    assert delivery.path == "/hooks/upgrades"
    assert delivery.headers["Content-Type"] == "application/json"
    timestamp = delivery.headers["X-Upgrade-Timestamp"]
    expected = hmac.new(sam.callback_signing_key.encode(), f"{timestamp}.".encode() + delivery.body, hashlib.sha256)
    assert hmac.compare_digest(delivery.headers["X-Upgrade-Signature"], "sha256=" + expected.hexdigest())
    assert abs(int(timestamp) - virtual_clock.now()) <= 1
    sent = json.loads(delivery.body)
    assert (sent["upgradeId"], sent["status"], sent["customerId"]) == (upgrade_id, "Completed", customer)
    record = app.get(upgrade_id, customer).json()
    assert record["callback"] == {"url": receiver.url, "state": "delivered", "attempts": 1}


def test_a_failing_receiver_is_retried_then_marked_failed_without_blocking_tracking(
    app: AppHarness, sandbox: Sandbox, receiver: CallbackReceiver, virtual_clock: ManualClock
) -> None:
    receiver.status = 500
    upgrade_id, customer = submit(app, sandbox, receiver.url, Step(0, "Completed"))

    virtual_clock.advance(60)
    app.deliver(app.scheduled()[0])
    assert app.get(upgrade_id, customer).json()["status"] == "Completed"  # recorded before any delivery result
    run_to_end(app, virtual_clock, upgrade_id, customer)

    assert len(receiver.deliveries) == 5
    record = app.get(upgrade_id, customer).json()
    assert record["status"] == "Completed"
    assert record["callback"] == {"url": receiver.url, "state": "failed", "attempts": 5}
    retry_delays = [m.visibility_timeout for m in app.scheduled()[1:]]
    assert retry_delays == [60, 120, 240, 480]


def test_a_receiver_that_recovers_gets_the_callback_on_a_retry(
    app: AppHarness, sandbox: Sandbox, receiver: CallbackReceiver, virtual_clock: ManualClock
) -> None:
    receiver.status = 503
    upgrade_id, customer = submit(app, sandbox, receiver.url, Step(0, "Failed"))
    virtual_clock.advance(60)
    app.deliver(app.scheduled()[0])
    receiver.status = 200

    run_to_end(app, virtual_clock, upgrade_id, customer)

    assert len(receiver.deliveries) == 2
    assert app.get(upgrade_id, customer).json()["callback"]["state"] == "delivered"


def test_a_callback_is_not_sent_for_an_upgrade_without_a_callback_url(
    app: AppHarness, sandbox: Sandbox, receiver: CallbackReceiver, virtual_clock: ManualClock
) -> None:
    customer = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer, progression=[Step(0, "Completed")]))
    upgrade_id = app.post({"customerId": customer, "productFamily": "Azure"}).json()["upgradeId"]

    run_to_end(app, virtual_clock, upgrade_id, customer)

    assert receiver.deliveries == []
    assert app.get(upgrade_id, customer).json()["callback"] == {"url": None, "state": "none", "attempts": 0}


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:8443/hook", "https://attacker.example/hook", "http://localhost/hook"]
)
def test_disallowed_callback_targets_are_refused_at_submission(
    app: AppHarness, sandbox: Sandbox, receiver: CallbackReceiver, url: str
) -> None:
    answer = app.post({"customerId": str(uuid.uuid4()), "productFamily": "Azure", "callbackUrl": url})

    assert answer.status == 400
    assert [e["field"] for e in answer.json()["errors"]] == ["callbackUrl"]
    assert sandbox.partner_center.log == []


def test_a_callback_url_sent_for_an_upgrade_that_already_exists_is_honoured(
    app: AppHarness, sandbox: Sandbox, receiver: CallbackReceiver, virtual_clock: ManualClock
) -> None:
    customer = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer, progression=[Step(0, "InProgress"), Step(100, "Completed")]))
    first = app.post({"customerId": customer, "productFamily": "Azure"})  # e.g. a flow without a callback

    again = app.post({"customerId": customer, "productFamily": "Azure", "callbackUrl": receiver.url})
    run_to_end(app, virtual_clock, first.json()["upgradeId"], customer)

    assert again.json()["existing"] is True and again.json()["upgradeId"] == first.json()["upgradeId"]
    assert [json.loads(d.body)["status"] for d in receiver.deliveries] == ["Completed"]


def test_a_callback_url_for_an_existing_upgrade_that_is_already_final_is_called_at_once(
    app: AppHarness, sandbox: Sandbox, receiver: CallbackReceiver
) -> None:
    customer = str(uuid.uuid4())
    upgrade_id = sandbox.partner_center.seed_upgrade(customer)
    sandbox.partner_center.add_customer(
        Customer(customer, existing_upgrade_id=upgrade_id, progression=[Step(0, "Completed")])
    )
    sandbox.partner_center.upgrades[upgrade_id].progression = [Step(0, "Completed")]
    app.enqueue({"upgradeId": upgrade_id, "customerId": customer, "productFamily": "Azure"})
    app.process_queue()  # tracked (by an operator's message) until Completed
    assert app.get(upgrade_id, customer).json()["status"] == "Completed"

    answer = app.post({"customerId": customer, "productFamily": "Azure", "callbackUrl": receiver.url})
    app.process_queue()

    assert answer.json()["existing"] is True and answer.json()["status"] == "Completed"
    assert [json.loads(d.body)["upgradeId"] for d in receiver.deliveries] == [upgrade_id]
    assert app.get(upgrade_id, customer).json()["callback"]["state"] == "delivered"
