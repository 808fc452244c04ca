"""The status-check queue: scheduling checks with a visibility delay, and parking bad messages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.correlation import get_logger
from shared.storage.clients import EnsuredResource
from shared.storage.status_message import TrackMessage

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

    from shared.storage.poison_queue import PoisonQueue

log = get_logger(__name__)

MAX_VISIBILITY_SECONDS = 7 * 24 * 3600 - 60  # Azure Queue Storage allows at most 7 days


class StatusQueue:
    def __init__(self, queue: QueueClient, poison: PoisonQueue) -> None:
        self._queue = queue
        self._poison = poison
        self._ensured = EnsuredResource("queue", queue.queue_name, queue.create_queue)

    def schedule(self, message: TrackMessage, delay_seconds: int) -> None:
        """Make `message` visible to UpgradeStatus after `delay_seconds` (no hot loop, no sleeping)."""
        delay = max(0, min(int(delay_seconds), MAX_VISIBILITY_SECONDS))
        self._ensured.run(
            "schedule a status check",
            lambda: self._queue.send_message(message.to_json(), visibility_timeout=delay, time_to_live=-1),
        )
        log.info(
            "scheduled status check of upgrade %s in %d s (attempt %s)", message.upgrade_id, delay, message.attempt
        )

    def poison(self, body: bytes) -> None:
        """Park a message that can never succeed, as it came, where the host parks failed ones, for an operator."""
        self._poison.park(body)
