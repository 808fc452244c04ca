import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.upgrades import create_upgrade  # on the first call: docs/design.md, Performance

    return create_upgrade(req)
