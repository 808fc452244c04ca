import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.batches import start_batch  # on the first call: docs/design.md, Performance

    return start_batch(req)
