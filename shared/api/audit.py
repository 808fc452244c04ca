"""The audit trail at the HTTP edge: the entry each answered request leaves (`write_entry`, called by the one
answer wrapper before the answer leaves), and `GET /api/audit` (function `GetAudit`, role Operations.Read).

Audited: every request to a route that changes something (create an upgrade, start or cancel a batch) that got
past authentication, whatever its outcome, and every 401 and 403. If the entry cannot be written, the answer
still goes out (the change, if any, has happened at Partner Center already) and one ERROR line carries the
entry's fields instead, so the log keeps the trail.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from shared.api.callers import ROUTES, RequestContext, action_of
from shared.auth.wiring import callers
from shared.batches.export import safe_cell
from shared.correlation import get_logger
from shared.errors import FieldError, ValidationFailed, where
from shared.services import Services

log = get_logger(__name__)

CSV_HEADER = (
    "time", "callerKind", "callerId", "callerAppId", "callerName", "action", "targets",
    "correlationId", "status", "problemType", "reason",
)  # fmt: skip
MAX_TOP = 1000
_FILTER = re.compile(r"[ -~]{1,200}")
_ROW_KEY = re.compile(r"[0-9]{13}-[0-9a-f]{12}")  # shared/audit/log.py row keys


def should_audit(context: RequestContext, status: int) -> bool:
    rule = ROUTES.get(context.function)
    return status in (401, 403) or bool(rule and rule.change and context.caller is not None)


def write_entry(app: Services, context: RequestContext, response: func.HttpResponse, correlation_id: str) -> None:
    entry = _entry(context, response, correlation_id)
    try:
        callers(app).audit.record(entry)
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


def audit_answer(app: Services, req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/audit`: JSON pages, or with `Accept: text/csv` the page as CSV (formula-safe cells)."""
    from shared.audit.log import AuditQuery  # noqa: PLC0415 - loads with the first audit read

    # the URL's own query too: a worker may drop blank values (`from=`), which must be a 400, not "no filter"
    params = dict(parse_qsl(urlsplit(req.url).query, keep_blank_values=True)) | dict(req.params)
    query = _parse(params, AuditQuery)
    trail = callers(app).audit
    trail.purge()
    entries, after = trail.query(query)
    token = base64.urlsafe_b64encode(after.encode()).decode().rstrip("=") if after else None
    if "text/csv" in (req.headers.get("accept") or "").lower():
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        if token:
            headers["X-Continuation-Token"] = token
        return func.HttpResponse(_csv(entries), status_code=200, headers=headers, mimetype="text/csv", charset="utf-8")
    body = json.dumps({"items": entries, "continuationToken": token})
    return func.HttpResponse(body, status_code=200, headers={"Cache-Control": "no-store"}, mimetype="application/json")


def _parse(params: Mapping[str, str], make: Any) -> Any:
    errors: list[FieldError] = []
    since, until = _time(params, "from", errors), _time(params, "to", errors)
    caller_id, action = params.get("callerId"), params.get("action")
    for name, value in (("callerId", caller_id), ("action", action)):
        if value is not None and not _FILTER.fullmatch(value):
            errors.append(FieldError(name, "must be 1-200 printable ASCII characters"))
    top_text = params.get("top", "100")
    if not top_text.isdigit() or not 1 <= int(top_text) <= MAX_TOP:
        errors.append(FieldError("top", f"must be a whole number from 1 to {MAX_TOP}"))
    after = _token(params.get("continuationToken"), errors)
    if errors:
        raise ValidationFailed(errors)
    return make(since, until, caller_id, action, int(top_text), after)


def _time(params: Mapping[str, str], name: str, errors: list[FieldError]) -> float | None:
    from datetime import datetime  # noqa: PLC0415

    value = params.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value.upper() else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        errors.append(FieldError(name, "must be an RFC 3339 date-time with a time zone, e.g. 2026-12-01T00:00:00Z"))
        return None
    return parsed.timestamp()


def _token(value: str | None, errors: list[FieldError]) -> str | None:
    if value is None:
        return None
    try:
        decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        decoded = ""
    if not _ROW_KEY.fullmatch(decoded):
        errors.append(FieldError("continuationToken", "is not a token this API handed out"))
        return None
    return decoded


def _csv(entries: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for entry in entries:
        caller, outcome = entry["caller"], entry["outcome"]
        row = (
            entry["time"], caller["kind"], caller["id"], caller["appId"], caller["name"], entry["action"],
            " ".join(entry["targets"]), entry["correlationId"], outcome["status"], outcome["problemType"],
            outcome["reason"],
        )  # fmt: skip
        writer.writerow([safe_cell(value) for value in row])
    return buffer.getvalue()
