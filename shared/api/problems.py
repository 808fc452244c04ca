"""RFC 9457 problem+json responses: the one place where errors become HTTP answers.

`type` is `urn:partner-center-upgrade:problem:<slug>` (docs/problems.md lists them); bodies carry
`correlationId`, `errors` for field-level validation failures and `partnerCenter` when Partner Center said no.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from shared.errors import TYPE_PREFIX, Unauthenticated, UpgradeError

__all__ = ["MEDIA_TYPE", "TYPE_PREFIX", "configuration_problem", "internal_problem", "problem_response"]
MEDIA_TYPE = "application/problem+json"


def problem_response(error: UpgradeError, correlation_id: str) -> func.HttpResponse:
    extra: dict[str, Any] = {}
    if error.errors:
        extra["errors"] = [{"field": e.field, "detail": e.detail} for e in error.errors]
    if error.partner_center:
        extra["partnerCenter"] = error.partner_center.as_json()
    response = _problem(
        error.status, error.slug, error.title, error.detail, correlation_id, extra=extra, retry_after=error.retry_after
    )
    if isinstance(error, Unauthenticated):
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def configuration_problem(correlation_id: str) -> func.HttpResponse:
    return _problem(
        500,
        "configuration-error",
        "The app is not configured correctly",
        "one or more app settings are missing or invalid; the operator finds the names in the logs",
        correlation_id,
    )


def internal_problem(correlation_id: str) -> func.HttpResponse:
    return _problem(
        500,
        "internal-error",
        "Internal error",
        "the request failed unexpectedly; quote the correlationId to the operator",
        correlation_id,
    )


def _problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    correlation_id: str,
    *,
    extra: dict[str, Any] | None = None,
    retry_after: int | None = None,
) -> func.HttpResponse:
    body = {
        "type": TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "correlationId": correlation_id,
        **(extra or {}),
    }
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return func.HttpResponse(json.dumps(body), status_code=status, headers=headers, mimetype=MEDIA_TYPE)
