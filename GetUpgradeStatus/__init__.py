import azure.functions as func

from shared.api.http import get_upgrade_status


def main(req: func.HttpRequest) -> func.HttpResponse:
    return get_upgrade_status(req)
