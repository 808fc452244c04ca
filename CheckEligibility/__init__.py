import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.fleet_http import customer_eligibility  # on the first call: docs/design.md, Performance

    return customer_eligibility(req)
