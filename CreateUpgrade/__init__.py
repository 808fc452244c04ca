import azure.functions as func

from shared.api.http import create_upgrade


def main(req: func.HttpRequest) -> func.HttpResponse:
    return create_upgrade(req)
