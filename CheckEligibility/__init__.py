import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.eligibility import customer_eligibility  # on the first call: docs/design.md, Performance

    return customer_eligibility(req)
