"""The host's admin API for running a non-HTTP function by hand: ``POST /admin/functions/{name}``.

As with the Functions host (and Core Tools), the body is ``{"input": "…"}`` and the answer is ``202 Accepted``
with an empty body at once; the function runs in the background. A queue-triggered function gets ``input`` as
its message (dequeue count 1; nothing is put on or taken off the queue), a timer-triggered one the timer
payload (``input`` is ignored). The master key is required when keys are configured. Unknown function -> 404,
an HTTP-triggered one -> 400 (call its route), a bad body -> 400.
"""

from __future__ import annotations

import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http import HTTPStatus

from devhost.config import QUEUE_TRIGGER, TIMER_TRIGGER
from devhost.errors import DevHostError
from devhost.http_server import Reply, Request
from devhost.keys import HostKeys, presented_key
from devhost.ncrontab import Schedule
from devhost.timers import timer_payload
from devhost.worker import FunctionHost, QueueTriggerMetadata

log = logging.getLogger("devhost.admin")

ADMIN_PREFIX = "/admin/"
_FUNCTIONS = "/admin/functions/"


class AdminApi:
    def __init__(self, host: FunctionHost, keys: HostKeys | None = None) -> None:
        self.host = host
        self.keys = keys or HostKeys.none()
        self._runs = ThreadPoolExecutor(max_workers=4, thread_name_prefix="devhost-admin")

    def stop(self) -> None:
        """Wait for the functions started by hand."""
        self._runs.shutdown(wait=True)

    def handle(self, request: Request) -> Reply:
        if not self.keys.allows("admin", None, presented_key(request.headers, request.target)):
            return Reply(HTTPStatus.UNAUTHORIZED)
        path = request.path.rstrip("/")
        if not path.lower().startswith(_FUNCTIONS) or "/" in path[len(_FUNCTIONS) :]:
            return Reply(HTTPStatus.NOT_FOUND)
        if request.method != "POST":
            return Reply(HTTPStatus.METHOD_NOT_ALLOWED, [("Allow", "POST")])
        name = next((f for f in self.host.functions if f.lower() == path[len(_FUNCTIONS) :].lower()), None)
        if name is None:
            return Reply(HTTPStatus.NOT_FOUND)
        trigger = self.host.trigger_type(name)
        if trigger not in (QUEUE_TRIGGER, TIMER_TRIGGER):
            return _problem(HTTPStatus.BAD_REQUEST, f"'{name}' is HTTP-triggered: call its route instead")
        try:
            document = json.loads(request.body or b"{}")
        except ValueError:
            return _problem(HTTPStatus.BAD_REQUEST, 'the body must be JSON: {"input": "..."}')
        text = document.get("input", "") if isinstance(document, dict) else None
        if not isinstance(text, str):
            return _problem(HTTPStatus.BAD_REQUEST, '"input" must be a string')
        self._runs.submit(self._run, name, trigger, text)
        return Reply(HTTPStatus.ACCEPTED)

    def _run(self, name: str, trigger: str, text: str) -> None:
        log.info("%s: invoked by hand (admin API)", name)
        try:
            if trigger == QUEUE_TRIGGER:
                self.host.invoke_queue(name, text, QueueTriggerMetadata(id=str(uuid.uuid4()), dequeue_count=1))
            else:
                now = datetime.now(UTC).replace(microsecond=0)
                self.host.invoke_timer(
                    name, timer_payload(Schedule.parse(self.host.functions[name].schedule), None, now)
                )
        except DevHostError:
            pass  # a failing function is logged by the host, as for any other invocation


def _problem(status: HTTPStatus, detail: str) -> Reply:
    body = json.dumps({"status": int(status), "detail": detail}).encode()
    return Reply(status, [("Content-Type", "application/json; charset=utf-8")], body)
