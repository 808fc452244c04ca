"""Queue trigger listener with the WebJobs storage extension's semantics (QueueListener / QueueProcessor).

* Messages are received ``batchSize`` at a time, invisible for a lease of 10 minutes (``lease_seconds``) that is
  renewed every half lease while the function runs, as the WebJobs host does; a host that dies mid-message
  leaves it invisible until the lease ends, then another host gets it. The next
  batch is fetched once no more than ``newBatchThreshold`` messages are still running (so at most
  ``batchSize + newBatchThreshold`` run concurrently, each on its own thread).
* While the queue is empty the poll interval backs off exponentially (randomized, from 100 ms) up to
  ``maxPollingInterval``; after a non-empty batch the queue is polled again at once.
* ``messageEncoding: base64`` (default) decodes the body; a body that is not valid base64 goes straight to
  ``<queue>-poison``. ``none`` passes the text through.
* Success deletes the message. Failure: when ``DequeueCount >= maxDequeueCount`` the original message is
  copied to ``<queue>-poison`` and deleted, otherwise it becomes visible again after ``visibilityTimeout``.
  A message already dequeued more than ``maxDequeueCount`` times is poisoned without running.
"""

from __future__ import annotations

import base64
import binascii
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue import QueueClient, QueueMessage, QueueServiceClient

from devhost.config import FunctionConfig, QueueOptions
from devhost.errors import DevHostError, InvocationError
from devhost.worker import FunctionHost, QueueTriggerMetadata

log = logging.getLogger("devhost.queue")

RECEIVE_VISIBILITY_TIMEOUT = 10 * 60  # seconds a received message stays invisible while it runs (the lease)
MINIMUM_POLLING_INTERVAL = 0.1

# (function name, decoded message body) -> a short text appended to the message's console line, or None.
# Called after the function ran (success or failure); it must not raise and should be quick.
MessageDescriber = Callable[[str, str | bytes], str | None]


class QueueServiceFactory(Protocol):
    """Builds the queue service client for a trigger's ``connection`` (a setting name or prefix, never empty).

    How a connection's settings become a client (connection string, or identity-based ``<conn>__queueServiceUri``
    with a credential) is the app's business: the host is given this factory and never reads credentials itself.
    Raise ``ConfigError`` for a connection that is not configured.
    """

    def __call__(self, connection: str, settings: Mapping[str, str]) -> QueueServiceClient: ...


class PollingBackoff:
    """WebJobs' RandomizedExponentialBackoffStrategy between empty polls."""

    def __init__(self, maximum: float, minimum: float = MINIMUM_POLLING_INTERVAL) -> None:
        self.minimum = min(minimum, maximum)
        self.maximum = maximum
        self.reset()

    def reset(self) -> None:
        self.current = self.minimum
        self._exponent = 0

    def next_delay(self) -> float:
        if self.current < self.maximum:
            jitter = random.uniform(0.8, 1.2)  # noqa: S311 - polling jitter, not security
            candidate = self.minimum + jitter * (2**self._exponent) * self.minimum
            if candidate < self.maximum:
                self.current = candidate
                self._exponent += 1
            else:
                self.current = self.maximum
        return self.current


def decode_body(content: str, encoding: str, *, binary: bool) -> str | bytes | None:
    """A message's text as the function gets it (``messageEncoding``), or None when it is not valid base64."""
    if encoding == "none":
        return content.encode("utf-8") if binary else content
    try:
        raw = base64.b64decode("".join(content.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if binary else raw.decode("utf-8", "replace")


class QueuePoller:
    """Polls one queue-triggered function's queue and invokes the function for each message."""

    def __init__(
        self,
        host: FunctionHost,
        function: FunctionConfig,
        service: QueueServiceClient,
        options: QueueOptions,
        *,
        describe: MessageDescriber | None = None,
        lease_seconds: float = RECEIVE_VISIBILITY_TIMEOUT,
    ) -> None:
        if lease_seconds < 1:
            raise DevHostError("the queue message lease must be at least 1 second")
        self.lease_seconds = lease_seconds
        self.host = host
        self.describe = describe
        # Messages handled so far by outcome: "ok", "failed" (made visible again), "poisoned".
        self.outcomes: Counter[str] = Counter()
        self._outcomes_lock = threading.Lock()
        self.function = function.name
        self.options = options
        self.queue_name = function.queue_name
        self.poison_queue_name = f"{self.queue_name}-poison"
        self.binary = function.trigger.data_type == "binary"
        self._queue = service.get_queue_client(self.queue_name)
        self._poison = service.get_queue_client(self.poison_queue_name)
        self._backoff = PollingBackoff(options.max_polling_interval)
        self._stop = threading.Event()
        self._slots = threading.Condition()
        self._in_flight = 0
        self._executor: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._receive_failing = False

    @property
    def in_flight(self) -> int:
        """Messages received and not yet finished (handed to the worker, or waiting for it)."""
        return self._in_flight

    @property
    def queue_url(self) -> str:
        return str(self._queue.url)

    def start(self) -> None:
        for client in (self._queue, self._poison):
            _create_queue(client, self.function)
        self._stop.clear()
        self._executor = ThreadPoolExecutor(
            max_workers=self.options.batch_size + self.options.new_batch_threshold,
            thread_name_prefix=f"devhost-{self.function}",
        )
        self._thread = threading.Thread(target=self._run, name=f"devhost-poll-{self.function}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the messages already being processed."""
        self._stop.set()
        with self._slots:
            self._slots.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._thread, self._executor = None, None

    # ------------------------------------------------------------------------------------------ polling
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._slots:
                while self._in_flight > self.options.new_batch_threshold and not self._stop.is_set():
                    self._slots.wait()
            if self._stop.is_set():
                return
            messages = self._receive()
            if messages is None or not messages:
                self._stop.wait(self._backoff.next_delay())
                continue
            self._backoff.reset()
            for message in messages:
                with self._slots:
                    self._in_flight += 1
                if self._executor is None:
                    return
                self._executor.submit(self._process, message)

    def _receive(self) -> list[QueueMessage] | None:
        try:
            messages = list(
                self._queue.receive_messages(
                    max_messages=self.options.batch_size,
                    messages_per_page=self.options.batch_size,
                    visibility_timeout=int(self.lease_seconds),
                )
            )
        except AzureError as exc:
            if not self._receive_failing:
                log.warning(
                    "%s: cannot receive from queue '%s' (%s: %s); retrying",
                    self.function,
                    self.queue_name,
                    type(exc).__name__,
                    exc.message,
                )
                self._receive_failing = True
            return None
        if self._receive_failing:
            log.info("%s: receiving from queue '%s' again", self.function, self.queue_name)
            self._receive_failing = False
        return messages

    # ------------------------------------------------------------------------------------------ messages
    def _process(self, message: QueueMessage) -> None:
        lease = LeaseKeeper(self._queue, message, int(self.lease_seconds))
        try:
            self._handle(lease)
        except Exception:
            log.exception("%s: unexpected error handling message %s", self.function, message.id)
        finally:
            with self._slots:
                self._in_flight -= 1
                self._slots.notify_all()

    def _handle(self, lease: LeaseKeeper) -> None:
        message = lease.message
        started = time.perf_counter()
        dequeue_count = int(message.dequeue_count or 1)
        if dequeue_count > self.options.max_dequeue_count:
            self._finish(message, started, "skipped: dequeue count above maxDequeueCount", poison=True)
            return
        body = decode_body(str(message.content or ""), self.options.message_encoding, binary=self.binary)
        if body is None:
            self._finish(message, started, "failed: message is not valid base64", poison=True)
            return
        metadata = _trigger_metadata(message, dequeue_count)  # before the lease renewals change the pop receipt
        try:
            with lease:
                self.host.invoke_queue(self.function, body, metadata)
        except InvocationError:
            poison = dequeue_count >= self.options.max_dequeue_count
            self._finish(lease.message, started, "failed", poison=poison, detail=self._describe(body))
        else:
            self._finish(lease.message, started, "ok", poison=False, delete=True, detail=self._describe(body))

    def _describe(self, body: str | bytes) -> str | None:
        if self.describe is None:
            return None
        try:
            return self.describe(self.function, body)
        except Exception as exc:  # a console nicety must never break message handling
            log.debug("describing a %s message failed: %s", self.function, exc)
            return None

    def _finish(
        self,
        message: QueueMessage,
        started: float,
        outcome: str,
        *,
        poison: bool,
        delete: bool = False,
        detail: str | None = None,
    ) -> None:
        with self._outcomes_lock:
            self.outcomes["poisoned" if poison else "ok" if outcome == "ok" else "failed"] += 1
        suffix = ""
        try:
            if poison:
                self._poison.send_message(message.content)  # the original text, still encoded
                self._queue.delete_message(message)
                suffix = f", moved to {self.poison_queue_name}"
            elif delete:
                self._queue.delete_message(message)
            else:
                self._queue.update_message(message, visibility_timeout=int(self.options.visibility_timeout))
        except AzureError as exc:
            suffix = f" (queue update failed: {type(exc).__name__}: {exc.message})"
        elapsed = (time.perf_counter() - started) * 1000
        level = logging.INFO if outcome == "ok" else logging.WARNING
        log.log(
            level,
            "%s queue=%s id=%s dequeue=%s -> %s (%.0f ms)%s%s",
            self.function,
            self.queue_name,
            message.id,
            message.dequeue_count,
            outcome,
            elapsed,
            suffix,
            f": {detail}" if detail else "",
        )


def _create_queue(client: QueueClient, function: str) -> None:
    """Creates the queue if missing, as the WebJobs listener does; an unreachable account stops start-up."""
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    except AzureError as exc:
        raise DevHostError(
            f"Function '{function}': cannot create queue '{client.queue_name}' at "
            f"{client.primary_endpoint}: {type(exc).__name__}: {exc.message}"
        ) from None


def _trigger_metadata(message: QueueMessage, dequeue_count: int) -> QueueTriggerMetadata:
    """What the function sees of the message as it was received (the host's queue trigger metadata)."""
    return QueueTriggerMetadata(
        id=str(message.id),
        dequeue_count=dequeue_count,
        insertion_time=message.inserted_on,
        expiration_time=message.expires_on,
        next_visible_time=message.next_visible_on,
        pop_receipt=str(message.pop_receipt or ""),
    )


class LeaseKeeper:
    """Renews a received message's lease every half lease while its function runs (WebJobs' QueueProcessor does
    the same with its 10-minute lease); ``message`` carries the newest pop receipt for the delete or update."""

    def __init__(self, queue: QueueClient, message: QueueMessage, lease_seconds: int) -> None:
        self.message = message
        self.renewals = 0
        self._queue = queue
        self._lease = lease_seconds
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseKeeper:
        self._done.clear()
        self._thread = threading.Thread(target=self._renew, name="devhost-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _renew(self) -> None:
        while not self._done.wait(self._lease / 2):
            try:
                renewed = self._queue.update_message(self.message, visibility_timeout=self._lease)
            except AzureError as exc:
                log.warning("cannot renew the lease of message %s: %s", self.message.id, type(exc).__name__)
                continue
            self.message.pop_receipt = renewed.pop_receipt
            self.message.next_visible_on = renewed.next_visible_on
            self.renewals += 1
