"""The Entra ID (AADSTS) errors the Entra stand-in answers with, and Entra's error body shape.

Texts follow what Entra sends for each code; the body is Entra's: `error`, `error_description`
(`AADSTSnnnn: ...` plus trace id, correlation id and timestamp), `error_codes`, `timestamp`, `trace_id`,
`correlation_id`, `error_uri`, and `suberror` where Entra sends one.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

PARTNER_CENTER_APP_ID = "fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd"  # how Entra names Partner Center in MFA errors


class EntraError(Exception):
    def __init__(self, status: int, error: str, code: int, description: str, suberror: str | None = None) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description
        self.suberror = suberror


def body(error: EntraError, now: float) -> dict[str, Any]:
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    timestamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(now))
    answer: dict[str, Any] = {
        "error": error.error,
        "error_description": (
            f"AADSTS{error.code}: {error.description}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}"
        ),
        "error_codes": [error.code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={error.code}",
    }
    if error.suberror:
        answer["suberror"] = error.suberror
    return answer


# --- requests Entra cannot read


def missing(parameter: str) -> EntraError:
    message = f"The request body must contain the following parameter: '{parameter}'."
    return EntraError(400, "invalid_request", 900144, message)


def unknown_tenant(tenant: str) -> EntraError:
    message = (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into "
        "the correct cloud."
    )
    return EntraError(400, "invalid_tenant", 90002, message)


def unsupported_grant_type(grant_type: str) -> EntraError:
    message = f"The app requested an unsupported grant type '{grant_type}'."
    return EntraError(400, "unsupported_grant_type", 70003, message)


def invalid_scope(scope: str) -> EntraError:
    return EntraError(400, "invalid_scope", 70011, f"The provided value for scope {scope} is not valid.")


def several_resources(scope: str) -> EntraError:
    message = (
        "Provided value for the input parameter scope is not valid because it contains more than one resource. "
        f"Scope {scope} is not valid."
    )
    return EntraError(400, "invalid_scope", 28000, message)


def transient(status: int) -> EntraError:
    error = "temporarily_unavailable" if status >= 500 or status == 429 else "invalid_request"
    return EntraError(status, error, 90033, "A transient error has occurred. Please try again.")


def not_found(path: str) -> EntraError:
    return EntraError(404, "invalid_request", 90010, f"The path {path} is not supported.")


# --- the client application


def unknown_app(client_id: str, tenant_id: str) -> EntraError:
    message = (
        f"Application with identifier '{client_id}' was not found in the directory '{tenant_id}'. This can "
        "happen if the application has not been installed by the administrator of the tenant or consented to by "
        "any user in the tenant. You may have sent your authentication request to the wrong tenant."
    )
    return EntraError(400, "unauthorized_client", 700016, message)


def missing_client_secret() -> EntraError:
    message = "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
    return EntraError(401, "invalid_client", 7000218, message)


def invalid_client_secret(client_id: str) -> EntraError:
    message = (
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
        f"not the client secret ID, for a secret added to app '{client_id}'."
    )
    return EntraError(401, "invalid_client", 7000215, message)


def redirect_uri_mismatch(redirect_uri: str, client_id: str) -> EntraError:
    message = (
        f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured "
        f"for the application '{client_id}'. Only http://localhost:<port>/... and http://127.0.0.1:<port>/... "
        "are registered in the sandbox."
    )
    return EntraError(400, "invalid_request", 50011, message)


# --- grants


def different_client() -> EntraError:
    return EntraError(400, "invalid_grant", 700007, "The grant was issued for a different client id.")


def refresh_token_expired(issued_at: float, lifetime_days: int) -> EntraError:
    issued = time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime(issued_at))
    message = (
        f"The refresh token has expired due to inactivity. The token was issued on {issued} and was inactive "
        f"for {lifetime_days}.00:00:00."
    )
    return EntraError(400, "invalid_grant", 700082, message, "bad_token")


def mfa_required() -> EntraError:
    message = (
        "Due to a configuration change made by your administrator, or because you moved to a new location, you "
        f"must use multi-factor authentication to access '{PARTNER_CENTER_APP_ID}'."
    )
    return EntraError(400, "invalid_grant", 50076, message, "basic_action")


def mfa_expired() -> EntraError:
    message = (
        "Presented multi-factor authentication has expired due to policies configured by your administrator, "
        f"you must refresh your multi-factor authentication to access '{PARTNER_CENTER_APP_ID}'."
    )
    return EntraError(400, "invalid_grant", 50078, message, "basic_action")


def malformed_code() -> EntraError:
    return EntraError(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")


def code_redeemed() -> EntraError:
    message = (
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing "
        "refresh token."
    )
    return EntraError(400, "invalid_grant", 54005, message)


def code_expired() -> EntraError:
    message = (
        "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive "
        "authorization request for this user and resource."
    )
    return EntraError(400, "invalid_grant", 70008, message)


def reply_address_mismatch(given: str, expected: str) -> EntraError:
    message = (
        f"The reply address '{given}' does not match the reply address '{expected}' provided when requesting "
        "Authorization code."
    )
    return EntraError(400, "invalid_grant", 500112, message)


def pkce_mismatch() -> EntraError:
    message = "The code_verifier does not match the code_challenge supplied in the authorization request."
    return EntraError(400, "invalid_grant", 50148, message)


# --- sent back to the app's redirect URI by the authorize endpoint


def unsupported_response_type(response_type: str | None) -> EntraError:
    message = f"response_type '{response_type}' is not enabled for the application."
    return EntraError(302, "unsupported_response_type", 700054, message)


def unsupported_challenge_method(method: str) -> EntraError:
    return EntraError(302, "invalid_request", 501491, f"The code_challenge_method '{method}' is not supported.")


def consent_declined() -> EntraError:
    return EntraError(302, "access_denied", 65004, "User declined to consent to access the app.")
