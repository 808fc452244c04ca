"""Always raises: the host must answer 500 and print one line, no stack trace."""

import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError(f"kaboom on {req.method}")
