import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.follow import follow  # on the first call: docs/design.md, Performance

    return follow(req)
