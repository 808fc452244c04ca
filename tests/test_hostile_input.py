"""Hostile input that still got through (issue 21): each test names what a caller or a forged message could do.

Through the harness with Azurite and the TLS sandbox, like the rest of the suite.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage as QueueMessageInfo

import RunBatch
import UpgradeStatus
from localrun.virtual_queues import call_queue_function
from sandbox.clock import ManualClock
from sandbox.partner_center import Customer
from sandbox.stack import Sandbox
from shared.partner_center.client import PartnerCenterClient
from support.harness import AppHarness
from support.receiver import CallbackReceiver

# str.isdigit() says yes to each; int() refuses the superscripts and reads full-width 5 and Arabic-Indic 10 as numbers
NOT_ASCII_NUMBERS = ["\u00b2", "\uff15", "\u0661\u0660", "1\u00b2", "\u0663"]


def start_batch(app: AppHarness, customer_ids: list[str] | None = None, **extra: Any) -> str:
    body: dict[str, Any] = {"productFamily": "Azure", "mode": "report", **extra}
    body |= {"customerIds": customer_ids} if customer_ids is not None else {"allCustomers": True}
    answer = app.post_batch(body)
    assert answer.status == 202, answer.body
    return str(answer.json()["batchId"])


def with_query(location: str, **changes: str) -> str:
    parts = urlsplit(location)
    return parts._replace(query=urlencode({**dict(parse_qsl(parts.query)), **changes})).geturl()


# --- numbers: ASCII digits only ---------------------------------------------------------------------------


@pytest.mark.parametrize("top", NOT_ASCII_NUMBERS)
def test_a_batch_page_size_in_another_script_is_400_naming_top(app: AppHarness, top: str) -> None:
    batch_id = start_batch(app, [str(uuid.uuid4())])

    answer = app.get_batch_customers(batch_id, {"top": top})

    assert answer.status == 400, answer.body
    assert [e["field"] for e in answer.json()["errors"]] == ["top"]


def test_a_follow_link_with_a_leading_zero_added_to_expires_is_401(app: AppHarness, sandbox: Sandbox) -> None:
    customer_id = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer_id))
    posted = app.post({"customerId": customer_id, "productFamily": "Azure"})
    assert posted.status == 202, posted.body
    location = posted.header("Location") or ""
    expires = dict(parse_qsl(urlsplit(location).query))["expires"]
    assert app.follow(location).status == 202

    padded = app.follow(with_query(location, expires="0" + expires))
    arabic_digits = "".join(map(chr, range(0x0660, 0x066A)))
    arabic = app.follow(with_query(location, expires=expires.translate(str.maketrans("0123456789", arabic_digits))))

    assert (padded.status, arabic.status) == (401, 401)


# --- CSV export -------------------------------------------------------------------------------------------


def test_csv_cells_starting_with_tab_or_carriage_return_are_neutralised(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    names = {str(uuid.uuid4()): "\t=cmd|' /C calc'!A0", str(uuid.uuid4()): "\r=1+1"}
    for customer_id, name in names.items():
        sandbox.partner_center.add_customer(
            Customer(customer_id=customer_id, company_name=name, eligible=False, reason="\tnot eligible")
        )
    batch_id = start_batch(app)  # names come from the customer list
    app.virtual_queues(virtual_clock).run()

    answer = app.get_batch_customers(batch_id, accept="text/csv")

    assert answer.status == 200
    parsed = {r["customerId"]: r for r in csv.DictReader(io.StringIO(answer.body.decode("utf-8"), newline=""))}
    assert {c: parsed[c]["companyName"] for c in names} == {c: "'" + n for c, n in names.items()}
    assert {parsed[c]["reason"] for c in names} == {"'\tnot eligible"}


# --- follow links do not reveal the callback URL ----------------------------------------------------------

FLOW_URL_QUERY = "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=flow-sas-signature"


@pytest.fixture
def receiver(sandbox: Sandbox, configure: Callable[..., None]) -> Iterator[CallbackReceiver]:
    with CallbackReceiver(sandbox.ca) as running:
        configure(CALLBACK_ALLOWED_HOSTS=f"localhost:{running.port}")
        yield running


def test_a_follow_link_answers_without_the_callback_url_the_keyed_route_keeps_it(
    app: AppHarness, sandbox: Sandbox, receiver: CallbackReceiver
) -> None:
    customer_id = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer_id))
    flow_url = receiver.url + FLOW_URL_QUERY
    posted = app.post({"customerId": customer_id, "productFamily": "Azure", "callbackUrl": flow_url})
    assert posted.status == 202, posted.body

    followed = app.follow(posted.header("Location") or "")
    keyed = app.get(posted.json()["upgradeId"], customer_id)

    assert followed.status == 202
    assert "flow-sas-signature" not in followed.body.decode()
    assert followed.json()["callback"] == {"url": None, "state": "none", "attempts": 0}
    assert keyed.json()["callback"]["url"] == flow_url


def test_a_batch_follow_link_answers_without_the_callback_url_the_keyed_route_keeps_it(
    app: AppHarness, receiver: CallbackReceiver
) -> None:
    flow_url = receiver.url + FLOW_URL_QUERY
    posted = app.post_batch(
        {"productFamily": "Azure", "mode": "report", "customerIds": [str(uuid.uuid4())], "callbackUrl": flow_url}
    )
    assert posted.status == 202, posted.body

    followed = app.follow(posted.header("Location") or "")

    assert followed.status == 202
    assert "flow-sas-signature" not in followed.body.decode()
    assert followed.json()["callback"]["url"] is None
    assert app.get_batch(posted.json()["batchId"]).json()["callback"]["url"] == flow_url


# --- content negotiation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("text/csv;q=0, application/json", "application/json"),
        ("application/json, text/csv;q=0", "application/json"),
        ("text/*;q=0.9, text/csv;q=0, */*;q=0.1", "application/json"),
        ("text/*;q=0.8, application/json;q=0.5", "text/csv"),
        ("text/*", "text/csv"),
    ],
)
def test_batch_customers_follow_the_q_values_of_accept(app: AppHarness, accept: str, expected: str) -> None:
    batch_id = start_batch(app, [str(uuid.uuid4())])

    answer = app.get_batch_customers(batch_id, accept=accept)

    assert answer.status == 200
    assert answer.content_type.split(";")[0] == expected


# --- unknown upgrades do not spend the partner's throttling budget ----------------------------------------


def test_repeated_gets_of_an_unknown_upgrade_make_one_partner_center_call(app: AppHarness, sandbox: Sandbox) -> None:
    customer_id = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer_id))
    upgrade_id = str(uuid.uuid4())

    answers = [app.get(upgrade_id, customer_id) for _ in range(3)]

    assert [a.status for a in answers] == [404, 404, 404]
    assert len([r for r in sandbox.partner_center.requests_to("status") if upgrade_id in r.path]) == 1
    assert app.get(str(uuid.uuid4()), customer_id).status == 404  # another id is asked again
    assert len(sandbox.partner_center.requests_to("status")) == 2


# --- a forged list message cannot steer the app's Partner Center calls ------------------------------------


def batch_message(kind: str, batch_id: str, **fields: Any) -> bytes:
    return json.dumps({"kind": kind, "batchId": batch_id, **fields}).encode()


@pytest.mark.parametrize(
    "forged",
    [
        {"uri": "/productUpgrades/eligibility", "headers": []},
        {"uri": "@attacker.example/customers", "headers": []},
        {"uri": "/../customers/x/subscriptions", "headers": []},
        {"uri": "/customers?size=10", "headers": [{"key": "Authorization", "value": "Bearer forged"}]},
        {"uri": "/customers?size=10", "headers": [{"key": "Host", "value": "attacker.example"}]},
        {"uri": "/customers?size=10", "headers": [{"key": "MS-ContinuationToken", "value": "a\r\nX-Evil: 1"}]},
    ],
)
def test_a_list_message_whose_next_is_not_partner_centers_is_poisoned_and_not_followed(
    app: AppHarness, sandbox: Sandbox, forged: dict[str, Any]
) -> None:
    batch_id = start_batch(app, [str(uuid.uuid4())])
    calls = len(sandbox.partner_center.log)

    call_queue_function(RunBatch.main, QueueMessage(id="forged", body=batch_message("list", batch_id, next=forged),
                                                  dequeue_count=1))  # fmt: skip

    assert len(sandbox.partner_center.log) == calls  # nothing was sent to Partner Center
    parked = app.queue(f"{app.batch_queue_name}-poison").peek_messages(max_messages=32)
    assert any(json.loads(m.content).get("next") == forged for m in parked)


# --- poison copies keep the message as it came, until an operator deletes it ------------------------------

NOT_UTF8 = b'{"upgradeId": "\xff\xfe not utf-8 \xc3(", "kind": "\xe9"}'


def raw_poison(app: AppHarness, queue_name: str) -> list[QueueMessageInfo]:
    """The poison queue's messages as stored (Base64 on the wire, not decoded by any policy)."""
    client = QueueClient.from_connection_string(app.azurite.connection_string, f"{queue_name}-poison")
    return list(client.peek_messages(max_messages=32))


@pytest.mark.parametrize("function", ["UpgradeStatus", "RunBatch"])
def test_a_message_that_is_not_utf8_is_parked_byte_for_byte_and_kept_until_deleted(
    app: AppHarness, function: str
) -> None:
    body = NOT_UTF8 + uuid.uuid4().bytes  # this test's own message
    handler, queue_name = {
        "UpgradeStatus": (UpgradeStatus.main, app.queue_name),
        "RunBatch": (RunBatch.main, app.batch_queue_name),
    }[function]

    call_queue_function(handler, QueueMessage(id=str(uuid.uuid4()), body=body, dequeue_count=1))

    [parked] = [m for m in raw_poison(app, queue_name) if base64.b64decode(m.content) == body]
    assert parked.expires_on is not None and parked.expires_on.year >= 9999  # time_to_live=-1: never expires


# --- a finished listing takes no new rows -----------------------------------------------------------------


def test_a_listing_ended_by_one_list_message_takes_no_page_from_another_still_running(
    app: AppHarness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        sandbox.partner_center.add_customer(Customer(str(uuid.uuid4())))
    batch_id = start_batch(app)
    first_page = batch_message("list", batch_id, next=None)
    list_customers = PartnerCenterClient.list_customers
    raced: list[bool] = []

    def another_delivery_ends_the_listing_meanwhile(client: PartnerCenterClient, *args: Any) -> Any:
        if not raced:  # this delivery has read the batch as still listing; a second one ends the listing now
            raced.append(True)
            sandbox.partner_center.faults.add("customers", status=403)  # refused for good: the listing ends
            call_queue_function(RunBatch.main, QueueMessage(id="second", body=first_page, dequeue_count=1))
        return list_customers(client, *args)

    monkeypatch.setattr(PartnerCenterClient, "list_customers", another_delivery_ends_the_listing_meanwhile)
    call_queue_function(RunBatch.main, QueueMessage(id="first", body=first_page, dequeue_count=1))

    body = app.get_batch(batch_id).json()
    assert body["status"] == "Completed"
    assert body["counts"]["pending"] == 0, body["counts"]
    assert body["total"] == sum(body["counts"].values()) == 0
    assert app.get_batch_customers(batch_id).json()["items"] == []
