"""An authLevel admin route: only the master key opens it when keys are enforced."""

import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"admin {req.method}", mimetype="text/plain")
