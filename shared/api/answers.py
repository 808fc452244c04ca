"""The HTTP plumbing every route shares: the one answer wrapper (caller and role first, then the action; errors
as problem+json; the audit entry before the answer leaves; `x-correlation-id` on every answer), JSON answers, and
the base URL of the request being answered (every `Location` and `statusUri` is built for it)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.api.base_url import base_url
from shared.api.callers import RequestContext, guard, request_scope
from shared.api.problems import configuration_problem, internal_problem, problem_response
from shared.correlation import correlation_id_from, correlation_scope, get_logger
from shared.errors import UpgradeError, where
from shared.services import Services, services
from shared.settings import ConfigurationError

log = get_logger(__name__)

Action = Callable[[func.HttpRequest, str], func.HttpResponse]  # (request, correlation id) -> answer


def answer(req: func.HttpRequest, function: str, action: Action) -> func.HttpResponse:
    """The one HTTP answer wrapper: caller and role first (shared/api/callers.py), then the action; errors become
    problem+json; the audit entry (shared/api/audit_entries.py) is written before the answer leaves."""
    correlation_id = correlation_id_from(req.headers.get("x-correlation-id"))
    context = RequestContext(function)
    with correlation_scope(correlation_id), request_scope(context):
        started = time.monotonic()
        try:
            guard(req, context, services())
            response = action(req, correlation_id)
        except UpgradeError as error:
            response = problem_response(error, correlation_id)
        except ConfigurationError as error:
            log.error("%s", error)
            response = configuration_problem(correlation_id)
        except Exception as error:  # the single place that turns the unexpected into a clean 500
            log.error("unexpected %s in %s at %s", type(error).__name__, function, where(error))
            response = internal_problem(correlation_id)
        response.headers["x-correlation-id"] = correlation_id
        _audit(context, response, correlation_id)
        log.info(
            "%s %s -> %d in %.0f ms", function, req.method, response.status_code, (time.monotonic() - started) * 1000
        )
        return response


def _audit(context: RequestContext, response: func.HttpResponse, correlation_id: str) -> None:
    from shared.api import audit_entries as audit  # noqa: PLC0415 - loads with the first audited answer

    if audit.should_audit(context, response.status_code):
        if context.reason:
            log.warning("%s refused: %s", context.function, context.reason)
        audit.write_entry(services(), context, response, correlation_id)


def json_answer(status: int, body: dict[str, Any], headers: dict[str, str]) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, headers=headers, mimetype="application/json")


def request_base(req: func.HttpRequest, svc: Services) -> str:
    return base_url(req.url, req.headers.get("host"), svc.settings.public_base_url)


def without_callback_url(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as a key-less caller sees it: callback state and attempts, `callback.url` null. A Power
    Automate or Logic Apps trigger URL carries its SAS signature (`sig=`) in the query: whoever holds a follow
    link must not be able to trigger the caller's flow."""
    return {**resource, "callback": {**resource["callback"], "url": None}}
