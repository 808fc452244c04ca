"""An async function on a route with one parameter."""

import azure.functions as func


async def main(req: func.HttpRequest) -> func.HttpResponse:
    item_id = req.route_params["id"]
    if req.method == "DELETE":
        return func.HttpResponse(status_code=204)
    return func.HttpResponse(f"item {item_id}", mimetype="text/plain")
