import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.upgrades import get_upgrade_status  # on the first call: docs/design.md, Performance

    return get_upgrade_status(req)
