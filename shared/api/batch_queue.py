"""The RunBatch queue trigger: parse the batch message and run it (shared/batches/worker.py); a message that
breaks the queue contract is parked in the poison queue at once. `RunBatch/__init__.py` awaits this on the batch
pool (shared/api/queue_threads.py), never on the worker's threads."""

from __future__ import annotations

import azure.functions as func

from shared.api.queue_runner import run_message
from shared.correlation import correlation_id_from, correlation_scope, get_logger
from shared.services import services

log = get_logger(__name__)


def run_batch(msg: func.QueueMessage) -> None:
    """The RunBatch queue trigger: like UpgradeStatus, failures leave as one `RetryLater` line."""
    from shared.batches.messages import BatchMessage, InvalidBatchMessage  # noqa: PLC0415 - with the storage SDK

    body = msg.get_body()
    text = body.decode("utf-8", errors="replace")  # for parsing only: a parked copy keeps the original bytes
    message_id = msg.id or "-"
    with correlation_scope(correlation_id_from(None)):
        try:
            message = BatchMessage.parse(text)
        except InvalidBatchMessage as error:
            log.error("RunBatch message %s refused (%s); moving it to the poison queue", message_id, error)
            services().batch_poison.park(body)
            return
        log.info("RunBatch message %s (dequeue %s): %s of batch %s", message_id, msg.dequeue_count, message.kind,
                 message.batch_id)  # fmt: skip
        run_message("RunBatch", message_id, lambda: services().batch_worker.handle(message, msg.dequeue_count or 1))
