"""The UpgradeStatus queue trigger: parse the message, run one status check, let the host retry failures.

Whatever goes wrong leaves here as one `RetryLater` with a one-line reason (the host retries the message and
finally moves it to `<queue>-poison`), so the worker never logs a stack trace of ours. A message that breaks
the queue contract can never succeed: it goes to the poison queue at once instead of being retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import azure.functions as func

from shared.correlation import correlation_id_from, correlation_scope, get_logger
from shared.errors import RetryLater, UpgradeError, where
from shared.services import services
from shared.settings import ConfigurationError
from shared.storage.status_message import InvalidMessage, TrackMessage

log = get_logger(__name__)


def track_status(msg: func.QueueMessage) -> None:
    body = msg.get_body()
    text = body.decode("utf-8", errors="replace")  # for parsing only: a parked copy keeps the original bytes
    message_id = msg.id or "-"
    try:
        message = TrackMessage.parse(text)
    except InvalidMessage as error:
        with correlation_scope(correlation_id_from(None)):
            _refuse(body, message_id, error)
        return
    with correlation_scope(message.correlation_id or correlation_id_from(None)):
        log.info(
            "UpgradeStatus message %s (dequeue %s) for upgrade %s", message_id, msg.dequeue_count, message.upgrade_id
        )

        def work() -> None:
            try:
                # lazy: the tracker and its SDKs load with the first message
                from shared.tracking.on_message import handle_message  # noqa: PLC0415

                handle_message(services().tracker, message)
            except InvalidMessage as error:
                _refuse(body, message_id, error)

        run_message("UpgradeStatus", message_id, work)


def run_message(function: str, message_id: str, work: Callable[[], None]) -> None:
    """Run one queue message's work. Whatever goes wrong leaves as one `RetryLater` with a one-line reason (the
    host retries the message, then moves it to `<queue>-poison`): the worker never logs a stack trace of ours."""
    started = time.monotonic()
    try:
        work()
    except (RetryLater, UpgradeError) as error:
        detail = error.detail if isinstance(error, UpgradeError) else str(error)
        log.warning("%s message %s will be retried by the host: %s", function, message_id, detail)
        raise RetryLater(detail) from None
    except ConfigurationError as error:
        log.error("%s", error)
        raise RetryLater("the app settings are invalid") from None
    except Exception as error:  # a bug: one line for the operator; the message is retried, then kept in poison
        log.error("unexpected %s in %s at %s", type(error).__name__, function, where(error))
        raise RetryLater(f"unexpected {type(error).__name__}") from None
    log.info("%s message %s done in %.0f ms", function, message_id, (time.monotonic() - started) * 1000)


def _refuse(body: bytes, message_id: str, error: InvalidMessage) -> None:
    """A message that breaks the queue contract can never succeed: park it, as it came, in the poison queue."""
    log.error("UpgradeStatus message %s refused (%s); moving it to the poison queue", message_id, error)
    try:
        services().queue.poison(body)
    except UpgradeError as failure:  # keep it on the queue: the host retries and finally poisons it itself
        raise RetryLater(f"message {message_id} could not be moved to the poison queue: {failure.detail}") from None
