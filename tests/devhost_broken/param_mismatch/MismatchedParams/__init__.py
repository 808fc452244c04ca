"""function.json names the trigger parameter "req"; main() calls it "request"."""

import azure.functions as func


def main(request: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("never loaded")
