import azure.functions as func

from shared.api.batches import get_batch


def main(req: func.HttpRequest) -> func.HttpResponse:
    return get_batch(req)
