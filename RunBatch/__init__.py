import azure.functions as func


def main(msg: func.QueueMessage) -> None:
    from shared.api.batches import run_batch  # on the first call: docs/design.md, Performance

    run_batch(msg)
