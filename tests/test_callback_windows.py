"""A callback reaches its receiver at least once whatever instance dies, and wherever (issue 21, item 2).

Each test stops an instance in-process at one step (an exception no handler catches, as SIGKILL would leave
it) and then lets the messages the app queued run on a surviving instance (virtual clock). The killed message
runs on its last dequeue: the host moves a message dequeued more than maxDequeueCount times to the poison queue
without running it, so only what the app queued itself can finish the work. Receivers de-duplicate by
upgradeId + status (docs/webhooks.md): a second delivery is allowed, none at all is the failure.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.clock import ManualClock
from sandbox.partner_center import Customer, Step
from sandbox.stack import Sandbox
from shared.services import services
from shared.upgrades.model import UpgradeRecord
from support.harness import MAX_DEQUEUE_COUNT, AppHarness
from support.receiver import CallbackReceiver

STALE = 121  # seconds without a check after which a GET checks live (twice the 60 s first interval, and more)


class Killed(BaseException):
    """The instance died here: nothing after this point ran, and the host never completed the message."""


@pytest.fixture
def receiver(sandbox: Sandbox, configure: Callable[..., None]) -> Iterator[CallbackReceiver]:
    with CallbackReceiver(sandbox.ca) as server:
        configure(CALLBACK_ALLOWED_HOSTS=f"localhost:{server.port}")
        yield server


def completed_upgrade(app: AppHarness, sandbox: Sandbox, callback_url: str) -> tuple[str, str]:
    customer = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer, progression=[Step(0, "Completed")]))
    answer = app.post({"customerId": customer, "productFamily": "Azure", "callbackUrl": callback_url})
    assert answer.status == 202, answer.body
    return answer.json()["upgradeId"], customer


def kill_once_at_the_send(monkeypatch: pytest.MonkeyPatch, when: str, death: type[BaseException] = Killed) -> None:
    """The next callback POST kills its instance: `before` it leaves, or `after` the receiver answered. `death`:
    what is raised there (`Killed` escapes every handler; an `Exception` is what the host sees fail)."""
    sender = services().callbacks
    real = sender.deliver

    def dying(url: str, resource: dict[str, Any]) -> Any:
        monkeypatch.setattr(sender, "deliver", real)  # one kill; the survivors send normally
        if when == "after":
            real(url, resource)
        raise death

    monkeypatch.setattr(sender, "deliver", dying)


def kill_at_the_record_write(app: AppHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The instance dies as it writes the record of an upgrade Partner Center just accepted: the first check's
    message, written side by side with the record, is all that is left of it."""
    store = services().store
    real = store.insert

    def dying(record: UpgradeRecord) -> bool:
        monkeypatch.setattr(store, "insert", real)
        deadline = time.monotonic() + 30
        while not app.scheduled():  # Azurite's wire log is written asynchronously
            assert time.monotonic() < deadline, "the first check's message was never written"
            time.sleep(0.05)
        raise Killed

    monkeypatch.setattr(store, "insert", dying)


def run_survivors(app: AppHarness, clock: ManualClock, start: int, limit: int = 10) -> None:
    """Run every message queued from index `start` on, each after its delay, as a surviving instance would."""
    handled = start
    while handled < len(app.scheduled()) and handled - start < limit:
        message = app.scheduled()[handled]
        clock.advance(message.visibility_timeout)
        app.deliver(message)
        handled += 1


def delivered_statuses(receiver: CallbackReceiver) -> set[tuple[str, str]]:
    return {(json.loads(d.body)["upgradeId"], json.loads(d.body)["status"]) for d in receiver.deliveries}


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_kill_at_the_send_after_the_queue_path_stored_the_final_state_still_calls_back(
    app: AppHarness,
    sandbox: Sandbox,
    receiver: CallbackReceiver,
    virtual_clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    upgrade_id, customer = completed_upgrade(app, sandbox, receiver.url)
    kill_once_at_the_send(monkeypatch, when)
    first_check = app.scheduled()[0]
    virtual_clock.advance(first_check.visibility_timeout)

    with pytest.raises(Killed):
        app.deliver(first_check, dequeue_count=MAX_DEQUEUE_COUNT)
    assert app.get(upgrade_id, customer).json()["callback"]["state"] == "pending"  # final, not called back yet

    run_survivors(app, virtual_clock, start=1)

    assert delivered_statuses(receiver) == {(upgrade_id, "Completed")}
    assert app.get(upgrade_id, customer).json()["callback"]["state"] == "delivered"


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_kill_at_the_send_after_a_get_stored_the_final_state_still_calls_back(
    app: AppHarness,
    sandbox: Sandbox,
    receiver: CallbackReceiver,
    virtual_clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    upgrade_id, customer = completed_upgrade(app, sandbox, receiver.url)
    lost = len(app.scheduled())  # the first check's message never runs: that is why the record goes stale
    virtual_clock.advance(STALE)
    assert app.get(upgrade_id, customer).json()["status"] == "Completed"  # the GET checked live: final
    kill_once_at_the_send(monkeypatch, when)

    with pytest.raises(Killed):
        app.deliver(app.scheduled()[lost], dequeue_count=MAX_DEQUEUE_COUNT)  # the delivery the GET queued

    run_survivors(app, virtual_clock, start=lost + 1)

    assert delivered_statuses(receiver) == {(upgrade_id, "Completed")}
    assert app.get(upgrade_id, customer).json()["callback"]["state"] == "delivered"


def test_a_status_check_that_loses_the_race_to_a_get_making_the_upgrade_final_still_calls_back(
    app: AppHarness,
    sandbox: Sandbox,
    receiver: CallbackReceiver,
    virtual_clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The GET queues its delivery message before it writes the final state (so a kill between the two loses
    nothing). On a busy fleet another instance takes that message at once, reads the record before the GET's
    write lands, checks Partner Center itself and then loses the ETag race to the GET: its own write is
    dropped, and the message it was handed is complete."""
    upgrade_id, customer = completed_upgrade(app, sandbox, receiver.url)
    lost = len(app.scheduled())
    virtual_clock.advance(STALE)
    store = services().tracker.store
    real_save = store.save
    held: list[UpgradeRecord] = []

    def interleaved(record: UpgradeRecord) -> None:
        if not held and record.is_final:  # the GET's final write: another instance runs its message first
            held.append(record)
            app.deliver(app.scheduled()[-1])
            return
        if held and record.is_final and record is not held[0]:  # that instance's write: the GET's lands first
            monkeypatch.setattr(store, "save", real_save)
            real_save(held[0])
        real_save(record)

    monkeypatch.setattr(store, "save", interleaved)

    assert app.get(upgrade_id, customer).json()["status"] == "Completed"
    assert store.save == real_save  # both writes happened, in that order
    run_survivors(app, virtual_clock, start=lost + 1)

    assert delivered_statuses(receiver) == {(upgrade_id, "Completed")}
    assert app.get(upgrade_id, customer).json()["callback"]["state"] == "delivered"


@pytest.mark.parametrize("recovered_by", ["queue", "get"])
def test_an_upgrade_whose_record_write_died_with_its_instance_still_calls_back(
    app: AppHarness,
    sandbox: Sandbox,
    receiver: CallbackReceiver,
    virtual_clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    recovered_by: str,
) -> None:
    """What failed `test_three_instances_one_killed_lose_and_double_nothing` once: the killed instance had sent
    the first check's message (and completed the Idempotency-Key, so the caller's retry got the 202 replayed)
    but not the record. The queue path, or a GET with the customer, recovers the record from Partner Center;
    the callback URL must come back with it."""
    customer = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer, progression=[Step(0, "Completed")]))
    kill_at_the_record_write(app, monkeypatch)

    with pytest.raises(Killed):
        app.post({"customerId": customer, "productFamily": "Azure", "callbackUrl": receiver.url})
    upgrade_id = str(app.scheduled()[0].json()["upgradeId"])
    assert app.get(upgrade_id).status == 404  # no record

    if recovered_by == "get":
        assert app.get(upgrade_id, customer).json()["status"] == "Completed"  # recovered live, final
    run_survivors(app, virtual_clock, start=0)

    assert delivered_statuses(receiver) == {(upgrade_id, "Completed")}
    assert app.get(upgrade_id, customer).json()["callback"] == {
        "url": receiver.url,
        "state": "delivered",
        "attempts": 1,
    }


def test_an_upgrade_whose_instance_died_after_storing_its_replay_answer_still_calls_back(
    app: AppHarness,
    sandbox: Sandbox,
    receiver: CallbackReceiver,
    virtual_clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The other window of the same write: the Idempotency-Key's answer is stored side by side with the record
    and the first check's message, so an instance can die with the answer stored and neither of the others
    written. The caller's retry gets the 202 replayed by another instance, then follows Location: the upgrade
    must be tracked with its callback URL, not recovered without it."""
    customer = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer, progression=[Step(0, "Completed")]))
    body = {"customerId": customer, "productFamily": "Azure", "callbackUrl": receiver.url}
    key = {"Idempotency-Key": f"dies-{uuid.uuid4()}"}
    tracker, idempotency = services().tracker, services().idempotency

    def dies(*args: object, **kwargs: object) -> None:
        raise Killed

    with monkeypatch.context() as dying:  # the instance dies before its record and message, and never cleans up
        dying.setattr(tracker, "start", dies)
        dying.setattr(idempotency, "release", dies)
        with pytest.raises(Killed):
            app.post(body, headers=key)
    assert app.scheduled() == []  # no message, no record: only the stored answer (being written beside)

    deadline = time.monotonic() + 30
    while (replayed := app.post(body, headers=key)).status == 409:  # in flight until the answer lands
        assert time.monotonic() < deadline, "the stored answer never landed"
        time.sleep(0.05)
    assert replayed.status == 202, replayed.body
    upgrade_id = replayed.json()["upgradeId"]
    virtual_clock.advance(STALE)
    assert app.get(upgrade_id, customer).status in (200, 202)  # the caller follows Location
    run_survivors(app, virtual_clock, start=0)

    assert delivered_statuses(receiver) == {(upgrade_id, "Completed")}
    assert app.get(upgrade_id, customer).json()["callback"]["url"] == receiver.url
