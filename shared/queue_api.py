"""The UpgradeStatus queue trigger: parse the message, run one status check, let the host retry failures."""

from __future__ import annotations

import time

import azure.functions as func

from shared.correlation import correlation_id_from, correlation_scope, get_logger
from shared.errors import RetryLater, UpgradeError
from shared.queue_message import InvalidMessage, TrackMessage
from shared.services import services

log = get_logger(__name__)


def track_status(msg: func.QueueMessage) -> None:
    text = msg.get_body().decode("utf-8", errors="replace")
    try:
        message = TrackMessage.parse(text)
    except InvalidMessage as error:
        with correlation_scope(correlation_id_from(None)):
            log.error(
                "UpgradeStatus message %s does not follow the queue contract (%s); moving it to the poison queue",
                msg.id,
                error,
            )
            services().queue.poison(text)
        return
    with correlation_scope(message.correlation_id or correlation_id_from(None)):
        started = time.monotonic()
        log.info("UpgradeStatus message %s (dequeue %s) for upgrade %s", msg.id, msg.dequeue_count, message.upgrade_id)
        try:
            services().tracker.handle(message)
        except InvalidMessage as error:
            log.error("UpgradeStatus message %s refused (%s); moving it to the poison queue", msg.id, error)
            services().queue.poison(text)
        except (RetryLater, UpgradeError) as error:
            detail = error.detail if isinstance(error, UpgradeError) else str(error)
            log.warning("UpgradeStatus message %s will be retried by the host: %s", msg.id, detail)
            raise RetryLater(detail) from None
        log.info("UpgradeStatus message %s done in %.0f ms", msg.id, (time.monotonic() - started) * 1000)
