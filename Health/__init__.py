import azure.functions as func

from shared.api.health import health


def main(req: func.HttpRequest) -> func.HttpResponse:
    return health(req)
