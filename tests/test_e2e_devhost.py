"""End to end through devhost: the real app folder on Microsoft's Python worker, over real sockets.

Nothing here calls a function's `main`: requests go over HTTP to `DevHost`, which routes them by the
function.json files; status checks reach `UpgradeStatus` only through devhost's queue poller reading the
`%UPGRADE_STATUS_QUEUE%` queue on Azurite. So these tests prove the function.json files, the binding names
(`req`, `msg`, `$return`), the app-setting expression in the queue name, the routes and methods, and
host.json's queue settings. The outside world is the sandbox; storage is Azurite (conftest fixtures, with a
queue and a table of their own per test).

Every response from the app must be one the OpenAPI contract describes; the host's own 404/405 for routes
no function serves are exempt. No response or log line may contain a secret the sandbox knows.
Only one FunctionHost can run per process (the worker keeps global state), so each test starts and stops its
own DevHost (function scope, ~0.2 s) and never overlaps with the hosts of other test files.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from devhost import DevHost
from localrun.azurite import Azurite
from localrun.storage import app_queue_service
from sandbox.partner_center import Customer, Step
from sandbox.stack import Sandbox
from support.callers import bearer
from support.harness import Answer
from support.leaks import find_leaks, known_secrets
from support.openapi_contract import check_response

ROOT = Path(__file__).resolve().parents[1]
APP_PARTS = (
    "host.json",
    "CreateUpgrade",
    "GetUpgradeStatus",
    "UpgradeStatus",
    "ListUpgrades",
    "CheckEligibility",
    "Follow",
    "shared",
)
MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount (the copy keeps it)

pytestmark = pytest.mark.timeout(180)  # a ceiling: the waits below end on their conditions


class Client:
    """requests over real sockets to the host; keeps every response for the contract and leak checks."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.trust_env = False  # loopback: no proxy, no CA bundle needed
        self.answers: list[tuple[requests.Response, bool]] = []  # (response, exempt from the contract)

    def request(self, method: str, url: str, *, host_answer: bool = False, **kwargs: Any) -> requests.Response:
        absolute = url if url.startswith("http") else self.base_url + url
        kwargs.setdefault("timeout", (5, 60))
        response = self.session.request(method, absolute, **kwargs)
        self.answers.append((response, host_answer))
        return response

    def post_upgrade(self, body: dict[str, Any], **headers: str) -> requests.Response:
        return self.request("POST", "/api/upgrades", json=body, headers=headers)

    def follow(self, location: str, until: Callable[[requests.Response], bool], timeout: float) -> requests.Response:
        """GET the Location (sooner than Retry-After: the test's schedule is seconds) until `until` holds."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.request("GET", location)
            if until(response) or time.monotonic() > deadline:
                return response
            time.sleep(0.25)

    def contract_violations(self) -> list[str]:
        found = []
        for response, exempt in self.answers:
            if exempt:
                continue
            problems = check_response(
                response.request.method or "", response.url, response.status_code, response.headers, response.content
            )
            found += [f"{response.request.method} {response.url} -> {response.status_code}: {p}" for p in problems]
        return found

    def as_answers(self) -> list[Answer]:
        return [
            Answer(r.request.method or "", r.url, r.status_code, dict(r.headers), r.content) for r, _ in self.answers
        ]


def quick_customer(sandbox: Sandbox, completes_after: float) -> Customer:
    """A sandbox customer of this test only, whose upgrade completes `completes_after` seconds after creation."""
    customer = Customer(
        customer_id=str(uuid.uuid4()),
        name="e2e",
        summary=f"completes after {completes_after:g} s",
        progression=[Step(0, "InProgress"), Step(completes_after, "Completed")],
    )
    sandbox.partner_center.add_customer(customer)
    return customer


def queue_client(azurite: Azurite, name: str) -> QueueClient:
    return QueueClient.from_connection_string(
        azurite.connection_string, name, message_decode_policy=TextBase64DecodePolicy()
    )


def wait_for[T](probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def e2e_env(app_env: dict[str, str], configure: Callable[..., None]) -> dict[str, str]:
    """The conftest environment (sandbox + Azurite + this test's queue and table) with a seconds-long schedule."""
    # CONSENT_CHECK_SCHEDULE: KeepConsentAlive's function.json names %CONSENT_CHECK_SCHEDULE%, which a host can only
    # index when the app setting exists (infra sets it in Azure).
    schedule = {
        "STATUS_FIRST_CHECK_SECONDS": "1",
        "STATUS_MAX_INTERVAL_SECONDS": "2",
        "CONSENT_CHECK_SCHEDULE": "0 30 3 * * *",
    }
    configure(**schedule)
    return app_env | schedule


class Checked(list[Client]):
    """The clients of a test, and the credential they send by default (a caller key with every role)."""

    def __init__(self, credential: dict[str, str]) -> None:
        super().__init__()
        self.credential = credential

    def append(self, client: Client) -> None:
        """Register `client`: it sends the default credential from now on (a request may replace it)."""
        client.session.headers.update(self.credential)
        super().append(client)


@pytest.fixture
def checked(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> Iterator[Checked]:
    """Clients registered here get the contract and leak checks after the test."""
    clients = Checked({"X-Caller-Key": sandbox.seed_caller_key(f"e2e-{uuid.uuid4().hex[:8]}")})
    yield clients
    answers = [a for c in clients for a in c.as_answers()]
    leaks = find_leaks(known_secrets(sandbox), [r.getMessage() for r in caplog.records], answers)
    assert not leaks, f"secrets leaked: {leaks}"
    violations = [v for c in clients for v in c.contract_violations()]
    assert not violations, "responses the OpenAPI contract does not describe:\n" + "\n".join(violations)


def start_host(app_dir: Path, environ: dict[str, str], checked: Checked) -> tuple[DevHost, Client]:
    host = DevHost(app_dir, http_port=0, environ=environ, queue_service=app_queue_service).start()
    client = Client(host.url)
    checked.append(client)
    return host, client


@pytest.fixture
def real_app(e2e_env: dict[str, str], checked: Checked) -> Iterator[tuple[DevHost, Client]]:
    """The repository's own app folder, as deployed."""
    host, client = start_host(ROOT, e2e_env, checked)
    yield host, client
    host.stop()


@pytest.fixture
def fast_retry_app(tmp_path: Path, e2e_env: dict[str, str], checked: Checked) -> Iterator[tuple[DevHost, Client]]:
    """A copy of the app whose host.json retries a failed message at once.

    The real host.json makes a failed message visible again after 30 s (visibilityTimeout) and polls an idle
    queue every 2 s at most, so reaching maxDequeueCount (5) would take minutes. The copy changes only those
    two queue settings; the function folders and shared/ are copied unchanged (the worker imports `shared`
    as the package already loaded in this process, which is the same code).
    """
    app = tmp_path / "app"
    for part in APP_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, app / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            app.mkdir(exist_ok=True)
            shutil.copy2(source, app / part)
    host_json = json.loads((app / "host.json").read_text())
    queues = host_json["extensions"]["queues"]
    assert queues["maxDequeueCount"] == MAX_DEQUEUE_COUNT
    queues["visibilityTimeout"] = "00:00:00"
    queues["maxPollingInterval"] = "00:00:00.200"
    (app / "host.json").write_text(json.dumps(host_json, indent=2))
    host, client = start_host(app, e2e_env, checked)
    yield host, client
    host.stop()


def test_upgrade_is_accepted_then_tracked_by_the_queue_trigger_until_completed(
    real_app: tuple[DevHost, Client], sandbox: Sandbox, azurite: Azurite, e2e_env: dict[str, str]
) -> None:
    host, client = real_app
    poller = next(p for p in host.pollers if p.function == "UpgradeStatus")
    assert poller.queue_name == e2e_env["UPGRADE_STATUS_QUEUE"]  # %UPGRADE_STATUS_QUEUE% resolved
    customer = quick_customer(sandbox, completes_after=0.5)
    correlation_id = str(uuid.uuid4())
    body = {"customerId": customer.customer_id, "productFamily": "azure"}

    key = f"e2e-{correlation_id}"
    accepted = client.post_upgrade(body, **{"Idempotency-Key": key, "x-correlation-id": correlation_id})

    assert accepted.status_code == 202, accepted.text
    upgrade = accepted.json()
    location = accepted.headers["Location"]
    # A follow link (the anonymous Follow function), built from the request's Host as devhost passes it on.
    follow_link = f"{host.url}/api/follow/upgrades/{upgrade['upgradeId']}?customerId={customer.customer_id}&expires="
    assert location.startswith(follow_link), location
    assert upgrade["statusUri"] == f"{host.url}/api/upgrades/{upgrade['upgradeId']}?customerId={customer.customer_id}"
    assert accepted.headers["x-correlation-id"] == correlation_id
    assert int(accepted.headers["Retry-After"]) >= 1
    replay = client.post_upgrade(body, **{"Idempotency-Key": key})
    assert (replay.status_code, replay.json()["upgradeId"]) == (202, upgrade["upgradeId"])

    final = client.follow(location, until=lambda r: r.status_code != 202, timeout=60)

    assert final.status_code == 200, final.text
    resource = final.json()
    assert (resource["status"], resource["partnerCenterStatus"]) == ("Completed", "Completed")
    assert resource["upgradeId"] == upgrade["upgradeId"] and resource["checks"] >= 1
    # The checks came through devhost's poller: messages handled, none failed, and the queue is drained.
    wait_for(lambda: poller.outcomes["ok"] >= 1, 30, "a status check through the queue trigger")
    assert poller.outcomes["failed"] == poller.outcomes["poisoned"] == 0
    status_calls = [r for r in sandbox.partner_center.requests_to("status") if upgrade["upgradeId"] in r.path]
    assert status_calls
    queue = queue_client(azurite, e2e_env["UPGRADE_STATUS_QUEUE"])
    wait_for(lambda: queue.get_queue_properties().approximate_message_count == 0 or None, 30, "an empty queue")


def test_message_that_keeps_failing_lands_in_the_poison_queue_after_max_dequeue_count(
    fast_retry_app: tuple[DevHost, Client], sandbox: Sandbox, azurite: Azurite, e2e_env: dict[str, str]
) -> None:
    host, client = fast_retry_app
    poller = next(p for p in host.pollers if p.function == "UpgradeStatus")
    customer = quick_customer(sandbox, completes_after=60)
    accepted = client.post_upgrade({"customerId": customer.customer_id, "productFamily": "Azure"})
    assert accepted.status_code == 202, accepted.text
    upgrade_id = accepted.json()["upgradeId"]
    sandbox.partner_center.down()  # every status check now fails: connection refused

    queue_name = e2e_env["UPGRADE_STATUS_QUEUE"]
    poison = queue_client(azurite, f"{queue_name}-poison")
    parked = wait_for(lambda: list(poison.peek_messages(max_messages=32)), 60, "a message in the poison queue")

    assert [json.loads(m.content)["upgradeId"] for m in parked] == [upgrade_id]
    assert poller.outcomes == {"failed": MAX_DEQUEUE_COUNT - 1, "poisoned": 1}
    # The host copies the message to the poison queue, then deletes it from the main queue: wait for the delete.
    main = queue_client(azurite, queue_name)
    wait_for(lambda: main.get_queue_properties().approximate_message_count == 0, 30, "the main queue to empty")
    # The status resource still answers from the record, with the last error of the failed checks.
    status = client.request("GET", accepted.headers["Location"])
    assert status.status_code == 202, status.text
    assert status.json()["status"] == "InProgress" and status.json()["error"]


def test_routes_methods_and_request_errors_through_the_host(real_app: tuple[DevHost, Client], sandbox: Sandbox) -> None:
    _, client = real_app
    unknown_route = client.request("GET", "/api/nothing-here", host_answer=True)
    no_prefix = client.request("GET", "/upgrades", host_answer=True)
    wrong_method_collection = client.request("DELETE", "/api/upgrades", host_answer=True)
    wrong_method_item = client.request("DELETE", f"/api/upgrades/{uuid.uuid4()}", host_answer=True)

    assert (unknown_route.status_code, no_prefix.status_code) == (404, 404)
    assert wrong_method_collection.status_code == 405
    assert set(wrong_method_collection.headers["Allow"].split(", ")) == {"GET", "POST"}  # ListUpgrades, CreateUpgrade
    assert (wrong_method_item.status_code, wrong_method_item.headers["Allow"]) == (405, "GET")

    # The functions' own answers, with the route value and the raw body as the host passes them.
    customer = quick_customer(sandbox, completes_after=60)
    missing = client.request("GET", f"/api/upgrades/{uuid.uuid4()}?customerId={customer.customer_id}")
    malformed = client.request(
        "POST", "/api/upgrades", data=b'{"customerId": ', headers={"Content-Type": "application/json"}
    )
    not_json = client.request("POST", "/api/upgrades", data=b"customerId=x", headers={"Content-Type": "text/plain"})

    assert (missing.status_code, missing.headers["Content-Type"]) == (404, "application/problem+json")
    assert malformed.status_code == 400 and malformed.json()["status"] == 400
    assert not_json.status_code == 415


def test_get_on_the_upgrades_route_is_the_list_and_post_still_creates(
    real_app: tuple[DevHost, Client], sandbox: Sandbox
) -> None:
    _, client = real_app
    customer = quick_customer(sandbox, completes_after=60)
    before = client.request("GET", "/api/upgrades")
    eligible = client.request("GET", f"/api/customers/{customer.customer_id}/eligibility")

    created = client.post_upgrade({"customerId": customer.customer_id, "productFamily": "Azure"})

    assert (before.status_code, before.json()) == (200, {"items": [], "continuationToken": None})
    assert eligible.status_code == 200 and eligible.json()["isEligible"] is True
    assert created.status_code == 202, created.text
    upgrade_id = created.json()["upgradeId"]
    listed = client.request("GET", "/api/upgrades", params={"customerId": customer.customer_id, "top": "10"})
    assert listed.status_code == 200, listed.text
    assert [item["upgradeId"] for item in listed.json()["items"]] == [upgrade_id]
    again = client.request("GET", f"/api/customers/{customer.customer_id.upper()}/eligibility")
    assert again.json()["upgradeId"] == upgrade_id
    bad = client.request("GET", "/api/upgrades", params={"top": "0"})
    assert bad.status_code == 400 and [e["field"] for e in bad.json()["errors"]] == ["top"]


def test_a_report_batch_runs_through_the_batch_queue_trigger_until_completed(
    real_app: tuple[DevHost, Client], sandbox: Sandbox, e2e_env: dict[str, str]
) -> None:
    host, client = real_app
    poller = next(p for p in host.pollers if p.function == "RunBatch")
    assert poller.queue_name == e2e_env["UPGRADE_BATCH_QUEUE"]  # %UPGRADE_BATCH_QUEUE% resolved
    fleet = sandbox.add_fleet(5, seed=uuid.uuid4().int % 10**9, mix={"eligible": 3, "notEligible": 2})
    body = {"productFamily": "Azure", "mode": "report", "customerIds": [c.customer_id for c in fleet.customers]}

    accepted = client.request("POST", "/api/batches", json=body)

    assert accepted.status_code == 202, accepted.text
    batch_id = accepted.json()["batchId"]
    assert accepted.headers["Location"].startswith(f"{host.url}/api/follow/batches/{batch_id}?expires=")
    final = client.follow(accepted.headers["Location"], until=lambda r: r.status_code != 202, timeout=60)
    assert final.status_code == 200, final.text
    assert final.json()["counts"] == {
        "pending": 0, "eligible": 3, "notEligible": 2, "hasUpgrade": 0, "upgrading": 0, "completed": 0,
        "failed": 0, "error": 0, "cancelled": 0,
    }  # fmt: skip
    csv_answer = client.request("GET", f"/api/batches/{batch_id}/customers", headers={"Accept": "text/csv"})
    assert csv_answer.status_code == 200 and csv_answer.headers["Content-Type"].startswith("text/csv")
    assert len(csv_answer.text.strip().splitlines()) == 6
    assert poller.outcomes["ok"] >= 2 and poller.outcomes["failed"] == poller.outcomes["poisoned"] == 0


# --- callers: through Microsoft's worker -------------------------------------------------------------------


def test_callers_are_checked_through_the_worker(real_app: tuple[DevHost, Client], sandbox: Sandbox) -> None:
    _, client = real_app
    body = {"customerId": str(uuid.uuid4()), "productFamily": "Azure"}
    reader = sandbox.seed_caller_key(f"e2e-reader-{uuid.uuid4().hex[:6]}", ("Upgrades.Read",))
    api_client, token = bearer(sandbox, ("Upgrades.Create", "Upgrades.Read"))
    bad = sandbox.entra.api.bad_token("expired", api_client, sandbox.clock())
    no_key = {"X-Caller-Key": ""}  # requests drops a header set to None; an empty one is no credential either

    refused = {
        path: client.request(method, path, headers={**no_key}, json=body if method == "POST" else None)
        for method, path in (("POST", "/api/upgrades"), ("GET", "/api/upgrades"), ("GET", "/api/health"),
                             ("GET", "/api/audit"), ("GET", f"/api/batches/{uuid.uuid4()}"))
    }  # fmt: skip
    expired = client.request("POST", "/api/upgrades", json=body, headers={"X-Caller-Key": "", **_auth(bad)})
    forbidden = client.request("POST", "/api/upgrades", json=body, headers={"X-Caller-Key": reader})
    accepted = client.request("POST", "/api/upgrades", json=body, headers={"X-Caller-Key": "", **token})
    status = client.request("GET", accepted.headers["Location"])

    bodies = {json.dumps({k: v for k, v in r.json().items() if k != "correlationId"}) for r in refused.values()}
    assert {r.status_code for r in refused.values()} == {401} and len(bodies) == 1
    assert all(r.headers["WWW-Authenticate"] == "Bearer" for r in refused.values())
    assert (
        expired.status_code == 401
        and json.dumps({k: v for k, v in expired.json().items() if k != "correlationId"}) in bodies
    )
    assert forbidden.status_code == 403 and "Upgrades.Create" in forbidden.json()["detail"]
    assert accepted.status_code == 202, accepted.text
    assert status.json()["requestedBy"]["kind"] == "token"
    assert len(sandbox.partner_center.requests_to("create")) == 1  # only the accepted one reached Partner Center
    audit = client.request("GET", "/api/audit", params={"top": "20"}).json()["items"]
    assert sorted(e["outcome"]["status"] for e in audit) == [202, 401, 401, 401, 401, 401, 401, 403]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
