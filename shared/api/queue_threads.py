"""Queue work runs on small pools of its own, never on the worker's thread pool that HTTP requests need.

Microsoft's Python worker runs every sync function on one thread pool (`PYTHON_THREADPOOL_THREAD_COUNT`; unset, the
executor's default min(32, cores + 4): 6 threads on 2 cores), and the host hands a queue function up to
`batchSize + newBatchThreshold` messages at once (24 with host.json's 16). As sync functions, batch messages (up to
twenty customers each, at a pace shared with every instance) and a queue of status checks filled that pool, and
every HTTP request waited for a thread: a 300-customer batch made `POST /api/upgrades` take 19-23 s.

`RunBatch` and `UpgradeStatus` are therefore `async` functions: an invocation awaits its work on its queue's pool
here, so a message waiting for a thread holds none of the worker's, and HTTP functions keep the whole worker pool.
Batch work also waits for its pace at most `pacing.MAX_WAIT_PER_MESSAGE` seconds per message and otherwise goes
back to the queue with a visibility delay (shared/batches/pacing.py), so a message holds a thread only briefly.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# Threads per queue and instance. Batch calls are paced below Partner Center's limit for all instances together:
# two threads keep up with 300 calls/min. A status check is one Partner Center call and a few storage calls.
POOL_THREADS = {"batch": 2, "status": 4}
BATCH_THREADS = POOL_THREADS["batch"]

_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def queue_pool(queue: str) -> ThreadPoolExecutor:
    """The pool of one queue's work (built on first use, one per process)."""
    with _lock:
        if queue not in _pools:
            _pools[queue] = ThreadPoolExecutor(max_workers=POOL_THREADS[queue], thread_name_prefix=f"{queue}-work")
        return _pools[queue]


async def on_queue_threads(queue: str, work: Callable[[], None]) -> None:
    """Run `work` on `queue`'s pool and wait for it without holding a thread (the caller's context goes along:
    the worker's invocation id, so its log lines stay attributed to the invocation)."""
    context = contextvars.copy_context()
    await asyncio.get_running_loop().run_in_executor(queue_pool(queue), context.run, work)
