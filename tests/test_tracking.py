"""Tracking an accepted upgrade through real queue messages on Azurite until it is final.

Real-time tests use a one-second schedule (STATUS_FIRST_CHECK_SECONDS=1, STATUS_MAX_INTERVAL_SECONDS=2) and
read the messages back from Azurite when they become visible. Virtual-clock tests freeze the one clock the app
and the sandbox share, read each scheduled message's text and delay from Azurite's wire log, advance the clock
by that delay and hand the message to UpgradeStatus.main.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable

import pytest

from sandbox.clock import ManualClock
from sandbox.partner_center import Customer, Step
from sandbox.stack import Sandbox
from shared.errors import PartnerCenterUnknownUpgrade
from shared.partner_center.budget import Budget
from shared.services import services
from support.harness import AppHarness

PROBLEM = "urn:partner-center-upgrade:problem:"
FAST = {"STATUS_FIRST_CHECK_SECONDS": "1", "STATUS_MAX_INTERVAL_SECONDS": "2"}


def customer_with(sandbox: Sandbox, *steps: Step) -> str:
    customer_id = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer_id, progression=list(steps)))
    return customer_id


def submit(app: AppHarness, customer_id: str, **extra: object) -> str:
    answer = app.post({"customerId": customer_id, "productFamily": "Azure", **extra})
    assert answer.status == 202, answer.body
    return str(answer.json()["upgradeId"])


def run_until_final(app: AppHarness, upgrade_id: str, customer_id: str, timeout: float = 60.0) -> dict[str, object]:
    """Let the host's queue trigger work (real time) until the status route answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.process_queue()
        answer = app.get(upgrade_id, customer_id)
        if answer.status == 200:
            return answer.json()  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"upgrade {upgrade_id} did not become final in {timeout} s")


# --- real time, real queue --------------------------------------------------------------------------


def test_an_upgrade_progresses_to_completed_through_real_queue_messages(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    configure(**FAST)
    customer = customer_with(sandbox, Step(0, "InProgress"), Step(2.5, "Completed"))
    upgrade_id = submit(app, customer)

    assert app.process_queue().succeeded == 0  # the first check is hidden for its delay
    final = run_until_final(app, upgrade_id, customer)

    assert final["status"] == "Completed"
    assert final["partnerCenterStatus"] == "Completed"
    assert final["error"] is None
    assert final["lineItems"] and final["lineItems"][0]["status"] == "Completed"  # type: ignore[index]
    assert final["checks"] == 2 and final["nextCheckAt"] is None
    assert [(m.visibility_timeout, m.json()["attempt"]) for m in app.scheduled()] == [(1, 0), (2, 1)]
    statuses = sandbox.partner_center.requests_to("status")
    assert len(statuses) == 2
    assert statuses[0].path == f"/v1/productUpgrades/{upgrade_id}/status"
    assert statuses[0].json == {"customerId": customer, "productFamily": "Azure"}
    assert app.queued_count() == 0


def test_a_failed_line_item_ends_the_upgrade_as_failed_with_the_reason(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    configure(**FAST)
    failed_item = {
        "sourceProduct": {"id": str(uuid.uuid4()), "name": "AzureSubscription"},
        "targetProduct": {"id": str(uuid.uuid4()), "name": "Microsoft Azure plan"},
        "status": "Failed",
        "errorDetails": {"code": "900105", "description": "The subscription is suspended"},
    }
    customer = customer_with(sandbox, Step(0, "Completed", line_items=[failed_item]))
    upgrade_id = submit(app, customer)

    final = run_until_final(app, upgrade_id, customer)

    assert final["status"] == "Failed"
    assert final["partnerCenterStatus"] == "Completed"
    assert final["error"] == {"code": "900105", "message": "The subscription is suspended", "failedLineItems": 1}
    assert final["lineItems"] == [failed_item]


def test_an_unrecognised_status_keeps_the_upgrade_in_progress(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox, Step(0, "Provisioning"))
    upgrade_id = submit(app, customer)

    virtual_clock.advance(60)
    app.deliver(app.scheduled()[-1])

    answer = app.get(upgrade_id, customer)
    assert answer.status == 202
    assert answer.json()["status"] == "InProgress" and answer.json()["partnerCenterStatus"] == "Provisioning"


def test_a_429_schedules_the_next_check_after_its_retry_after(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"))
    upgrade_id = submit(app, customer)
    sandbox.partner_center.faults.add("status", status=429, retry_after=37, times=2)

    virtual_clock.advance(60)
    app.deliver(app.scheduled()[-1])

    first, retry = app.scheduled()
    assert retry.visibility_timeout == 37
    assert retry.json()["attempt"] == first.json()["attempt"] == 0
    record = app.get(upgrade_id, customer).json()
    assert record["checks"] == 0
    assert app.queued_count() == 2  # the first (already handled here) and the rescheduled one


def test_partner_center_down_fails_the_message_until_it_is_poisoned_and_the_record_shows_why(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    configure(**FAST)
    customer = customer_with(sandbox, Step(0, "InProgress"))
    upgrade_id = submit(app, customer)
    sandbox.partner_center.down()
    deadline = time.monotonic() + 30
    while not app.queue().peek_messages(max_messages=1):  # the first check is due after 1 s
        assert time.monotonic() < deadline, "the first status check never became visible"
        time.sleep(0.1)

    runs = [app.process_queue(visibility_timeout=1) for _ in range(5)]

    assert [len(r.failed) for r in runs] == [1, 1, 1, 1, 1]
    assert runs[-1].poisoned == 1
    assert app.poison_messages() == [
        {
            "upgradeId": upgrade_id,
            "customerId": customer,
            "productFamily": "Azure",
            "correlationId": app.answers[0].header("x-correlation-id"),
            "attempt": 0,
        }
    ]
    record = app.get(upgrade_id).json()
    assert record["status"] == "InProgress"
    assert record["error"]["transient"] is True and "Partner Center" in record["error"]["message"]


def test_a_duplicate_message_after_completion_changes_nothing(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox, Step(0, "Completed"))
    upgrade_id = submit(app, customer)
    virtual_clock.advance(60)
    first = app.scheduled()[-1]
    app.deliver(first)
    completed = app.get(upgrade_id, customer).json()
    calls = len(sandbox.partner_center.requests_to("status"))

    virtual_clock.advance(600)
    app.deliver(first)
    app.enqueue({"upgradeId": upgrade_id, "customerId": customer, "productFamily": "Azure"})  # an operator's
    app.process_queue()

    assert app.get(upgrade_id, customer).json() == completed
    assert len(sandbox.partner_center.requests_to("status")) == calls


def test_a_message_older_than_the_record_is_ignored(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"))
    upgrade_id = submit(app, customer)
    virtual_clock.advance(60)
    first = app.scheduled()[-1]
    app.deliver(first)
    after_one = app.get(upgrade_id, customer).json()

    app.deliver(first, dequeue_count=2)  # the same message delivered again (at-least-once)

    assert app.get(upgrade_id, customer).json()["checks"] == after_one["checks"] == 1
    assert len(sandbox.partner_center.requests_to("status")) == 1
    assert len(app.scheduled()) == 2


def test_an_operator_can_track_any_upgrade_by_enqueueing_a_message(app: AppHarness, sandbox: Sandbox) -> None:
    customer = str(uuid.uuid4())
    upgrade_id = sandbox.partner_center.seed_upgrade(customer)

    app.enqueue({"upgradeId": upgrade_id, "customerId": customer, "productFamily": "azure"})
    assert app.process_queue().succeeded == 1

    record = app.get(upgrade_id, customer)
    assert record.status == 202 and record.json()["checks"] == 1


def test_a_message_that_breaks_the_contract_goes_straight_to_the_poison_queue(app: AppHarness) -> None:
    app.enqueue({"upgradeId": "not-a-guid", "customerId": str(uuid.uuid4())})

    run = app.process_queue()

    assert run.succeeded == 1 and not run.failed
    assert app.poison_messages()[0]["upgradeId"] == "not-a-guid"


@pytest.mark.parametrize("field", ["upgradeId", "customerId"])
def test_a_message_whose_id_ends_with_a_newline_is_poisoned_at_once(
    app: AppHarness, sandbox: Sandbox, field: str
) -> None:
    message = {"upgradeId": str(uuid.uuid4()), "customerId": str(uuid.uuid4()), "productFamily": "Azure"}
    message[field] += "\n"
    app.enqueue(message)

    run = app.process_queue()

    assert run.succeeded == 1 and not run.failed
    assert app.poison_messages() == [message]
    assert sandbox.partner_center.log == []


def test_the_status_call_percent_encodes_the_upgrade_id_in_its_path(app: AppHarness, sandbox: Sandbox) -> None:
    # Ids are validated before they get here; the client still never lets one change the path it calls.
    client = services().partner_center
    with contextlib.suppress(PartnerCenterUnknownUpgrade):
        client.get_status("../eligibility?x=\n", str(uuid.uuid4()), "Azure", Budget(10, services().clock))

    [call] = sandbox.partner_center.log
    assert call.route == "status"  # one path segment, however odd the id
    assert call.path == "/v1/productUpgrades/..%2Feligibility%3Fx%3D%0A/status"


def test_tracking_ends_timed_out_after_the_tracking_window(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None], virtual_clock: ManualClock
) -> None:
    configure(STATUS_MAX_TRACKING_HOURS="1")
    clock = virtual_clock
    customer = customer_with(sandbox, Step(0, "InProgress"))
    upgrade_id = submit(app, customer)

    while app.get(upgrade_id, customer).status == 202:
        last = app.scheduled()[-1]
        clock.advance(last.visibility_timeout)
        app.deliver(last)

    final = app.get(upgrade_id, customer).json()
    assert final["status"] == "TimedOut"
    assert final["error"]["code"] == "TrackingTimedOut"
    assert final["partnerCenterStatus"] == "InProgress"
    created = time.mktime(time.strptime(final["createdAt"][:19], "%Y-%m-%dT%H:%M:%S"))
    checked = time.mktime(time.strptime(final["lastCheckedAt"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert 3600 <= checked - created < 3600 + 900


def test_a_30_minute_upgrade_costs_at_most_6_status_calls_on_the_default_schedule(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"), Step(30 * 60, "Completed"))
    upgrade_id = submit(app, customer)
    started = virtual_clock.now()

    while app.get(upgrade_id, customer).status == 202:
        last = app.scheduled()[-1]
        virtual_clock.advance(last.visibility_timeout)
        app.deliver(last)

    calls = len(sandbox.partner_center.requests_to("status"))
    elapsed_minutes = (virtual_clock.now() - started) / 60
    assert app.get(upgrade_id, customer).json()["status"] == "Completed"
    assert calls <= 6, f"{calls} status calls"
    assert 30 <= elapsed_minutes <= 45
    assert [m.visibility_timeout for m in app.scheduled()] == [60, 120, 240, 480, 900][:calls]
    print(
        f"\n30-minute upgrade: {calls} status calls (a once-a-minute poller makes 30), "
        f"final after {elapsed_minutes:.0f} min"
    )


# --- the status route -------------------------------------------------------------------------------


def test_power_automate_follows_location_while_202_and_stops_at_the_final_200(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    configure(**FAST)
    customer = customer_with(sandbox, Step(0, "InProgress"), Step(2.0, "Completed"))
    answer = app.post({"customerId": customer, "productFamily": "Azure"})
    polls = 0

    while answer.status == 202:  # the HTTP action's asynchronous pattern
        retry_after = int(answer.header("Retry-After") or "0")
        assert 5 <= retry_after <= 300
        location = answer.header("Location")
        assert location
        time.sleep(0.3)  # Power Automate would wait Retry-After seconds; the host's trigger runs meanwhile
        app.process_queue()
        answer = app.follow(location)
        polls += 1
        assert polls < 100

    assert answer.status == 200
    assert answer.json()["status"] == "Completed"
    assert answer.header("Location") is None


def test_the_status_route_answers_202_with_location_and_retry_after_while_pending(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"))
    upgrade_id = submit(app, customer)

    virtual_clock.advance(20)
    answer = app.get(upgrade_id)

    assert answer.status == 202
    follow_link = f"https://upgrades.example.test/api/follow/upgrades/{upgrade_id}?customerId={customer}&expires="
    assert (answer.header("Location") or "").startswith(follow_link)
    assert answer.header("Retry-After") == "40"
    body = answer.json()
    assert body["upgradeId"] == upgrade_id and body["status"] == "InProgress" and body["checks"] == 0
    assert body["callback"] == {"url": None, "state": "none", "attempts": 0}
    assert sandbox.partner_center.requests_to("status") == []


def test_unknown_ids_and_foreign_customers_are_404(app: AppHarness, sandbox: Sandbox) -> None:
    customer = str(uuid.uuid4())
    upgrade_id = submit(app, customer)

    assert app.get(str(uuid.uuid4())).status == 404
    assert app.get(str(uuid.uuid4()), customer).status == 404  # Partner Center does not know it either
    assert app.get(upgrade_id, str(uuid.uuid4())).status == 404
    assert app.get(str(uuid.uuid4())).json()["type"] == PROBLEM + "not-found"


def test_a_stale_record_is_checked_live_and_tracking_is_rescheduled(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"))
    upgrade_id = submit(app, customer)

    virtual_clock.advance(121)  # more than twice the first interval without a check: the message is lost
    answer = app.get(upgrade_id, customer)

    assert answer.status == 202
    assert answer.json()["checks"] == 1
    assert len(sandbox.partner_center.requests_to("status")) == 1
    assert [(m.visibility_timeout, m.json()["attempt"]) for m in app.scheduled()] == [(60, 0), (120, 1)]


def test_an_accepted_upgrade_is_never_lost_when_storage_fails_after_partner_center_said_202(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None], app_env: dict[str, str]
) -> None:
    dead = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;" + ";".join(
        f"{kind}Endpoint=http://127.0.0.1:9/devstoreaccount1" for kind in ("Blob", "Queue", "Table")
    )
    configure(AzureWebJobsStorage=dead)
    customer = customer_with(sandbox, Step(0, "InProgress"))

    accepted = app.post({"customerId": customer, "productFamily": "Azure"})

    assert accepted.status == 202
    configure(AzureWebJobsStorage=app_env["AzureWebJobsStorage"])
    location = accepted.header("Location")
    assert location
    recovered = app.follow(location)
    assert recovered.status == 202
    assert recovered.json()["upgradeId"] == accepted.json()["upgradeId"]
    assert recovered.json()["checks"] == 1
    assert app.scheduled()[-1].json()["upgradeId"] == accepted.json()["upgradeId"]  # tracking is back


def test_with_an_idempotency_key_storage_down_is_503_before_partner_center_is_called(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    dead = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;" + ";".join(
        f"{kind}Endpoint=http://127.0.0.1:9/devstoreaccount1" for kind in ("Blob", "Queue", "Table")
    )
    configure(AzureWebJobsStorage=dead)

    answer = app.post(
        {"customerId": str(uuid.uuid4()), "productFamily": "Azure"}, headers={"Idempotency-Key": "order-77"}
    )

    assert answer.status == 503 and answer.header("Retry-After")
    assert sandbox.partner_center.log == []


@pytest.mark.parametrize("public_base", ["https://api.contoso.example/partner"])
def test_location_uses_public_base_url_when_set(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None], public_base: str
) -> None:
    configure(PUBLIC_BASE_URL=public_base)
    customer = str(uuid.uuid4())

    answer = app.post({"customerId": customer, "productFamily": "Azure"})

    upgrade_id = answer.json()["upgradeId"]
    assert (answer.header("Location") or "").startswith(f"{public_base}/api/follow/upgrades/{upgrade_id}?customerId=")
    assert answer.json()["statusUri"] == f"{public_base}/api/upgrades/{upgrade_id}?customerId={customer}"


def test_a_stale_record_that_partner_center_no_longer_knows_ends_failed_not_404(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"))
    upgrade_id = submit(app, customer)
    del sandbox.partner_center.upgrades[upgrade_id]

    virtual_clock.advance(121)
    answer = app.get(upgrade_id, customer)

    assert answer.status == 200
    assert answer.json()["status"] == "Failed"
    assert answer.json()["error"]["code"] == "900106"
