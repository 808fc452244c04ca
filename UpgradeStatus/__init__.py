import azure.functions as func

from shared.queue_api import track_status


def main(msg: func.QueueMessage) -> None:
    track_status(msg)
