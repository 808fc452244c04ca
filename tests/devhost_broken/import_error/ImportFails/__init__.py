"""Imports a module that does not exist."""

import azure.functions as func
import devhost_no_such_module


def main(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(devhost_no_such_module))
