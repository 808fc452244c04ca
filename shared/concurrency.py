"""The process's one small thread pool for storage calls that a request makes side by side (docs/design.md,
"An accepted upgrade is never lost" and the list index's "Consistency": what may run side by side, and what
must stay in order).

Built on first use and shared by every request of the instance (never a pool per request). Only request
threads wait on its futures; a task running in the pool never waits on another pool task, so the pool cannot
deadlock however many requests share it. Each task runs in a copy of the submitter's context, so its log
lines keep the request's correlation id.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

POOL_SIZE = 16  # also bounds a list page's point reads (docs/design.md, "Cost")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool  # noqa: PLW0603 - one small pool per process, built on first use
    current = _pool
    if current is not None:
        return current
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="storage")
        return _pool


def submit[T](call: Callable[[], T]) -> Future[T]:
    """Start `call` in the pool, in the caller's context; the caller must not be a pool task."""
    return _executor().submit(contextvars.copy_context().run, call)


def run_concurrently[T](calls: list[Callable[[], T]]) -> list[T]:
    """Run calls side by side, the last one in the calling thread (one thread hop less); wait for all, then
    re-raise the first failure in call order."""
    if len(calls) <= 1:
        return [call() for call in calls]
    futures = [submit(call) for call in calls[:-1]]
    try:
        last = calls[-1]()
    finally:
        done = [future.result() for future in futures]
    return [*done, last]
