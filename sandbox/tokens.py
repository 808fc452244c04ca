"""JWT-shaped access tokens as Entra ID issues them, signed HS256 with a stand-in's own random key.

Real clients never verify an access token (only the resource does), so the signature only has to convince the
stand-in that issued it. Claims follow Entra's v1 access tokens: `iss` is `https://sts.windows.net/<tenant>/`,
which is also what Azurite's `--oauth basic` checks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

DEFAULT_TENANT_ID = "6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f"
"""The sandbox partner tenant: a fixed GUID so logs and settings stay the same from run to run."""


def sts_issuer(tenant_id: str) -> str:
    """The `iss` claim of Entra v1 access tokens (managed identity tokens and Partner Center tokens alike)."""
    return f"https://sts.windows.net/{tenant_id}/"


def audience_of(resource: str) -> str:
    """The `aud` a token for `resource` carries: the resource without a trailing `/.default` or slash."""
    resource = resource.strip()
    if resource.endswith("/.default"):
        resource = resource.removesuffix("/.default")
    return resource.rstrip("/")


NOT_BEFORE_SKEW = 300
"""Entra back-dates `iat`/`nbf` by five minutes."""


def access_token_claims(resource: str, tenant_id: str, now: int, expires_on: int) -> dict[str, Any]:
    """The claims every Entra v1 access token carries: audience, issuer and lifetime. Callers add the rest."""
    return {
        "aud": audience_of(resource),
        "iss": sts_issuer(tenant_id),
        "iat": now - NOT_BEFORE_SKEW,
        "nbf": now - NOT_BEFORE_SKEW,
        "exp": expires_on,
    }


def mint(claims: Mapping[str, Any], key: bytes) -> str:
    header = {"typ": "JWT", "alg": "HS256", "kid": "sandbox"}
    signing_input = f"{_encode(header)}.{_encode(claims)}"
    return f"{signing_input}.{_b64(hmac.digest(key, signing_input.encode(), hashlib.sha256))}"


def verify(token: str, key: bytes) -> dict[str, Any] | None:
    """The claims of `token` if `key` signed it, else None. Lifetimes are the caller's business."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    expected = _b64(hmac.digest(key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256))
    if not hmac.compare_digest(expected, parts[2]):
        return None
    return read(token)


def read(token: str) -> dict[str, Any] | None:
    """The claims of a JWT-shaped token without checking its signature (what `jwt.decode` does in Azurite)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


def _encode(value: Mapping[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
