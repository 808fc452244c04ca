"""The entry each answered request leaves in the audit trail (`write_entry`, called by the one answer wrapper,
shared/api/answers.py, before the answer leaves). `GET /api/audit` is shared/api/audit.py.

Audited: every request to a route that changes something (create an upgrade, start or cancel a batch) that got
past authentication, whatever its outcome, and every 401 and 403. If the entry cannot be written, the answer
still goes out (the change, if any, has happened at Partner Center already) and one ERROR line carries the
entry's fields instead, so the log keeps the trail.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from shared.api.callers import ROUTES, RequestContext, action_of
from shared.auth.wiring import callers
from shared.correlation import get_logger
from shared.errors import where
from shared.services import Services

log = get_logger(__name__)


def should_audit(context: RequestContext, status: int) -> bool:
    rule = ROUTES.get(context.function)
    return status in (401, 403) or bool(rule and rule.change and context.caller is not None)


def write_entry(svc: Services, context: RequestContext, response: func.HttpResponse, correlation_id: str) -> None:
    entry = _entry(context, response, correlation_id)
    try:
        callers(svc).audit.record(entry)
    except Exception as error:  # the answer must not be lost to an audit failure: the log keeps the entry
        log.error(
            "audit entry not written (%s at %s): %s", type(error).__name__, where(error), json.dumps(entry, default=str)
        )


def _entry(context: RequestContext, response: func.HttpResponse, correlation_id: str) -> dict[str, Any]:
    caller = context.caller
    problem_type = None
    if response.mimetype == "application/problem+json":
        problem_type = json.loads(response.get_body()).get("type")
    return {
        "callerKind": caller.kind if caller else context.presented,
        "callerId": caller.id if caller else None,
        "callerAppId": caller.app_id if caller else None,
        "callerName": caller.name if caller else None,
        "action": action_of(context.function),
        "targets": context.targets,
        "correlationId": correlation_id,
        "status": response.status_code,
        "problemType": problem_type,
        "reason": context.reason,
    }
