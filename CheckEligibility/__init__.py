import azure.functions as func

from shared.api.fleet_http import customer_eligibility


def main(req: func.HttpRequest) -> func.HttpResponse:
    return customer_eligibility(req)
