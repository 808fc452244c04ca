import azure.functions as func

from shared.api.batches import run_batch


def main(msg: func.QueueMessage) -> None:
    run_batch(msg)
