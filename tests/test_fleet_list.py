"""The fleet's read routes against the sandbox and Azurite: `GET /api/customers/{customerId}/eligibility`
(CheckEligibility) and `GET /api/upgrades` (ListUpgrades), called through their functions' `main`.

Assertions are on what the caller got, what Partner Center received, and what is in the table.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from localrun.azurite import Azurite
from sandbox.clock import ManualClock
from sandbox.fleet import Kind
from sandbox.partner_center import Customer, Step
from sandbox.stack import Sandbox
from shared.clock import iso
from support.harness import Answer, AppHarness

PROBLEM = "urn:partner-center-upgrade:problem:"
FAILED_ITEM = {
    "sourceProduct": {"id": "7c1b0e3a-1f2d-4e5a-9b8c-6d5e4f3a2b1c", "name": "AzureSubscription"},
    "status": "Failed",
    "errorDetails": {"code": "SubscriptionMigrationFailed", "description": "could not be moved"},
}


@pytest.fixture
def table(app_env: dict[str, str], azurite: Azurite) -> Iterator[TableClient]:
    with TableClient.from_connection_string(azurite.connection_string, app_env["UPGRADES_TABLE"]) as client:
        yield client


def entities(table: TableClient) -> list[dict[str, Any]]:
    try:
        return [dict(e) for e in table.list_entities()]
    except ResourceNotFoundError:
        return []


def customer_with(sandbox: Sandbox, *steps: Step) -> str:
    customer_id = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer_id, progression=list(steps or [Step(0, "InProgress")])))
    return customer_id


def submit(app: AppHarness, customer_id: str) -> str:
    answer = app.post({"customerId": customer_id, "productFamily": "Azure"})
    assert answer.status == 202, answer.body
    return str(answer.json()["upgradeId"])


def submit_spaced(app: AppHarness, clock: ManualClock, customers: list[str]) -> list[str]:
    """One upgrade per customer, a second apart (so newest first is a strict order)."""
    upgrade_ids = []
    for customer in customers:
        clock.advance(1)
        upgrade_ids.append(submit(app, customer))
    return upgrade_ids


def track_once(app: AppHarness, clock: ManualClock, upgrade_ids: list[str]) -> None:
    """The first status check of each upgrade, through the UpgradeStatus function."""
    clock.advance(60)
    for put in app.scheduled():
        if put.json()["upgradeId"] in upgrade_ids:
            app.deliver(put)


def ids(answer: Answer) -> list[str]:
    assert answer.status == 200, answer.body
    return [item["upgradeId"] for item in answer.json()["items"]]


def field_errors(answer: Answer) -> list[str]:
    assert answer.status == 400, answer.body
    assert answer.json()["type"] == f"{PROBLEM}validation-failed"
    return [error["field"] for error in answer.json()["errors"]]


# --- GET /api/customers/{customerId}/eligibility ------------------------------------------------------------


def test_eligibility_of_an_eligible_customer(app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock) -> None:
    customer = customer_with(sandbox)

    answer = app.eligibility(customer.upper())

    assert answer.status == 200
    assert answer.header("Cache-Control") == "no-store"
    assert answer.json() == {
        "customerId": customer,
        "productFamily": "Azure",
        "isEligible": True,
        "upgradeId": None,
        "reason": None,
        "checkedAt": answer.json()["checkedAt"],
    }
    assert answer.json()["checkedAt"] == iso(virtual_clock.now())
    [call] = sandbox.partner_center.log
    assert (call.route, call.json) == ("eligibility", {"customerId": customer, "productFamily": "Azure"})


def test_eligibility_of_a_customer_who_is_not_eligible_gives_partner_centers_reason(
    app: AppHarness, sandbox: Sandbox
) -> None:
    [customer] = sandbox.add_fleet(1, seed=3, mix={Kind.NOT_ELIGIBLE: 1}).customers

    body = app.eligibility(customer.customer_id).json()

    assert (body["isEligible"], body["upgradeId"]) == (False, None)
    assert body["reason"] == customer.reason and body["reason"]


def test_eligibility_names_the_upgrade_a_customer_already_has(app: AppHarness, sandbox: Sandbox) -> None:
    [customer] = sandbox.add_fleet(1, seed=4, mix={Kind.HAS_UPGRADE: 1}).customers

    body = app.eligibility(customer.customer_id).json()

    assert body["upgradeId"] == customer.existing_upgrade_id
    assert body["isEligible"] is True and body["reason"] is None


def test_eligibility_of_a_customer_partner_center_does_not_know_is_422_with_its_answer(
    app: AppHarness, sandbox: Sandbox
) -> None:
    body = {"code": "900118", "description": "Invalid customer ID."}
    sandbox.partner_center.faults.add("eligibility", status=400, body=body)

    answer = app.eligibility(str(uuid.uuid4()))

    assert answer.status == 422
    problem = answer.json()
    assert problem["type"] == f"{PROBLEM}partner-center-rejected"
    assert (problem["partnerCenter"]["httpStatus"], problem["partnerCenter"]["code"]) == (400, "900118")


def test_eligibility_with_a_consent_without_mfa_is_502_mfa_required(app: AppHarness, sandbox: Sandbox) -> None:
    sandbox.seed_sam_credentials(mfa=False)

    answer = app.eligibility(customer_with(sandbox))

    assert answer.status == 502
    assert answer.json()["type"] == f"{PROBLEM}mfa-required"


def test_eligibility_throttled_beyond_the_budget_is_503_with_retry_after(app: AppHarness, sandbox: Sandbox) -> None:
    sandbox.partner_center.faults.add("eligibility", status=429, retry_after=120)

    answer = app.eligibility(customer_with(sandbox))

    assert (answer.status, answer.header("Retry-After")) == (503, "120")
    assert answer.json()["type"] == f"{PROBLEM}partner-center-throttled"


def test_eligibility_with_key_vault_down_is_503_with_retry_after(app: AppHarness, sandbox: Sandbox) -> None:
    sandbox.key_vault.down()

    answer = app.eligibility(customer_with(sandbox))

    assert answer.status == 503 and answer.header("Retry-After")
    assert answer.json()["type"] == f"{PROBLEM}dependency-unavailable"
    assert sandbox.partner_center.log == []


def test_eligibility_that_times_out_after_the_retries_is_504(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    configure(PARTNER_CENTER_TIMEOUT_SECONDS="0.3")
    sandbox.partner_center.faults.add("eligibility", delay=1.0, times=10)

    answer = app.eligibility(customer_with(sandbox))

    assert answer.status == 504
    assert answer.json()["type"] == f"{PROBLEM}partner-center-timeout"
    assert len(sandbox.partner_center.requests_to("eligibility")) == 4  # the create path's budget: 4 attempts


@pytest.mark.parametrize(
    "customer_id", ["not-a-guid", "00000000-0000-0000-0000-000000000000", "4f6a2d1e-8c3b-4e5f-9a7d-2b1c0e9f8a76\n"]
)
def test_eligibility_of_a_bad_customer_id_is_400_naming_customer_id(
    app: AppHarness, sandbox: Sandbox, customer_id: str
) -> None:
    assert field_errors(app.eligibility(customer_id)) == ["customerId"]
    assert sandbox.partner_center.log == []


def test_eligibility_creates_and_records_nothing(app: AppHarness, sandbox: Sandbox, table: TableClient) -> None:
    upgraded = customer_with(sandbox)
    upgrade_id = submit(app, upgraded)
    before = entities(table)
    queued = app.queued_count()
    fleet = sandbox.add_fleet(5, seed=5)

    answers = [app.eligibility(c.customer_id) for c in fleet.customers] + [app.eligibility(upgraded)]

    assert [a.status for a in answers] == [200] * 6
    assert answers[-1].json()["upgradeId"] == upgrade_id
    assert entities(table) == before  # nothing recorded: records, index entities and keys unchanged
    assert app.queued_count() == queued
    assert sandbox.partner_center.creates == 1  # the one POST above; the checks created nothing
    assert {r.route for r in sandbox.partner_center.log[2:]} == {"eligibility"}


# --- GET /api/upgrades ---------------------------------------------------------------------------------------


def test_an_empty_table_lists_nothing(app: AppHarness) -> None:
    answer = app.list_upgrades()

    assert answer.status == 200 and answer.json() == {"items": [], "continuationToken": None}


def test_the_list_holds_status_resources_newest_first(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    upgrade_ids = submit_spaced(app, virtual_clock, [customer_with(sandbox) for _ in range(4)])

    answer = app.list_upgrades()

    assert ids(answer) == upgrade_ids[::-1]
    assert answer.json()["continuationToken"] is None
    first = answer.json()["items"][0]
    assert first == app.get(upgrade_ids[-1]).json()  # the same status resource as GET /api/upgrades/{id}


def test_the_list_filters_by_customer(app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock) -> None:
    mine, other = customer_with(sandbox), customer_with(sandbox)
    upgrade_ids = submit_spaced(app, virtual_clock, [mine, other])
    sandbox.partner_center.seed_upgrade(mine)  # Partner Center knows another, never recorded here: not listed

    assert ids(app.list_upgrades(customerId=mine.upper())) == [upgrade_ids[0]]
    assert ids(app.list_upgrades(customerId=other)) == [upgrade_ids[1]]
    assert ids(app.list_upgrades(customerId=str(uuid.uuid4()))) == []


def test_the_list_filters_by_status_after_tracking_moves_upgrades_on(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    completes = customer_with(sandbox, Step(0, "Completed"))
    fails = customer_with(sandbox, Step(0, "Completed", line_items=[FAILED_ITEM]))
    runs = customer_with(sandbox, Step(0, "InProgress"))
    completed, failed, running = submit_spaced(app, virtual_clock, [completes, fails, runs])
    assert ids(app.list_upgrades(status="InProgress")) == [running, failed, completed]

    track_once(app, virtual_clock, [completed, failed, running])

    assert ids(app.list_upgrades(status="Completed")) == [completed]
    assert ids(app.list_upgrades(status="failed")) == [failed]
    assert ids(app.list_upgrades(status="InProgress")) == [running]
    assert ids(app.list_upgrades(status="TimedOut")) == []
    assert ids(app.list_upgrades(status="Completed", customerId=completes)) == [completed]
    assert ids(app.list_upgrades(status="Completed", customerId=fails)) == []
    assert [i["status"] for i in app.list_upgrades().json()["items"]] == ["InProgress", "Failed", "Completed"]


def test_paging_with_top_2_walks_every_upgrade_once_until_the_token_is_null(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox)
    others = [customer_with(sandbox) for _ in range(4)]
    upgrade_ids = submit_spaced(app, virtual_clock, others)
    for _ in range(3):  # one customer with three upgrades (a new one after each final one, say)
        virtual_clock.advance(1)
        upgrade_ids.append(submit(app, customer))
        sandbox.partner_center.upgrades[upgrade_ids[-1]].progression = [Step(0, "Completed")]
        track_once(app, virtual_clock, [upgrade_ids[-1]])

    pages = walk(app, top="2")
    by_customer = walk(app, top="2", customerId=customer)

    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert [i for page in pages for i in page] == upgrade_ids[::-1]
    assert [i for page in by_customer for i in page] == upgrade_ids[:-4:-1]


def walk(app: AppHarness, **params: str) -> list[list[str]]:
    pages: list[list[str]] = []
    token: str | None = None
    while True:
        answer = app.list_upgrades(**params, **({"continuationToken": token} if token else {}))
        pages.append(ids(answer))
        token = answer.json()["continuationToken"]
        if token is None:
            return pages
        assert len(pages) < 20, "the continuation never ends"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"customerId": "not-a-guid"}, "customerId"),
        ({"customerId": "00000000-0000-0000-0000-000000000000"}, "customerId"),
        ({"customerId": ""}, "customerId"),
        ({"status": "Done"}, "status"),
        ({"status": ""}, "status"),
        ({"top": ""}, "top"),
        ({"top": "0"}, "top"),
        ({"top": "1001"}, "top"),
        ({"top": "ten"}, "top"),
        ({"top": "2.5"}, "top"),
        ({"top": "-1"}, "top"),
        ({"continuationToken": "not a token"}, "continuationToken"),
        ({"continuationToken": "e30.e30"}, "continuationToken"),
    ],
)
def test_a_bad_filter_is_400_naming_the_parameter(app: AppHarness, params: dict[str, str], field: str) -> None:
    assert field_errors(app.list_upgrades(**params)) == [field]


def test_every_bad_filter_is_named_at_once(app: AppHarness) -> None:
    answer = app.list_upgrades(customerId="x", status="y", top="0")

    assert field_errors(answer) == ["customerId", "status", "top"]


def test_a_tampered_token_or_one_of_other_filters_is_400(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox)
    submit_spaced(app, virtual_clock, [customer, customer_with(sandbox), customer_with(sandbox)])
    token = app.list_upgrades(top="1").json()["continuationToken"]
    payload, digest = token.split(".")
    document = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    document["rk"] = "0" + document["rk"][1:]
    tampered = base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode() + "." + digest

    assert field_errors(app.list_upgrades(top="1", continuationToken=tampered)) == ["continuationToken"]
    assert field_errors(app.list_upgrades(top="1", continuationToken=token[:-2])) == ["continuationToken"]
    assert field_errors(app.list_upgrades(top="1", continuationToken=token, status="Completed")) == [
        "continuationToken"
    ]
    assert field_errors(app.list_upgrades(top="1", continuationToken=token, customerId=customer)) == [
        "continuationToken"
    ]
    assert app.list_upgrades(top="5", continuationToken=token).status == 200  # top may change between pages


def test_an_upgrade_recovered_by_the_queue_path_is_listed(app: AppHarness, sandbox: Sandbox) -> None:
    customer = str(uuid.uuid4())
    upgrade_id = sandbox.partner_center.seed_upgrade(customer)  # accepted by Partner Center, never recorded
    assert ids(app.list_upgrades()) == []

    app.enqueue({"upgradeId": upgrade_id, "customerId": customer, "productFamily": "Azure"})
    assert app.process_queue().succeeded == 1

    assert ids(app.list_upgrades()) == [upgrade_id]
    assert ids(app.list_upgrades(customerId=customer, status="InProgress")) == [upgrade_id]


def test_an_upgrade_recovered_by_the_status_route_is_listed(app: AppHarness, sandbox: Sandbox) -> None:
    customer = str(uuid.uuid4())
    upgrade_id = sandbox.partner_center.seed_upgrade(customer)

    assert app.get(upgrade_id, customer).status == 202

    assert ids(app.list_upgrades(customerId=customer)) == [upgrade_id]


def test_a_list_entry_whose_record_is_missing_is_skipped(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock, table: TableClient
) -> None:
    kept, lost = submit_spaced(app, virtual_clock, [customer_with(sandbox), customer_with(sandbox)])
    table.delete_entity(lost, "upgrade")  # as if the instance died between the index write and the record insert

    assert ids(app.list_upgrades()) == [kept]
    assert ids(app.list_upgrades(top="1")) == [kept]  # the page reads on past the entry it skipped


def test_an_index_entry_behind_its_final_record_is_repaired_by_the_list(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock, table: TableClient
) -> None:
    [upgrade_id] = submit_spaced(app, virtual_clock, [customer_with(sandbox, Step(0, "Completed"))])
    track_once(app, virtual_clock, [upgrade_id])
    index = [e for e in entities(table) if e["PartitionKey"] != upgrade_id and e.get("upgradeId") == upgrade_id]
    assert len(index) == 2 and {e["status"] for e in index} == {"Completed"}
    for entity in index:  # as if the final status had reached the record but not the index
        table.upsert_entity({**entity, "status": "InProgress"}, mode=UpdateMode.REPLACE)

    assert ids(app.list_upgrades(status="InProgress")) == []  # the record says otherwise: not listed, repaired

    assert ids(app.list_upgrades(status="Completed")) == [upgrade_id]


def test_every_upgrade_of_a_fleet_is_listed_once_whoever_created_it(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    fleet = sandbox.add_fleet(12, seed=11)
    upgrade_ids = set()
    for customer in fleet.customers:
        answer = app.post({"customerId": customer.customer_id, "productFamily": "Azure"})
        if answer.status == 202:  # new, or the existing upgrade of a hasUpgrade customer
            upgrade_ids.add(answer.json()["upgradeId"])
    existing = {c.existing_upgrade_id for c in fleet.of_kind(Kind.HAS_UPGRADE)}
    assert existing and existing <= upgrade_ids
    for customer in fleet.of_kind(Kind.HAS_UPGRADE):  # submitted again: still one record, one list entry
        assert app.post({"customerId": customer.customer_id, "productFamily": "Azure"}).json()["existing"] is True

    listed = [i for page in walk(app, top="5") for i in page]

    assert sorted(listed) == sorted(upgrade_ids)


def test_the_list_runs_newest_first_across_month_buckets(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock, table: TableClient
) -> None:
    virtual_clock.freeze(at=datetime(2026, 11, 30, 23, 59, 57, tzinfo=UTC).timestamp())
    upgrade_ids = submit_spaced(app, virtual_clock, [customer_with(sandbox) for _ in range(4)])  # 2 in each month

    months = {e["PartitionKey"] for e in entities(table) if e["PartitionKey"].startswith("recent|")}

    assert months == {"recent|797301", "recent|797300"}  # 9999-2026, 12-11 and 12-12: December sorts first
    assert ids(app.list_upgrades()) == upgrade_ids[::-1]
    assert [i for page in walk(app, top="1") for i in page] == upgrade_ids[::-1]
    assert [i for page in walk(app, top="3") for i in page] == upgrade_ids[::-1]
