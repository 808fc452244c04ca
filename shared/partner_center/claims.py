"""What an access token says about the sign-in behind it: its `amr` (authentication methods) claim.

Partner Center refuses App+User calls whose access token does not prove MFA (`amr` contains `mfa`) since
2026-04-01 (docs/design.md, "Consent keep-alive, health and alerts"). The token is our own, fresh from Entra
over TLS, so its payload is read without checking the signature: only the resource (Partner Center) verifies
it. Nothing here logs or returns the token.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

MFA = "mfa"


def claims_of(token: str) -> dict[str, Any]:
    """The JWT payload of `token`, or {} when it is not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return payload if isinstance(payload, dict) else {}


def authentication_methods(token: str) -> list[str]:
    """The token's `amr` values, lower-case ([] when it has none)."""
    amr = claims_of(token).get("amr")
    return [str(method).lower() for method in amr] if isinstance(amr, list) else []


def proves_mfa(token: str) -> bool:
    return MFA in authentication_methods(token)
