"""`GET /api/audit` (function `GetAudit`, role Operations.Read): the audit trail newest first, as JSON pages or CSV
(formula-safe cells). The entries are written by shared/api/audit_entries.py."""

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

from shared.api.answers import answer
from shared.auth.wiring import callers
from shared.batches.export import safe_cell
from shared.correlation import get_logger
from shared.errors import FieldError, ValidationFailed
from shared.services import Services, services

log = get_logger(__name__)

CSV_HEADER = (
    "time", "callerKind", "callerId", "callerAppId", "callerName", "action", "targets",
    "correlationId", "status", "problemType", "reason",
)  # fmt: skip
MAX_TOP = 1000
_FILTER = re.compile(r"[ -~]{1,200}")
_ROW_KEY = re.compile(r"[0-9]{13}-[0-9a-f]{12}")  # shared/audit/log.py row keys


def get_audit(req: func.HttpRequest) -> func.HttpResponse:
    return answer(req, "GetAudit", lambda request, _: audit_answer(services(), request))


def audit_answer(svc: Services, req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/audit`: JSON pages, or with `Accept: text/csv` the page as CSV (formula-safe cells)."""
    from shared.audit.log import AuditQuery  # noqa: PLC0415 - loads with the first audit read

    # the URL's own query too: a worker may drop blank values (`from=`), which must be a 400, not "no filter"
    params = dict(parse_qsl(urlsplit(req.url).query, keep_blank_values=True)) | dict(req.params)
    query = _parse(params, AuditQuery)
    trail = callers(svc).audit
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
