"""An HTTP trigger annotated as a queue message."""

import azure.functions as func


def main(req: func.QueueMessage) -> func.HttpResponse:
    return func.HttpResponse("never loaded")
