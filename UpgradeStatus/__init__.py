import azure.functions as func


async def main(msg: func.QueueMessage) -> None:
    # async: the check runs on the status pool, never on the worker's threads that HTTP requests need
    from shared.api.queue_threads import on_queue_threads
    from shared.api.status_queue import track_status  # on the first call: docs/design.md, Performance

    await on_queue_threads("status", lambda: track_status(msg))
