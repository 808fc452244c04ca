"""Batch work runs on a small pool of its own, never on the worker's thread pool that HTTP requests need.

Microsoft's Python worker runs every sync function on one thread pool (`PYTHON_THREADPOOL_THREAD_COUNT`; unset, the
executor's default min(32, cores + 4): 6 threads on 2 cores), and the host hands a queue function up to
`batchSize + newBatchThreshold` messages at once (24 with host.json's 16). Batch messages take seconds each (up to
twenty customers, at a pace shared with every instance), so as sync functions they filled that pool and every HTTP
request waited for a thread: a 300-customer batch made `POST /api/upgrades` take 19-23 s.

`RunBatch` is therefore an `async` function: its invocation awaits the work on this pool, so a batch message waiting
for a thread holds none of the worker's, and HTTP functions keep the whole worker pool. The work itself waits for
its pace at most `pacing.MAX_WAIT_PER_MESSAGE` seconds and otherwise goes back to the queue with a visibility delay
(shared/batches/pacing.py), so a message also holds a thread of this pool only briefly.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

BATCH_THREADS = 2  # batch calls are paced below Partner Center's limit: two threads keep up with 300 calls/min

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def batch_pool() -> ThreadPoolExecutor:
    global _pool  # noqa: PLW0603 - one pool per process, built on first use
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=BATCH_THREADS, thread_name_prefix="batch-work")
        return _pool


async def on_batch_threads(work: Callable[[], None]) -> None:
    """Run `work` on the batch pool and wait for it without holding a thread (the caller's context goes along:
    the worker's invocation id, so its log lines stay attributed to the invocation)."""
    context = contextvars.copy_context()
    await asyncio.get_running_loop().run_in_executor(batch_pool(), context.run, work)
