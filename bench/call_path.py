"""The call order of one request through the app's own modules: `python -m bench.call_path`.

For docs/design.md "Follow one request": a warm `POST /api/upgrades` to its 202, one status-check message, and one
batch message (a report of one customer), each run for real against Azurite and the sandbox. A profile hook on
every thread records the first call into each module of `shared/` and the function folders; the output lists
them in that order, with the function first entered, and counts them (the issue's "modules per request path").
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from azure.functions.queue import QueueMessage

from bench.stack import ROOT, Stack, create_request, local_stack

APP_DIRS = ("shared",)


def _module_of(filename: str) -> str | None:
    path = Path(filename)
    try:
        relative = path.resolve().relative_to(ROOT)
    except ValueError:
        return None
    parts = relative.with_suffix("").parts
    if not parts or (parts[0] not in APP_DIRS and not (parts[0][:1].isupper() and len(parts) == 2)):
        return None
    return ".".join(parts).removesuffix(".__init__")


def trace(work: Callable[[], Any]) -> list[tuple[str, str]]:
    """(module, first function) in the order `work` first entered each app module, on any thread."""
    seen: dict[str, str] = {}
    lock = threading.Lock()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event != "call":
            return
        module = _module_of(frame.f_code.co_filename)
        if module is not None and module not in seen:
            with lock:
                seen.setdefault(module, frame.f_code.co_name)

    threading.setprofile_all_threads(profile)
    try:
        work()
    finally:
        threading.setprofile_all_threads(None)
    return list(seen.items())


def paths(stack: Stack) -> dict[str, list[tuple[str, str]]]:
    import CreateUpgrade
    import RunBatch
    import StartBatch
    import UpgradeStatus
    from localrun.virtual_queues import call_queue_function

    stack.fresh_app()
    assert CreateUpgrade.main(create_request()).status_code == 202  # warm: secrets, token, connections, tables
    found: dict[str, list[tuple[str, str]]] = {}
    found["POST /api/upgrades (warm, to its 202)"] = trace(
        lambda: CreateUpgrade.main(create_request()).status_code == 202
    )
    queue = stack.env["UPGRADE_STATUS_QUEUE"]
    message = stack.azurite.put_messages(queue)[-1].text
    check = QueueMessage(id="trace", body=message.encode(), dequeue_count=1)  # type: ignore[no-untyped-call]
    found["one status-check message (UpgradeStatus)"] = trace(lambda: call_queue_function(UpgradeStatus.main, check))
    batch_queue = stack.env["UPGRADE_BATCH_QUEUE"]
    request = create_request(str(uuid.uuid4()))
    batch = request.__class__(
        "POST", "https://bench.example/api/batches", headers=dict(request.headers),
        body=b'{"productFamily": "Azure", "mode": "report", "customerIds": ["%s"]}' % str(uuid.uuid4()).encode(),
    )  # fmt: skip
    assert StartBatch.main(batch).status_code == 202
    plan = stack.azurite.put_messages(batch_queue)[-1].text
    call_queue_function(RunBatch.main, QueueMessage(id="plan", body=plan.encode(), dequeue_count=1))  # type: ignore[no-untyped-call]
    work = stack.azurite.put_messages(batch_queue)[-1].text
    found["one batch message (RunBatch, report of one customer)"] = trace(
        lambda: call_queue_function(RunBatch.main, QueueMessage(id="work", body=work.encode(), dequeue_count=1))  # type: ignore[no-untyped-call]
    )
    return found


def main() -> None:
    with local_stack() as stack:
        stack.record_storage_wire()
        for name, modules in paths(stack).items():
            print(f"\n{name}: {len(modules)} modules")
            for index, (module, function) in enumerate(modules, 1):
                print(f"  {index:2d}. {module}  ({function})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
