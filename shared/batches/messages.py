"""The batch queue `%UPGRADE_BATCH_QUEUE%`: Base64 JSON messages, one of five kinds, all naming `batchId`:

- `{"kind": "list", "batchId", "next": null | {"uri", "headers": [{"key", "value"}]}}`: list one page of the
  partner's customers (`GET /v1/customers`, then `links.next`), add them to the batch, queue their work and the
  next page. The message carries the continuation, so a crash resumes at that page. `next` is only what Partner
  Center hands out: `uri` a customers URI relative to `{base}/v1`, `headers` at most `MS-ContinuationToken`;
  anything else is refused (poison), since it would be sent with the app's token.
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
import re
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
CONTINUATION_HEADER = "MS-ContinuationToken"
# `/customers?...` relative to {base}/v1; the query holds RFC 3986 query characters only (no `#`, no space)
_NEXT_URI = re.compile(r"/?(?:v1/)?customers(?P<query>\?[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]{0,2048})?")
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")  # one visible-ASCII token: no CR, LF or other control characters


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
            attempt=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 0 else 0,
            after=after.lower() if isinstance(after, str) and is_guid(after) else None,
            next_page=_next_page(next_page) if document["kind"] == "list" else None,
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


def _next_page(value: Any) -> dict[str, Any] | None:
    """A `list` message's `next`, as Partner Center hands it out, or InvalidBatchMessage: a customers URI
    relative to `{base}/v1` (`/customers?...`; `customers?...` and a `v1/` prefix are read the same) and at most
    the `MS-ContinuationToken` header. Anything else (another path, a host, other headers such as
    Authorization or Host) would be sent to Partner Center with the app's token, so it is refused."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("uri"), str) or value.get("method", "GET") != "GET":
        raise InvalidBatchMessage("next must be null or {uri, headers} as Partner Center's links.next")
    match = _NEXT_URI.fullmatch(value["uri"])
    if match is None:
        raise InvalidBatchMessage("next.uri must be a relative Partner Center customers URI")
    headers = value.get("headers", [])
    if not isinstance(headers, list) or len(headers) > 1 or not all(_is_continuation(h) for h in headers):
        raise InvalidBatchMessage(f"next.headers may hold only {CONTINUATION_HEADER}")
    kept = [{"key": CONTINUATION_HEADER, "value": h["value"]} for h in headers]
    return {"uri": "/customers" + (match["query"] or ""), "headers": kept}


def _is_continuation(header: Any) -> bool:
    return (
        isinstance(header, dict)
        and isinstance(header.get("key"), str)
        and header["key"].lower() == CONTINUATION_HEADER.lower()
        and isinstance(header.get("value"), str)
        and _TOKEN.fullmatch(header["value"]) is not None
    )


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

    def send_chunks(self, batch_id: str, customer_ids: list[str]) -> None:
        for start in range(0, len(customer_ids), CHUNK):
            chunk = tuple(customer_ids[start : start + CHUNK])
            self.send(BatchMessage("customers", batch_id, customer_ids=chunk))
