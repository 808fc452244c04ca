"""The UpgradeStatus queue trigger: parse the message, run one status check, let the host retry failures.

Whatever goes wrong leaves here as one `RetryLater` with a one-line reason (the host retries the message and
finally moves it to `<queue>-poison`), so the worker never logs a stack trace of ours. A message that breaks
the queue contract can never succeed: it goes to the poison queue at once instead of being retried.
"""

from __future__ import annotations

import azure.functions as func

from shared.api.queue_runner import run_message
from shared.correlation import correlation_id_from, correlation_scope, get_logger
from shared.errors import RetryLater, UpgradeError
from shared.services import services
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


def _refuse(body: bytes, message_id: str, error: InvalidMessage) -> None:
    """A message that breaks the queue contract can never succeed: park it, as it came, in the poison queue."""
    log.error("UpgradeStatus message %s refused (%s); moving it to the poison queue", message_id, error)
    try:
        services().queue.poison(body)
    except UpgradeError as failure:  # keep it on the queue: the host retries and finally poisons it itself
        raise RetryLater(f"message {message_id} could not be moved to the poison queue: {failure.detail}") from None
