"""What the Entra stand-in's token endpoint answers: the v1 and v2 answer shapes, its tokens and their claims.

Kept apart from `sandbox.entra` because these shapes are what clients (MSAL, the app) and resource stand-ins
read: in one place they are easier to hold against Entra's documentation than spread through request handling.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from sandbox import aadsts, tokens
from sandbox.entra_grants import Grant

OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
GRAPH_RESOURCE = "https://graph.microsoft.com"
_USER_NAME = "Partner Center integration user"


def v2_target(scope: str) -> tuple[str, list[str], bool]:
    """(resource, permissions, offline_access) of a v2 `scope` parameter."""
    requested = scope.split()
    if not requested:
        raise aadsts.missing("scope")
    resource_scopes = [s for s in requested if s.lower() not in OIDC_SCOPES]
    if not resource_scopes:
        raise aadsts.invalid_scope(scope)
    resources = {s.rsplit("/", 1)[0] if "/" in s else GRAPH_RESOURCE for s in resource_scopes}
    if len(resources) > 1:
        raise aadsts.several_resources(scope)
    permissions = [s.rsplit("/", 1)[-1] for s in resource_scopes]
    permissions = ["user_impersonation" if p == ".default" else p for p in permissions]
    offline = any(s.lower() == "offline_access" for s in requested)
    return resources.pop(), list(dict.fromkeys(permissions)), offline


def v1_target(form: dict[str, str]) -> tuple[str, list[str], bool]:
    """(resource, permissions, offline_access) of a v1 request: its `resource`, always with a refresh token."""
    resource = form.get("resource") or ""
    if not resource:
        raise aadsts.missing("resource")
    return resource, ["user_impersonation"], True


def v1_answer(resource: str, permissions: list[str], access_token: str, *, now: int, expires_on: int) -> dict[str, Any]:
    """A v1 answer (numbers as strings, the resource named); the caller adds the refresh token."""
    lifetime = expires_on - now
    return {
        "token_type": "Bearer",
        "scope": " ".join(permissions),
        "expires_in": str(lifetime),
        "ext_expires_in": str(lifetime),
        "expires_on": str(expires_on),
        "not_before": str(now - tokens.NOT_BEFORE_SKEW),
        "resource": resource,
        "access_token": access_token,
    }


def v2_answer(resource: str, permissions: list[str], access_token: str, *, lifetime: int) -> dict[str, Any]:
    """A v2 answer (scopes qualified by the resource); the caller adds the refresh token for `offline_access` and
    the ID token for `openid`."""
    return {
        "token_type": "Bearer",
        "scope": " ".join(f"{resource}/{p}" for p in permissions),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }


class AccessTokens:
    """The stand-in's signing key, and which of its access tokens are still live (by `uti`): revoking them is a
    test control, and resource stand-ins accept only live ones."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._live: set[str] = set()

    def access_token(
        self, grant: Grant, *, resource: str, permissions: list[str], tenant_id: str, now: int, expires_on: int
    ) -> str:
        """An App+User v1 access token, `amr` from the sign-in behind `grant`."""
        uti = secrets.token_urlsafe(16)
        object_id = _object_id(grant)
        claims = tokens.access_token_claims(resource, tenant_id, now, expires_on) | {
            "acr": "1",
            "amr": amr(grant),
            "appid": grant.client_id,
            "appidacr": "1",
            "idtyp": "user",
            "name": _USER_NAME,
            "oid": object_id,
            "scp": " ".join(permissions),
            "sub": object_id,
            "tid": tenant_id,
            "unique_name": grant.user,
            "upn": grant.user,
            "uti": uti,
            "ver": "1.0",
        }
        self._live.add(uti)
        return tokens.mint(claims, self._key)

    def id_token(self, grant: Grant, *, issuer: str, tenant_id: str, now: int, expires_on: int) -> str:
        """A v2 ID token, as Entra adds one when `openid` was asked for (HS256 here; clients that get it straight
        from the token endpoint over TLS read it without checking the signature)."""
        object_id = _object_id(grant)
        claims: dict[str, Any] = {
            "aud": grant.client_id,
            "amr": amr(grant),
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": expires_on,
            "name": _USER_NAME,
            "oid": object_id,
            "preferred_username": grant.user,
            "sub": object_id,
            "tid": tenant_id,
            "ver": "2.0",
        }
        if grant.nonce:
            claims["nonce"] = grant.nonce
        return tokens.mint(claims, self._key)

    def claims_for(self, token: str, audience: str) -> dict[str, Any] | None:
        """The claims of `token` if this stand-in signed it for `audience` (live or not, expired or not)."""
        claims = tokens.verify(token, self._key)
        if claims is None or claims.get("aud") != tokens.audience_of(audience):
            return None
        return claims

    def is_live(self, claims: dict[str, Any]) -> bool:
        return claims.get("uti") in self._live

    def revoke_all(self) -> None:
        self._live.clear()


def amr(grant: Grant) -> list[str]:
    return ["pwd", "mfa"] if grant.mfa else ["pwd"]


def _object_id(grant: Grant) -> str:
    """The same `oid` for the same user, every run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"user:{grant.user}"))
