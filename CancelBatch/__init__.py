import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.batches import cancel_batch  # on the first call: docs/design.md, Performance

    return cancel_batch(req)
