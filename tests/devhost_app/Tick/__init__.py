"""Records each timer run as <TOY_RECORD_DIR>/tick-<invocation id>.json (what func.TimerRequest held)."""

import json
import os
from pathlib import Path

import azure.functions as func


def main(timer: func.TimerRequest, context: func.Context) -> None:
    record = {"past_due": timer.past_due, "schedule_status": timer.schedule_status, "schedule": timer.schedule}
    folder = Path(os.environ["TOY_RECORD_DIR"])
    partial = folder / f"{context.invocation_id}.partial"
    partial.write_text(json.dumps(record), encoding="utf-8")
    partial.replace(folder / f"tick-{context.invocation_id}.json")  # readers never see half a file
