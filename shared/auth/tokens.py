"""Entra ID access tokens for the app's own API: checked here, with PyJWT, against the tenant's published keys.

Only what Entra issues to a v2 API registration passes: `alg` RS256 (never `none` or HS256: the algorithm is
fixed here, not read from the token), a `kid` among the keys at the tenant's `jwks_uri`, `iss` =
`{AZURE_AUTHORITY_HOST}/{tenant GUID}/v2.0` (the issuer the tenant's OpenID metadata names), `tid` = that GUID,
`ver` = 2.0, `aud` = `CALLER_API_AUDIENCE`, `exp`/`nbf` with 60 s leeway (on the app's clock). Roles come from
`roles` only. Every failure is the same `Unauthenticated` for the caller; the reason is for the log and audit.

Keys: `SigningKeys` keeps the JWKS per instance (a day at most), refreshes it once when a token names an unknown
`kid` (Entra rolls keys; at most once per 5 minutes per instance, single flight, so a flood of made-up key ids
costs one request), and fetches over the app's pooled session with timeouts. PyJWT's own `PyJWKClient` reads
with urllib (no shared TLS trust, no pooling), so this small cache replaces it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from shared.clock import Clock
from shared.correlation import get_logger, is_guid
from shared.errors import DependencyUnavailable, Unauthenticated

log = get_logger(__name__)

LEEWAY_SECONDS = 60
KEYS_MAX_AGE_SECONDS = 24 * 3600
REFRESH_INTERVAL_SECONDS = 300
TIMEOUT = (5, 10)
REQUIRED_CLAIMS = ("exp", "nbf", "iss", "aud", "tid", "oid", "ver")


@dataclass(frozen=True)
class TokenCaller:
    object_id: str
    app_id: str | None
    name: str | None
    roles: frozenset[str]


class SigningKeys:
    """The tenant's issuer and signing keys from its OpenID metadata and JWKS, cached per instance."""

    def __init__(self, session: requests.Session, authority: str, tenant: str, clock: Clock) -> None:
        self._session = session
        self._authority = authority.rstrip("/")
        self._metadata_url = f"{self._authority}/{tenant}/v2.0/.well-known/openid-configuration"
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._issuer: str | None = None
        self._jwks_uri: str | None = None
        self._fetched_at: float | None = None

    def issuer(self) -> str:
        if self._issuer is None or self._stale():
            self._refresh(force=False)
        assert self._issuer is not None
        return self._issuer

    def key(self, kid: str) -> Any | None:
        """The public key `kid` names, refreshing the set once (rate-limited) when it is not known."""
        if self._issuer is None or self._stale():
            self._refresh(force=False)
        found = self._keys.get(kid)
        if found is None and self._refresh(force=True):
            found = self._keys.get(kid)
        return found

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock.now() - self._fetched_at > KEYS_MAX_AGE_SECONDS

    def _refresh(self, *, force: bool) -> bool:
        """Fetch metadata (once) and keys; with `force`, only if the last fetch is older than the interval.
        True when this call fetched."""
        with self._lock:  # single flight: the others wait and then use what it fetched
            fetched_at = self._fetched_at
            recent = fetched_at is not None and self._clock.now() - fetched_at < REFRESH_INTERVAL_SECONDS
            if fetched_at is not None and not self._stale() and (not force or recent):
                return False
            if self._jwks_uri is None:
                metadata = self._get(self._metadata_url)
                self._issuer, self._jwks_uri = str(metadata.get("issuer", "")), str(metadata.get("jwks_uri", ""))
            self._keys = _rsa_keys(self._get(self._jwks_uri))
            self._fetched_at = self._clock.now()
            log.info("read %d signing keys of the callers' tenant", len(self._keys))
            return True

    def _get(self, url: str) -> dict[str, Any]:
        try:
            response = self._session.get(url, timeout=TIMEOUT)
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError) as error:
            log.warning("Entra ID metadata or keys unavailable: %s", type(error).__name__)
            raise DependencyUnavailable("Entra ID's signing keys could not be read", retry_after=10) from None
        if not isinstance(body, dict):
            raise DependencyUnavailable("Entra ID's signing keys could not be read", retry_after=10)
        return body


def accepted_audiences(setting: str) -> list[str]:
    """`aud` values that name the app's API. A v2 access token's `aud` is the API's client id, so an application
    ID URI in CALLER_API_AUDIENCE (the contract allows either) matches only in its default form `api://<client id>`,
    whose client id is then accepted too; any other ID URI cannot be matched to v2 tokens (docs/deploy.md)."""
    prefix = "api://"
    client_id = setting[len(prefix) :] if setting.lower().startswith(prefix) else ""
    return [setting, client_id] if is_guid(client_id) else [setting]


class TokenValidator:
    def __init__(self, keys: SigningKeys, authority: str, audience: str, clock: Clock) -> None:
        self._keys = keys
        self._authority = authority.rstrip("/")
        self._audience = accepted_audiences(audience)
        self._clock = clock

    def validate(self, token: str) -> TokenCaller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise Unauthenticated("the token is not signed RS256")
        key = self._keys.key(str(header.get("kid", "")))
        if key is None:
            raise Unauthenticated("the token's key id is not one of the tenant's signing keys")
        issuer = self._keys.issuer()
        claims = self._decode(token, key, issuer)
        self._check_claims(claims, issuer)
        roles = claims.get("roles")
        return TokenCaller(
            object_id=str(claims["oid"]),
            app_id=str(claims["azp"]) if claims.get("azp") else None,
            name=str(claims["name"]) if claims.get("name") else None,
            roles=frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset(),
        )

    def _decode(self, token: str, key: Any, issuer: str) -> dict[str, Any]:
        # lifetimes are checked in _check_claims, on the app's clock
        options: jwt.types.Options = {
            "require": list(REQUIRED_CLAIMS),
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
        }
        try:
            claims = jwt.decode(
                token, key, algorithms=["RS256"], audience=self._audience, issuer=issuer, options=options
            )
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token is from another issuer (tenant or version)") from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"the token was refused ({type(error).__name__})") from None
        return claims

    def _check_claims(self, claims: dict[str, Any], issuer: str) -> None:
        now = self._clock.now()
        if not _number(claims["exp"]) or now > float(claims["exp"]) + LEEWAY_SECONDS:
            raise Unauthenticated("the token has expired")
        if not _number(claims["nbf"]) or now < float(claims["nbf"]) - LEEWAY_SECONDS:
            raise Unauthenticated("the token is not valid yet")
        if claims.get("ver") != "2.0":
            raise Unauthenticated("the token is not a v2 token")
        tenant = issuer.removeprefix(self._authority + "/").removesuffix("/v2.0")
        if not issuer.startswith(self._authority + "/") or str(claims["tid"]).lower() != tenant.lower():
            raise Unauthenticated("the token is from another tenant")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rsa_keys(jwks: dict[str, Any]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for entry in jwks.get("keys") or []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or not entry.get("kid"):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            keys[str(entry["kid"])] = jwt.PyJWK(entry, algorithm="RS256").key
        except jwt.PyJWTError:
            log.warning("ignored a signing key Entra published that PyJWT cannot read")
    return keys
