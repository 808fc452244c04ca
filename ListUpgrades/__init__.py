import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.fleet_http import list_upgrades  # on the first call: docs/design.md, Performance

    return list_upgrades(req)
