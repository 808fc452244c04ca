"""Every batch ends (docs/design.md "Batches": exactly one final outcome per customer whatever crashes): a customer
list refused for good, work that fails on every delivery, and a POST whose first message could not be queued.
Harness level, with RunBatch fed from Azurite's queues in virtual time (localrun/virtual_queues.py).
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from localrun.azurite import Azurite
from sandbox.clock import ManualClock
from sandbox.stack import Sandbox
from shared.batches.outcomes import CustomerWork
from shared.batches.worker import MAX_CUSTOMER_ATTEMPTS, MAX_DEQUEUE_COUNT
from support.harness import AppHarness


def start(app: AppHarness, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer = app.post_batch({"productFamily": "Azure", "mode": "report", **body}, headers=headers)
    assert answer.status == 202, answer.body
    return answer.json()  # type: ignore[no-any-return]


def reasons(app: AppHarness, batch_id: str) -> dict[str, tuple[str, str | None]]:
    items = app.get_batch_customers(batch_id, {"top": "1000"}).json()["items"]
    return {r["customerId"]: (r["outcome"], r["reason"]) for r in items}


def test_a_customer_list_refused_for_good_ends_the_batch_with_the_refusal_as_its_error(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    sandbox.partner_center.faults.add("customers", status=403)
    batch_id = start(app, {"allCustomers": True})["batchId"]

    queues = app.virtual_queues(virtual_clock)
    queues.run()

    answer = app.get_batch(batch_id)
    assert answer.status == 200
    body = answer.json()
    assert body["status"] == "Completed" and body["total"] == 0
    assert body["error"].startswith("Partner Center refused the customer list")
    assert len(sandbox.partner_center.requests_to("customers")) == 1  # a 4xx is not retried
    assert queues.poisoned == []


def test_a_listing_that_fails_on_every_delivery_ends_the_batch_before_its_message_is_poisoned(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    sandbox.partner_center.faults.add("customers", status=503, times=1000)
    batch_id = start(app, {"allCustomers": True})["batchId"]

    queues = app.virtual_queues(virtual_clock)
    queues.run()

    [poisoned] = queues.poisoned
    assert poisoned.dequeue_count == MAX_DEQUEUE_COUNT
    body = app.get_batch(batch_id).json()
    assert body["status"] == "Completed" and body["total"] == 0
    assert body["error"].startswith(f"listing the customers gave up after {MAX_DEQUEUE_COUNT} deliveries")
    sandbox.partner_center.faults.clear()


def test_customers_whose_work_exhausts_its_retries_end_error_gave_up(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    sandbox.partner_center.faults.add("eligibility", status=503, times=1000)
    batch_id = start(app, {"customerIds": ids})["batchId"]

    queues = app.virtual_queues(virtual_clock)
    queues.run()
    sandbox.partner_center.faults.clear()

    body = app.get_batch(batch_id).json()
    assert body["status"] == "Completed"
    assert body["counts"]["error"] == 3 and body["error"] is None
    for outcome, reason in reasons(app, batch_id).values():
        assert outcome == "error"
        assert reason and reason.startswith(f"gave up after {MAX_CUSTOMER_ATTEMPTS} attempts")
    assert queues.poisoned == []  # retried through new messages, never through poison


def test_a_chunk_message_that_fails_on_every_delivery_settles_its_customers_error(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    batch_id = start(app, {"customerIds": ids})["batchId"]

    def crash(*_: Any) -> Any:
        raise RuntimeError("instance lost")  # the work dies on every delivery, as a bug would

    monkeypatch.setattr(CustomerWork, "run", crash)
    queues = app.virtual_queues(virtual_clock)
    queues.run()

    [poisoned] = queues.poisoned
    assert '"kind":"customers"' in poisoned.text
    body = app.get_batch(batch_id).json()
    assert body["status"] == "Completed" and body["counts"]["error"] == 3
    for outcome, reason in reasons(app, batch_id).values():
        assert outcome == "error"
        assert reason == f"gave up after {MAX_DEQUEUE_COUNT} deliveries: unexpected RuntimeError"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_post_retried_with_its_idempotency_key_after_queueing_failed_starts_the_stored_batch(
    app: AppHarness, azurite: Azurite, virtual_clock: ManualClock, configure: Callable[..., None]
) -> None:
    working = azurite.connection_string
    no_queue = re.sub(
        r"QueueEndpoint=[^;]+", f"QueueEndpoint=http://127.0.0.1:{_closed_port()}/devstoreaccount1", working
    )
    key = {"Idempotency-Key": f"batch-{uuid.uuid4()}"}
    body = {"productFamily": "Azure", "mode": "report", "customerIds": [str(uuid.uuid4())]}
    configure(AzureWebJobsStorage=no_queue)

    failed = app.post_batch(body, headers=key)

    assert failed.status == 503 and failed.header("Retry-After")
    assert all('"kind":"plan"' not in m.text for m in app.azurite.put_messages(app.batch_queue_name))
    configure(AzureWebJobsStorage=working)

    retried = app.post_batch(body, headers=key)

    assert retried.status == 202
    batch_id = retried.json()["batchId"]
    first = [m for m in app.azurite.put_messages(app.batch_queue_name) if batch_id in m.text]
    assert [m.json()["kind"] for m in first] == ["plan"]
    again = app.post_batch(body, headers=key)  # a second replay sends nothing more
    assert again.json()["batchId"] == batch_id
    assert len([m for m in app.azurite.put_messages(app.batch_queue_name) if batch_id in m.text]) == 1
    app.virtual_queues(virtual_clock).run()
    assert app.get_batch(batch_id).json()["status"] == "Completed"
