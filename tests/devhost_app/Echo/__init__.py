"""Echoes what the worker handed the function, with a status chosen by ?status= and custom headers."""

import base64
import json
import logging

import azure.functions as func

log = logging.getLogger(__name__)


def main(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    log.info("echo %s/%s", req.route_params.get("category"), req.route_params.get("id"))
    payload = {
        "function": context.function_name,
        "invocation_id": context.invocation_id,
        "trace_parent": context.trace_context.trace_parent,
        "method": req.method,
        "url": req.url,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "headers": dict(req.headers),
        "body_b64": base64.b64encode(req.get_body()).decode("ascii"),
    }
    return func.HttpResponse(
        json.dumps(payload),
        status_code=int(req.params.get("status", "200")),
        mimetype="application/json",
        headers={"X-Echo-Function": context.function_name},
    )
