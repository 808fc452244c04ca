"""Signed callbacks to https://localhost receivers (certificates from the sandbox CA) when upgrades end."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.clock import ManualClock
from sandbox.partner_center import Customer, Step
from sandbox.stack import SamSeed, Sandbox
from shared.services import services
from shared.tracking.callback_policy import Delivery
from shared.tracking.callback_transport import callback_session
from shared.tracking.callbacks import CallbackSender
from support.harness import AppHarness
from support.receiver import CallbackReceiver


@pytest.fixture
def receiver(sandbox: Sandbox, configure: Callable[..., None]) -> Iterator[CallbackReceiver]:
    with CallbackReceiver(sandbox.ca) as server:
        configure(CALLBACK_ALLOWED_HOSTS=f"localhost:{server.port}")  # an exact entry: loopback allowed
        yield server


def submit(app: AppHarness, sandbox: Sandbox, callback_url: str, *steps: Step) -> tuple[str, str]:
    customer = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer, progression=list(steps)))
    answer = app.post({"customerId": customer, "productFamily": "Azure", "callbackUrl": callback_url})
    assert answer.status == 202, answer.body
    return answer.json()["upgradeId"], customer


def run_to_end(
    app: AppHarness,
    clock: ManualClock,
    upgrade_id: str,
    customer: str,
    limit: int = 20,
    until: Callable[[], bool] = lambda: False,
) -> None:
    """Deliver each scheduled message after its delay (virtual time) until nothing new is scheduled (or `until`)."""
    handled = 0
    while handled < len(app.scheduled()) and handled < limit and not until():
        message = app.scheduled()[handled]
        clock.advance(message.visibility_timeout)
        app.deliver(message)
        handled += 1


def test_a_final_state_is_posted_once_with_a_valid_signature(
    app: AppHarness, sandbox: Sandbox, sam: SamSeed, receiver: CallbackReceiver, virtual_clock: ManualClock
) -> None:
    upgrade_id, customer = submit(app, sandbox, receiver.url, Step(0, "InProgress"), Step(100, "Completed"))

    run_to_end(app, virtual_clock, upgrade_id, customer, until=lambda: bool(receiver.deliveries))
    sent_at = virtual_clock.now()
    run_to_end(app, virtual_clock, upgrade_id, customer)  # the next attempt's message finds it delivered

    [delivery] = receiver.deliveries
    assert delivery.path == "/hooks/upgrades"
    assert delivery.headers["Content-Type"] == "application/json"
    timestamp = delivery.headers["X-Upgrade-Timestamp"]
    expected = hmac.new(sam.callback_signing_key.encode(), f"{timestamp}.".encode() + delivery.body, hashlib.sha256)
    assert hmac.compare_digest(delivery.headers["X-Upgrade-Signature"], "sha256=" + expected.hexdigest())
    assert abs(int(timestamp) - sent_at) <= 1
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
    # Each attempt's follow-up is queued before it: the last one finds the callback failed and does nothing.
    assert retry_delays == [60, 120, 240, 480, 900]


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


# --- where a callback really connects -------------------------------------------------------------------


class Names:
    """A resolver with the shape of socket.getaddrinfo over a fixed table (names under .test resolve nowhere
    else), given to the CallbackSender as its collaborator; records every name looked up."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.looked_up: list[str] = []

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        self.looked_up.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in self.table[host]
        ]


def resolve_with(table: dict[str, list[str]]) -> Names:
    """Install a CallbackSender that resolves through `table` (before the tracker is built)."""
    names = Names(table)
    app = services()
    app.callbacks = CallbackSender(app.settings, app.secrets, callback_session(), app.clock, resolve=names)
    return names


RESOURCE = {"upgradeId": str(uuid.uuid4()), "status": "Completed"}


@pytest.fixture
def posing_receiver(sandbox: Sandbox) -> Iterator[CallbackReceiver]:
    """A receiver on 127.0.0.1 whose certificate names cb.example.test and hooks.example.test, so that only the
    app's address check can stop a callback to those names from arriving."""
    with CallbackReceiver(sandbox.ca, names=("cb.example.test", "hooks.example.test")) as server:
        yield server


def test_a_backslash_url_is_refused_at_send_time(
    app: AppHarness, configure: Callable[..., None], receiver: CallbackReceiver
) -> None:
    # Stored before submission refused it (or the allow-list changed): send time checks on its own.
    configure(CALLBACK_ALLOWED_HOSTS=f"*.example.com,*.example.com:{receiver.port}")
    sender = services().callbacks

    for url in ("https://127.0.0.1\\.example.com/hooks", f"https://127.0.0.1:{receiver.port}\\.example.com/hooks"):
        assert sender.deliver(url, RESOURCE) is Delivery.REFUSED

    assert receiver.deliveries == []


def test_a_wildcard_host_that_resolves_to_loopback_is_refused_at_send_time(
    app: AppHarness,
    sandbox: Sandbox,
    configure: Callable[..., None],
    posing_receiver: CallbackReceiver,
    virtual_clock: ManualClock,
) -> None:
    configure(CALLBACK_ALLOWED_HOSTS=f"*.example.test:{posing_receiver.port}")
    names = resolve_with({"cb.example.test": ["127.0.0.1"]})
    url = f"https://cb.example.test:{posing_receiver.port}/hooks/upgrades"
    upgrade_id, customer = submit(app, sandbox, url, Step(0, "Completed"))

    run_to_end(app, virtual_clock, upgrade_id, customer)

    assert names.looked_up == ["cb.example.test"]
    assert posing_receiver.deliveries == []
    assert app.get(upgrade_id, customer).json()["callback"] == {"url": url, "state": "failed", "attempts": 1}


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",  # noqa: S104
     "240.0.0.1", "::1", "::ffff:127.0.0.1", "fd00::1", "fe80::1", "::"],
)  # fmt: skip
def test_a_wildcard_host_resolving_to_any_non_public_address_is_refused(
    app: AppHarness, configure: Callable[..., None], address: str
) -> None:
    configure(CALLBACK_ALLOWED_HOSTS="*.example.test")
    names = resolve_with({"cb.example.test": ["93.184.215.14", address]})  # one bad address is enough

    assert services().callbacks.deliver("https://cb.example.test/x", RESOURCE) is Delivery.REFUSED
    assert names.looked_up == ["cb.example.test"]


def test_an_exact_entry_connects_to_the_address_it_checked_with_the_name_for_tls_and_host(
    app: AppHarness,
    sandbox: Sandbox,
    configure: Callable[..., None],
    posing_receiver: CallbackReceiver,
    virtual_clock: ManualClock,
) -> None:
    configure(CALLBACK_ALLOWED_HOSTS=f"hooks.example.test:{posing_receiver.port}")
    names = resolve_with({"hooks.example.test": ["127.0.0.1"]})
    url = f"https://hooks.example.test:{posing_receiver.port}/hooks/upgrades"
    upgrade_id, customer = submit(app, sandbox, url, Step(0, "Completed"))

    run_to_end(app, virtual_clock, upgrade_id, customer)

    # hooks.example.test resolves nowhere but in the sender's resolver: the request went to the address checked.
    [delivery] = posing_receiver.deliveries
    assert delivery.headers["Host"] == f"hooks.example.test:{posing_receiver.port}"
    assert names.looked_up == ["hooks.example.test"]
    assert app.get(upgrade_id, customer).json()["callback"]["state"] == "delivered"


def test_when_an_address_does_not_connect_the_next_checked_one_is_tried(
    app: AppHarness, receiver: CallbackReceiver
) -> None:
    resolve_with({"localhost": ["127.0.0.2", "127.0.0.1"]})  # nothing listens on 127.0.0.2

    assert services().callbacks.deliver(receiver.url, RESOURCE) is Delivery.DELIVERED
    assert len(receiver.deliveries) == 1


def test_a_port_no_longer_on_the_allow_list_is_refused_at_send_time(
    app: AppHarness,
    sandbox: Sandbox,
    configure: Callable[..., None],
    receiver: CallbackReceiver,
    virtual_clock: ManualClock,
) -> None:
    upgrade_id, customer = submit(app, sandbox, receiver.url, Step(0, "Completed"))
    configure(CALLBACK_ALLOWED_HOSTS="localhost")  # port 443 only now

    run_to_end(app, virtual_clock, upgrade_id, customer)

    assert receiver.deliveries == []
    assert app.get(upgrade_id, customer).json()["callback"]["state"] == "failed"
