import azure.functions as func

from shared.api.queue import track_status


def main(msg: func.QueueMessage) -> None:
    track_status(msg)
