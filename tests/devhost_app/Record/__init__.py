"""Records each message it gets (body + trigger metadata) as <TOY_RECORD_DIR>/<message id>.json."""

import json
import logging
import os
from datetime import datetime
from pathlib import Path

import azure.functions as func

log = logging.getLogger(__name__)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def main(msg: func.QueueMessage, context: func.Context) -> None:
    log.info("recording message %s", msg.id)
    record = {
        "function": context.function_name,
        "body": msg.get_body().decode("utf-8"),
        "id": msg.id,
        "dequeue_count": msg.dequeue_count,
        "pop_receipt": msg.pop_receipt,
        "insertion_time": _iso(msg.insertion_time),
        "expiration_time": _iso(msg.expiration_time),
        "time_next_visible": _iso(msg.time_next_visible),
    }
    target = Path(os.environ["TOY_RECORD_DIR"]) / f"{msg.id}.json"
    target.write_text(json.dumps(record), encoding="utf-8")
