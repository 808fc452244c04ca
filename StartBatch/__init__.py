import azure.functions as func

from shared.api.batches import start_batch


def main(req: func.HttpRequest) -> func.HttpResponse:
    return start_batch(req)
