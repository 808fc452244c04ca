import azure.functions as func

from shared.api.http import follow


def main(req: func.HttpRequest) -> func.HttpResponse:
    return follow(req)
