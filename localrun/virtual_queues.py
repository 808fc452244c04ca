"""The Functions host's queue loop in virtual time, for the batch tests and the fleet benchmark.

Every message the app puts on the watched queues is read back from Azurite's wire log (exactly the text the app
sent, with its visibility delay) and handed to the queue function's `main` when it is due on the shared
`ManualClock`, which advances to that moment instead of waiting. Like the host: a message whose function raises
is retried after the visibility timeout and moved to poison after `maxDequeueCount` deliveries. The messages stay
on the Azurite queues (hidden ones cannot be taken early), so tests count deliveries, not queue contents.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from azure.functions.queue import QueueMessage

from localrun.azurite import Azurite
from sandbox.clock import ManualClock

MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount
VISIBILITY_TIMEOUT = 30  # host.json extensions.queues.visibilityTimeout


def call_queue_function(main: Callable[[QueueMessage], Awaitable[None] | None], message: QueueMessage) -> None:
    """Run a queue function's `main` to its end, as the worker does: an `async` one (RunBatch) is awaited on an
    event loop of its own (in another thread when this one already runs a loop, e.g. under Playwright)."""
    result = main(message)
    if not inspect.iscoroutine(result):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(result)
        return
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, result).result()


@dataclass
class Delivery:
    queue: str
    text: str
    at: float
    dequeue_count: int
    failed: str | None = None
    ended_at: float | None = None  # when the function returned (virtual time): `at` plus what it waited inside


@dataclass
class VirtualQueues:
    azurite: Azurite
    clock: ManualClock
    handlers: Mapping[str, Callable[[QueueMessage], Awaitable[None] | None]]
    deliveries: list[Delivery] = field(default_factory=list)
    poisoned: list[Delivery] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)
    _due: list[tuple[float, int, str, str, int]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def run(self, max_deliveries: int = 3000) -> None:
        """Deliver until no message is left, in due order, advancing the clock as needed."""
        self._collect()
        while self._due:
            due, _, queue, text, count = heapq.heappop(self._due)
            if due > self.clock.now():
                self.clock.advance(due - self.clock.now())
            delivery = Delivery(queue, text, self.clock.now(), count)
            self.deliveries.append(delivery)
            assert len(self.deliveries) <= max_deliveries, "the queues never drained"
            message = QueueMessage(id=str(uuid.uuid4()), body=text.encode(), dequeue_count=count)  # type: ignore[no-untyped-call]
            try:
                call_queue_function(self.handlers[queue], message)
            except Exception as error:  # the host catches everything a function raises
                delivery.failed = f"{type(error).__name__}: {error}"
                if count >= MAX_DEQUEUE_COUNT:
                    self.poisoned.append(delivery)
                else:
                    self._push(self.clock.now() + VISIBILITY_TIMEOUT, queue, text, count + 1)
            delivery.ended_at = self.clock.now()
            self._collect()

    def of(self, queue: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.queue == queue]

    def _collect(self) -> None:
        for queue in self.handlers:
            puts = self.azurite.put_messages(queue)
            for put in puts[self._seen.get(queue, 0) :]:
                self._push(self.clock.now() + put.visibility_timeout, queue, put.text, 1)
            self._seen[queue] = len(puts)

    def _push(self, due: float, queue: str, text: str, count: int) -> None:
        heapq.heappush(self._due, (due, next(self._order), queue, text, count))
