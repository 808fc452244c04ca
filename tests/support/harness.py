"""Drives the app's functions the way the Functions host would, against the sandbox and Azurite.

`AppHarness.post` / `.get` / `.follow` call `CreateUpgrade.main` / `GetUpgradeStatus.main` / `Follow.main`
with real `azure.functions.HttpRequest` objects (route values as the host's router extracts them);
`.process_queue` reads the status queue back from Azurite, decodes the
Base64 messages and passes them to `UpgradeStatus.main`, deleting them on success and, like the host,
making failed ones visible again and moving them to `<queue>-poison` after `maxDequeueCount`.
Every observed HTTP response is kept for the contract checks.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

import CancelBatch
import CheckEligibility
import CreateUpgrade
import Follow
import GetAudit
import GetBatch
import GetBatchCustomers
import GetUpgradeStatus
import Health
import KeepConsentAlive
import ListUpgrades
import RunBatch
import StartBatch
import UpgradeStatus
from localrun.azurite import Azurite, PutMessage
from localrun.virtual_queues import VirtualQueues, call_queue_function
from sandbox.clock import ManualClock

BASE_URL = "https://upgrades.example.test"
MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount


@dataclass(frozen=True)
class Answer:
    method: str
    path: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return {k.lower(): v for k, v in self.headers.items()}.get(name.lower())

    @property
    def content_type(self) -> str:
        return self.header("Content-Type") or ""


@dataclass
class QueueRun:
    succeeded: int = 0
    failed: list[str] = field(default_factory=list)
    poisoned: int = 0


class AppHarness:
    """`credential`: headers every request to a keyed route carries (conftest: a caller key with every role,
    seeded in the Key Vault stand-in); a test sets it to {} to send none, or to another caller's."""

    def __init__(
        self,
        azurite: Azurite,
        queue_name: str,
        batch_queue_name: str = "upgrade-batch",
        credential: Mapping[str, str] | None = None,
    ) -> None:
        self.azurite = azurite
        self.queue_name = queue_name
        self.batch_queue_name = batch_queue_name
        self.credential: dict[str, str] = dict(credential or {})
        self.answers: list[Answer] = []
        self._lock = threading.Lock()

    # --- HTTP -------------------------------------------------------------------------------------

    def post(
        self,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = "application/json",
        base_url: str = BASE_URL,
    ) -> Answer:
        request = _json_post(f"{base_url}/api/upgrades", body, raw, self._with(headers), content_type)
        return self._keep("POST", "/api/upgrades", CreateUpgrade.main(request))

    def get(
        self,
        upgrade_id: str,
        customer_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        base_url: str = BASE_URL,
    ) -> Answer:
        params = {"customerId": customer_id} if customer_id is not None else {}
        url = f"{base_url}/api/upgrades/{upgrade_id}" + (f"?{urlencode(params)}" if params else "")
        request = func.HttpRequest(
            "GET", url, headers=self._with(headers), params=params, route_params={"upgradeId": upgrade_id}, body=b""
        )
        return self._keep("GET", f"/api/upgrades/{upgrade_id}", GetUpgradeStatus.main(request))

    def list_upgrades(self, headers: Mapping[str, str] | None = None, **params: str) -> Answer:
        """GET /api/upgrades with these query parameters (ListUpgrades)."""
        url = f"{BASE_URL}/api/upgrades" + (f"?{urlencode(params)}" if params else "")
        request = func.HttpRequest("GET", url, headers=self._with(headers), params=params, body=b"")
        return self._keep("GET", "/api/upgrades", ListUpgrades.main(request))

    def eligibility(self, customer_id: str, headers: Mapping[str, str] | None = None) -> Answer:
        """GET /api/customers/{customerId}/eligibility (CheckEligibility)."""
        path = f"/api/customers/{customer_id}/eligibility"
        request = func.HttpRequest(
            "GET", BASE_URL + path, headers=self._with(headers), route_params={"customerId": customer_id}, body=b""
        )
        return self._keep("GET", path, CheckEligibility.main(request))

    # --- batches -----------------------------------------------------------------------------------

    def post_batch(
        self,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        request = _json_post(f"{BASE_URL}/api/batches", body, raw, self._with(headers), content_type, params)
        return self._keep("POST", "/api/batches", StartBatch.main(request))

    def post_batch_csv(self, csv_body: bytes, **params: str) -> Answer:
        """POST /api/batches with a text/csv body and the other fields as query parameters."""
        url = f"{BASE_URL}/api/batches" + (f"?{urlencode(params)}" if params else "")
        request = func.HttpRequest(
            "POST", url, headers=self._with({"Content-Type": "text/csv"}), params=dict(params), body=csv_body
        )
        return self._keep("POST", "/api/batches", StartBatch.main(request))

    def cancel_batch(self, batch_id: str) -> Answer:
        """POST /api/batches/{batchId}/cancel (CancelBatch), empty body."""
        path = f"/api/batches/{batch_id}/cancel"
        request = func.HttpRequest(
            "POST", BASE_URL + path, headers=self._with({}), route_params={"batchId": batch_id}, body=b""
        )
        return self._keep("POST", path, CancelBatch.main(request))

    def get_batch(self, batch_id: str, headers: Mapping[str, str] | None = None) -> Answer:
        request = func.HttpRequest(
            "GET",
            f"{BASE_URL}/api/batches/{batch_id}",
            headers=self._with(headers),
            route_params={"batchId": batch_id},
            body=b"",
        )
        return self._keep("GET", f"/api/batches/{batch_id}", GetBatch.main(request))

    def get_batch_customers(
        self, batch_id: str, params: Mapping[str, str] | None = None, accept: str | None = None
    ) -> Answer:
        query = dict(params or {})
        url = f"{BASE_URL}/api/batches/{batch_id}/customers" + (f"?{urlencode(query)}" if query else "")
        headers = self._with({"Accept": accept} if accept else {})
        request = func.HttpRequest(
            "GET", url, headers=headers, params=query, route_params={"batchId": batch_id}, body=b""
        )
        return self._keep("GET", f"/api/batches/{batch_id}/customers", GetBatchCustomers.main(request))

    def virtual_queues(self, clock: ManualClock) -> VirtualQueues:
        """The batch and status queues, run by `RunBatch.main` and `UpgradeStatus.main` in virtual time."""
        handlers = {self.batch_queue_name: RunBatch.main, self.queue_name: UpgradeStatus.main}
        return VirtualQueues(self.azurite, clock, handlers)

    def health(self, headers: Mapping[str, str] | None = None) -> Answer:
        request = func.HttpRequest("GET", f"{BASE_URL}/api/health", headers=self._with(headers), body=b"")
        return self._keep("GET", "/api/health", Health.main(request))

    def audit(self, headers: Mapping[str, str] | None = None, **params: str) -> Answer:
        """GET /api/audit with these query parameters (GetAudit)."""
        url = f"{BASE_URL}/api/audit" + (f"?{urlencode(params)}" if params else "")
        request = func.HttpRequest("GET", url, headers=self._with(headers), params=params, body=b"")
        return self._keep("GET", "/api/audit", GetAudit.main(request))

    def _with(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """The harness's credential, then the test's own headers (which may replace it)."""
        return {**self.credential, **dict(headers or {})}

    @staticmethod
    def keep_consent_alive(past_due: bool = False) -> None:
        """One run of the KeepConsentAlive timer, as the host starts it."""
        KeepConsentAlive.main(func.TimerRequest(past_due=past_due))

    def follow(self, location: str, headers: Mapping[str, str] | None = None, base_url: str | None = None) -> Answer:
        """GET an absolute Location the app handed out, as a poller would: a follow link goes to `Follow.main`
        (anonymous; the request carries only `headers`, no function key), a keyed status URL to the status route.
        `base_url` sends it to another scheme://host (which need not be one urlsplit accepts)."""
        parts = urlsplit(location)
        if base_url is not None:
            location = f"{base_url}{parts.path}?{parts.query}"
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        segments = parts.path.strip("/").split("/")
        if segments[:2] != ["api", "follow"]:
            base = base_url or f"{parts.scheme}://{parts.netloc}"
            return self.get(segments[-1], params.get("customerId"), headers=headers, base_url=base)
        assert len(segments) in (4, 5) and segments[2].lower() in ("upgrades", "batches"), location  # else 404
        route = {"resource": segments[2], "id": segments[3]} | ({"part": segments[4]} if len(segments) == 5 else {})
        request = func.HttpRequest(
            "GET", location, headers=dict(headers or {}), params=params, route_params=route, body=b""
        )
        return self._keep("GET", parts.path, Follow.main(request))

    def _keep(self, method: str, path: str, response: func.HttpResponse) -> Answer:
        headers = dict(response.headers)
        if not any(name.lower() == "content-type" for name in headers):  # as the worker's converter adds it
            text = response.mimetype.startswith("text/")
            headers["Content-Type"] = f"{response.mimetype}; charset={response.charset}" if text else response.mimetype
        answer = Answer(method, path, response.status_code, headers, response.get_body())
        with self._lock:
            self.answers.append(answer)
        return answer

    # --- queue ------------------------------------------------------------------------------------

    def queue(self, name: str | None = None) -> QueueClient:
        """A client for the status queue (or another), created if missing as the host's listener does."""
        client = QueueClient.from_connection_string(
            self.azurite.connection_string,
            name or self.queue_name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        return client

    def scheduled(self) -> list[PutMessage]:
        """Every status-check message the app put on its queue, with its visibility delay, in order."""
        return self.azurite.put_messages(self.queue_name)

    def deliver(self, put: PutMessage, dequeue_count: int = 1) -> None:
        """Hand a scheduled message to UpgradeStatus.main now, as if its delay had passed (virtual-clock tests).

        The text is exactly what the app put on the queue, read from Azurite's wire log; the hidden message
        itself stays on the queue, which is why these tests count messages rather than drain the queue.
        """
        message = QueueMessage(id=str(uuid.uuid4()), body=put.text.encode(), dequeue_count=dequeue_count)
        call_queue_function(UpgradeStatus.main, message)

    def enqueue(self, message: Mapping[str, Any] | str) -> None:
        self.queue().send_message(message if isinstance(message, str) else json.dumps(message))

    def process_queue(self, visibility_timeout: int = 30) -> QueueRun:
        """One pass over the messages visible now, handled as the Functions host handles them."""
        run = QueueRun()
        queue = self.queue()
        batch = queue.receive_messages(messages_per_page=32, visibility_timeout=visibility_timeout).by_page()
        for received in next(batch, []):
            message = QueueMessage(
                id=received.id,
                body=received.content.encode(),
                dequeue_count=received.dequeue_count,
                pop_receipt=received.pop_receipt,
            )
            try:
                call_queue_function(UpgradeStatus.main, message)
            except Exception as error:  # the host catches everything a function raises
                run.failed.append(f"{type(error).__name__}: {error}")
                if (received.dequeue_count or 0) >= MAX_DEQUEUE_COUNT:
                    self.queue(f"{self.queue_name}-poison").send_message(received.content)
                    queue.delete_message(received)
                    run.poisoned += 1
                else:
                    queue.update_message(received, visibility_timeout=0)
                continue
            queue.delete_message(received)
            run.succeeded += 1
        return run

    def poison_messages(self) -> list[dict[str, Any]]:
        poison = self.queue(f"{self.queue_name}-poison")
        return [json.loads(m.content) for m in poison.peek_messages(max_messages=32)]

    def queued_count(self) -> int:
        """Messages on the queue, visible or not (Azurite's approximate count is exact)."""
        return self.queue().get_queue_properties().approximate_message_count


def _json_post(
    url: str,
    body: Any,
    raw: bytes | None,
    headers: Mapping[str, str] | None,
    content_type: str | None,
    params: Mapping[str, str] | None = None,
) -> func.HttpRequest:
    """A POST as the host hands it to a function: `raw` bytes as sent, else `body` as JSON; Content-Type unless
    the headers name one or `content_type` is None."""
    payload = raw if raw is not None else json.dumps(body).encode()
    all_headers = dict(headers or {})
    if content_type is not None:
        all_headers.setdefault("Content-Type", content_type)
    if params:
        url += "?" + urlencode(params)
    return func.HttpRequest("POST", url, headers=all_headers, params=dict(params or {}), body=payload)
