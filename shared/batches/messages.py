"""The batch queue `%UPGRADE_BATCH_QUEUE%`: Base64 JSON messages, one of five kinds, all naming `batchId`:

- `{"kind": "list", "batchId", "next": null | {"uri", "headers": [{"key", "value"}]}}`: list one page of the
  partner's customers (`GET /v1/customers`, then `links.next`), add them to the batch, queue their work and the
  next page. The message carries the continuation, so a crash resumes at that page.
- `{"kind": "plan", "batchId", "after": null | customerId}`: queue the work of the next pending rows of a
  `customerIds` batch (in customer-id order, after `after`), then the next plan message.
- `{"kind": "customers", "batchId", "customerIds": [...], "attempt": n}`: the work of up to `CHUNK` customers.
- `{"kind": "callback", "batchId"}`: (re)try the finished batch's callback.
- `{"kind": "cancel", "batchId"}`: move the next pending rows of a cancelling batch to `cancelled` (`cancel.py`).

Every kind but `callback` and `cancel` waits for the batch's `notBefore`: a message that arrives earlier goes back
on the queue with the time left (at most the queue's 7-day visibility delay, so a far schedule chains messages).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.correlation import get_logger, is_guid
from shared.storage.clients import EnsuredResource

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

log = get_logger(__name__)

CHUNK = 20  # customers per work message: ~20-40 Partner Center calls, well inside the visibility timeout
KINDS = ("list", "plan", "customers", "callback", "cancel")
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600 - 60


class InvalidBatchMessage(ValueError):
    """The message does not follow the batch queue contract; it can never succeed."""


@dataclass(frozen=True)
class BatchMessage:
    kind: str
    batch_id: str
    customer_ids: tuple[str, ...] = ()
    attempt: int = 0
    after: str | None = None
    next_page: dict[str, Any] | None = field(default=None, hash=False)

    @classmethod
    def parse(cls, text: str) -> BatchMessage:
        try:
            document = json.loads(text)
        except ValueError:
            raise InvalidBatchMessage("the message is not JSON") from None
        if not isinstance(document, dict) or document.get("kind") not in KINDS:
            raise InvalidBatchMessage(f"the message must be an object whose kind is one of {', '.join(KINDS)}")
        batch_id, ids = document.get("batchId"), document.get("customerIds", [])
        if not (isinstance(batch_id, str) and is_guid(batch_id)):
            raise InvalidBatchMessage("batchId must be a GUID")
        if not (isinstance(ids, list) and all(isinstance(i, str) and is_guid(i) for i in ids)):
            raise InvalidBatchMessage("customerIds must be an array of GUIDs")
        attempt, after, next_page = document.get("attempt", 0), document.get("after"), document.get("next")
        return cls(
            kind=document["kind"],
            batch_id=batch_id.lower(),
            customer_ids=tuple(i.lower() for i in ids),
            attempt=attempt if isinstance(attempt, int) and attempt >= 0 else 0,
            after=after.lower() if isinstance(after, str) and is_guid(after) else None,
            next_page=next_page if isinstance(next_page, dict) else None,
        )

    def to_json(self) -> str:
        document: dict[str, Any] = {"kind": self.kind, "batchId": self.batch_id}
        if self.kind == "customers":
            document |= {"customerIds": list(self.customer_ids), "attempt": self.attempt}
        elif self.kind == "plan":
            document["after"] = self.after
        elif self.kind == "list":
            document["next"] = self.next_page
        return json.dumps(document, separators=(",", ":"))


class BatchQueue:
    def __init__(self, queue: QueueClient) -> None:
        self._queue = queue
        self._ensured = EnsuredResource("queue", queue.queue_name, queue.create_queue)

    def send(self, message: BatchMessage, delay_seconds: float = 0) -> None:
        delay = max(0, min(round(delay_seconds), MAX_VISIBILITY_SECONDS))
        self._ensured.run(
            "queue batch work",
            lambda: self._queue.send_message(message.to_json(), visibility_timeout=delay, time_to_live=-1),
        )
        log.info("queued batch %s %s message in %d s", message.batch_id, message.kind, delay)

    def park(self, text: str) -> None:
        """Put a message as it came (on the poison queue: one that can never succeed, for an operator)."""
        self._ensured.run("park a batch message", lambda: self._queue.send_message(text, time_to_live=-1))

    def send_chunks(self, batch_id: str, customer_ids: list[str]) -> None:
        for start in range(0, len(customer_ids), CHUNK):
            chunk = tuple(customer_ids[start : start + CHUNK])
            self.send(BatchMessage("customers", batch_id, customer_ids=chunk))
