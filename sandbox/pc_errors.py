"""Partner Center's answers when it refuses a call (docs/partner-center.md, "Error codes" and "Throttling").

Most errors have the body `{"code", "description", "data", "source"}`; a 429 has the other documented shape
`{"statusCode": 429, "message": "Rate limit is exceeded. Try again in N seconds."}` and a `Retry-After`.
"""

from __future__ import annotations

from sandbox.server import Response

SOURCE = "PartnerFD"
PARTNER_CENTER_REALM = "https://api.partnercenter.microsoft.com"
NO_TOKEN_DESCRIPTION = "Partner token is missing in the request context"
MFA_REQUIRED_CODE = "900421"
MFA_REQUIRED_DESCRIPTION = (
    "Multi-factor authentication (MFA) is required: the access token has no MFA claim (amr does not contain "
    "'mfa'). App+User calls to Partner Center need a user who signed in with MFA."
)


def error(status: int, code: str, description: str) -> Response:
    return Response(status, {"code": code, "description": description, "data": [], "source": SOURCE})


def unauthorized(
    code: str = "800001", description: str = "Partner token is missing in the request context"
) -> Response:
    """401 with Partner Center's error body and its `WWW-Authenticate: OAuth realm=...` header."""
    response = error(401, code, description)
    response.headers["WWW-Authenticate"] = f'OAuth realm="{PARTNER_CENTER_REALM}"'
    return response


def mfa_required() -> Response:
    """What Partner Center answers an App+User token without MFA (since 2026-04-01): 401, code 900421."""
    return unauthorized(MFA_REQUIRED_CODE, MFA_REQUIRED_DESCRIPTION)


def rate_limit_body(retry_after: int | None) -> dict[str, object]:
    return {"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {retry_after} seconds."}


def rate_limited(retry_after: int) -> Response:
    return Response(429, rate_limit_body(retry_after), {"Retry-After": str(retry_after)})
