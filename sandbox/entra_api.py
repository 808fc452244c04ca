"""The Entra stand-in as the authority for the app's own API: client-credentials tokens signed RS256 with
published, rotatable keys, and test helpers that mint the tokens an attacker or a misconfigured client would send.

What Entra does for an API registration, and what the app checks (shared/auth/tokens.py):
- OpenID metadata at `/{tenant}/v2.0/.well-known/openid-configuration` names `jwks_uri`
  (`/{tenant}/discovery/v2.0/keys`); the keys are RSA JWKs with `kid`, `use: sig`, `x5t`. `rotate_keys()` makes a
  new key the signing key and keeps the old one published (Entra publishes several); `retire_old_keys()` drops
  all but the current one.
- `POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`, `scope={audience}/.default` (the API's
  client id or `api://{client id}`): a v2 access token with `aud` = the API's client id, `iss` =
  `{authority}/{tenant}/v2.0`, `tid`, `oid`/`sub` (the client's service principal), `azp`, `azpacr`,
  `idtyp: app`, `roles` (the app roles assigned to that client), `iat`/`nbf`/`exp`, `uti`, `ver: "2.0"`.
Every token minted here is remembered (`minted()`), so the tests' leak check looks for each of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox import aadsts, tokens

ALL_ROLES = ("Upgrades.Read", "Upgrades.Create", "Batches.Report", "Batches.Upgrade", "Operations.Read")
BAD_TOKEN_KINDS = (
    "expired",
    "not-yet-valid",
    "other-audience",
    "other-tenant",
    "v1-issuer",
    "alg-none",
    "hs256-public-key",
    "unknown-kid",
)
_LIFETIME = 3599


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def new(cls) -> SigningKey:
        return cls(secrets.token_urlsafe(18), rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()
        der = self.private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        thumbprint = _b64(hashlib.sha1(der).digest())  # noqa: S324 - x5t is a SHA-1 thumbprint by definition
        n, e = _int(numbers.n), _int(numbers.e)
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": thumbprint, "n": n, "e": e}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class ApiClient:
    """A client app (daemon, managed identity, connector) with a secret and the API's app roles assigned to it."""

    client_id: str
    secret: str = field(repr=False)
    object_id: str
    roles: tuple[str, ...]


class ApiAuthority:
    """The API registration, its client apps and signing keys. Not locked: the Entra stand-in holds its lock."""

    def __init__(self, url: Callable[[], str], tenant_id: str) -> None:
        self._url = url  # the stand-in's base URL (known once it listens), the issuer's authority
        self.tenant_id = tenant_id
        self.api_client_id = str(uuid.uuid4())
        self.keys = [SigningKey.new()]  # the last one signs
        self.clients: dict[str, ApiClient] = {}
        self._minted: list[str] = []

    @property
    def audience(self) -> str:
        """`aud` of every token for the API: its client id (v2 tokens carry the client id, whatever the scope)."""
        return self.api_client_id

    @property
    def identifier_uri(self) -> str:
        return f"api://{self.api_client_id}"

    @property
    def issuer(self) -> str:
        return f"{self._url()}/{self.tenant_id}/v2.0"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self.keys]}

    def rotate_keys(self) -> str:
        self.keys.append(SigningKey.new())
        return self.keys[-1].kid

    def retire_old_keys(self) -> None:
        self.keys = self.keys[-1:]

    def register(self, roles: tuple[str, ...] = ALL_ROLES) -> ApiClient:
        client = ApiClient(str(uuid.uuid4()), secrets.token_urlsafe(30), str(uuid.uuid4()), tuple(roles))
        self.clients[client.client_id] = client
        return client

    def owns_scope(self, scope: str) -> bool:
        resource = tokens.audience_of(scope)
        return resource in (self.api_client_id, self.identifier_uri)

    def client_credentials(self, form: Mapping[str, str], client_id: str, now: float) -> dict[str, Any]:
        """The v2 answer to a client-credentials request of an authenticated client."""
        scope = form.get("scope", "")
        if not scope:
            raise aadsts.missing("scope")
        if not scope.endswith("/.default") or not self.owns_scope(scope):
            raise aadsts.invalid_scope(scope)
        client = self.clients.get(client_id)
        if client is None:
            raise aadsts.invalid_scope(scope)  # a registered app without access to this API
        token = self.mint(self.claims(client, int(now)))
        return {"token_type": "Bearer", "expires_in": _LIFETIME, "ext_expires_in": _LIFETIME, "access_token": token}

    def claims(self, client: ApiClient, now: int) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "aud": self.audience,
            "iss": self.issuer,
            "iat": now - tokens.NOT_BEFORE_SKEW,
            "nbf": now - tokens.NOT_BEFORE_SKEW,
            "exp": now + _LIFETIME,
            "azp": client.client_id,
            "azpacr": "1",
            "idtyp": "app",
            "oid": client.object_id,
            "sub": client.object_id,
            "tid": self.tenant_id,
            "uti": secrets.token_urlsafe(16),
            "ver": "2.0",
        }
        if client.roles:
            claims["roles"] = list(client.roles)
        return claims

    def mint(self, claims: Mapping[str, Any], *, key: SigningKey | None = None) -> str:
        signer = key or self.keys[-1]
        token = jwt.encode(dict(claims), signer.private, algorithm="RS256", headers={"kid": signer.kid, "typ": "JWT"})
        self._minted.append(token)
        return token

    def bad_token(self, kind: str, client: ApiClient, now: float) -> str:
        """A token for `client` that the app must refuse for exactly one reason, `kind` (BAD_TOKEN_KINDS)."""
        claims = self.claims(client, int(now))
        changes: dict[str, dict[str, Any]] = {
            "expired": {"exp": int(now) - 120, "nbf": int(now) - 4000, "iat": int(now) - 4000},
            "not-yet-valid": {"nbf": int(now) + 600, "iat": int(now) + 600},
            "other-audience": {"aud": str(uuid.uuid4())},
            "other-tenant": {"tid": (other := str(uuid.uuid4())), "iss": f"{self._url()}/{other}/v2.0"},
            "v1-issuer": {"iss": tokens.sts_issuer(self.tenant_id), "ver": "1.0", "appid": client.client_id},
        }
        if kind in changes:
            return self.mint(claims | changes[kind])
        if kind == "unknown-kid":
            return self.mint(claims, key=SigningKey.new())
        if kind == "alg-none":
            return self._remember(_unsigned({"alg": "none", "typ": "JWT", "kid": self.keys[-1].kid}, claims, b""))
        if kind == "hs256-public-key":
            header = {"alg": "HS256", "typ": "JWT", "kid": self.keys[-1].kid}
            return self._remember(_unsigned(header, claims, self.keys[-1].public_pem()))
        raise ValueError(f"kind must be one of {BAD_TOKEN_KINDS}")

    def minted(self) -> list[str]:
        return list(self._minted)

    def _remember(self, token: str) -> str:
        self._minted.append(token)
        return token


def _unsigned(header: Mapping[str, Any], claims: Mapping[str, Any], hmac_key: bytes) -> str:
    """A JWT signed by hand: HS256 with `hmac_key`, or no signature at all for `alg: none` (PyJWT refuses both)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(dict(claims)).encode())}"
    if header["alg"] == "none":
        return signing_input + "."
    return f"{signing_input}.{_b64(hmac.digest(hmac_key, signing_input.encode(), hashlib.sha256))}"


def _int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
