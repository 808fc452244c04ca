import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.batches import get_batch_customers  # on the first call: docs/design.md, Performance

    return get_batch_customers(req)
