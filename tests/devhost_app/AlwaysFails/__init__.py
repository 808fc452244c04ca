"""Notes each attempt (<TOY_RECORD_DIR>/fail-<id>.log gets the dequeue count) and then fails."""

import os
from pathlib import Path

import azure.functions as func


def main(msg: func.QueueMessage) -> None:
    attempts = Path(os.environ["TOY_RECORD_DIR"]) / f"fail-{msg.id}.log"
    with attempts.open("a", encoding="utf-8") as fh:
        fh.write(f"{msg.dequeue_count}\n")
    raise ValueError(f"cannot handle {msg.get_body().decode('utf-8')}")
