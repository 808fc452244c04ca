import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.health import health  # on the first call: docs/design.md, Performance

    return health(req)
