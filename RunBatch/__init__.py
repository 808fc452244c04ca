import azure.functions as func


async def main(msg: func.QueueMessage) -> None:
    # async: the work runs on the batch pool, never on the worker's threads that HTTP requests need
    from shared.api.batch_queue import run_batch  # on the first call: docs/design.md, Performance
    from shared.api.queue_threads import on_queue_threads

    await on_queue_threads("batch", lambda: run_batch(msg))
