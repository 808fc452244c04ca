import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.audit import get_audit  # on the first call: docs/design.md, Performance

    return get_audit(req)
