"""Parking a queue message that can never succeed on its `<queue>-poison` queue, for an operator.

The copy is the message's body exactly as it came: Base64 of the original bytes (what the Functions host
itself puts there), so a body that is not valid UTF-8 is kept, not turned into replacement characters. It is
kept until an operator deletes it (`time_to_live=-1`): README "Runbook", "Poison messages".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.storage.clients import EnsuredResource, queue_client

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.queue import QueueClient

    from shared.settings import StorageSettings


class PoisonQueue:
    def __init__(self, queue: QueueClient) -> None:
        """`queue` must be a binary client (`queue_client(..., binary=True)`): it sends bytes as Base64."""
        self._queue = queue
        self._ensured = EnsuredResource("queue", queue.queue_name, queue.create_queue)

    def park(self, body: bytes) -> None:
        self._ensured.run("move a message to the poison queue", lambda: self._queue.send_message(body, time_to_live=-1))


def poison_queue(storage: StorageSettings, name: str, credential: Callable[[], TokenCredential]) -> PoisonQueue:
    """The poison queue `name` on a binary client."""
    return PoisonQueue(queue_client(storage, name, credential, binary=True))
