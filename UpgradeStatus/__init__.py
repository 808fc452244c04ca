import azure.functions as func


def main(msg: func.QueueMessage) -> None:
    from shared.api.status_queue import track_status  # on the first call: docs/design.md, Performance

    track_status(msg)
