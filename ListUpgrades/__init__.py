import azure.functions as func

from shared.api.fleet_http import list_upgrades


def main(req: func.HttpRequest) -> func.HttpResponse:
    return list_upgrades(req)
