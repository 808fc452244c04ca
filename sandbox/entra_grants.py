"""The Entra stand-in's book of apps, refresh tokens and authorization codes, and the checks before a redemption.

Kept apart from `sandbox.entra` so that the stand-in reads as its protocol (routes and answers) and the rules of
who may redeem what live in one place. Not locked: the stand-in calls it with its own lock held.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from sandbox import aadsts
from sandbox.aadsts import EntraError
from sandbox.server import Recorded

DEFAULT_USER = "integration@partner.example"


@dataclass
class Grant:
    """What a refresh token (or a redeemed code) stands for."""

    client_id: str
    user: str
    issued_at: float
    revoked: bool = False
    fail_code: int | None = None
    scope: str | None = None
    nonce: str | None = None  # from the authorization request, echoed in the ID token of the code redemption
    mfa: bool = True  # the sign-in behind this grant used MFA (amr has "mfa")


@dataclass
class Code:
    """What an authorization code stands for, until it is redeemed."""

    client_id: str
    redirect_uri: str
    scope: str
    user: str
    issued_at: float
    code_challenge: str | None
    code_challenge_method: str
    nonce: str | None = None
    redeemed: bool = False
    mfa: bool = True

    @classmethod
    def requested(cls, request: Recorded, client_id: str, redirect_uri: str, *, issued_at: float, mfa: bool) -> Code:
        """The code an authorization request gets; its user is the request's `login_hint`."""
        arg = request.arg
        return cls(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=arg("scope") or "",
            user=arg("login_hint") or DEFAULT_USER,
            issued_at=issued_at,
            code_challenge=arg("code_challenge"),
            code_challenge_method=arg("code_challenge_method") or "plain",
            nonce=arg("nonce"),
            mfa=mfa,
        )


class Grants:
    """Registered apps (client id -> secret), refresh tokens (oldest first) and authorization codes."""

    def __init__(self) -> None:
        self.apps: dict[str, str] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.codes: dict[str, Code] = {}

    def new_refresh_token(self, client_id: str, user: str, *, mfa: bool, issued_at: float) -> str:
        token = "0.A" + secrets.token_urlsafe(96)
        self.refresh_tokens[token] = Grant(client_id, user, issued_at, mfa=mfa)
        return token

    def new_code(self, code: Code) -> str:
        value = "1.A" + secrets.token_urlsafe(48)
        self.codes[value] = code
        return value

    def revoke_all(self) -> None:
        for grant in self.refresh_tokens.values():
            grant.revoked = True
        self.codes.clear()

    def check_redirect(self, client_id: str, redirect_uri: str, tenant_id: str) -> None:
        """A registered app, and a redirect URI it may use: a loopback one, the only kind this stand-in's apps have."""
        if client_id not in self.apps:
            raise aadsts.unknown_app(client_id, tenant_id)
        if not _is_loopback(redirect_uri):
            raise aadsts.redirect_uri_mismatch(redirect_uri, client_id)

    def authenticate_client(self, request: Recorded, form: dict[str, str], tenant_id: str) -> str:
        """The client id, once its secret checks out (sent as form fields or as HTTP Basic credentials)."""
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic" and credentials:
            basic_id, _, basic_secret = base64.b64decode(credentials).decode().partition(":")
            client_id, secret = client_id or unquote(basic_id), secret or unquote(basic_secret)
        if not client_id:
            raise aadsts.missing("client_id")
        if client_id not in self.apps:
            raise aadsts.unknown_app(client_id, tenant_id)
        if not secret:
            raise aadsts.missing_client_secret()
        if not hmac.compare_digest(secret.encode(), self.apps[client_id].encode()):
            raise aadsts.invalid_client_secret(client_id)
        return client_id

    def redeem_refresh_token(
        self, form: dict[str, str], client_id: str, *, now: float, lifetime: float, rotation_revokes_old: bool
    ) -> Grant:
        token = form.get("refresh_token")
        if not token:
            raise aadsts.missing("refresh_token")
        grant = self.refresh_tokens.get(token)
        if grant is None or grant.revoked or now - grant.issued_at > lifetime:
            raise _expired(grant.issued_at if grant else now - lifetime, lifetime)
        if grant.client_id != client_id:
            raise aadsts.different_client()
        if grant.fail_code == 50076:
            raise aadsts.mfa_required()
        if grant.fail_code == 50078:
            raise aadsts.mfa_expired()
        if grant.fail_code == 700082:
            raise _expired(grant.issued_at, lifetime)
        if rotation_revokes_old:
            grant.revoked = True
        return grant

    def redeem_code(self, form: dict[str, str], client_id: str, *, now: float, lifetime: float) -> Grant:
        code = self.codes.get(form.get("code", ""))
        if code is None:
            raise aadsts.malformed_code()
        if code.redeemed:
            raise aadsts.code_redeemed()
        if now - code.issued_at > lifetime:
            raise aadsts.code_expired()
        if code.client_id != client_id:
            raise aadsts.different_client()
        if form.get("redirect_uri") != code.redirect_uri:
            raise aadsts.reply_address_mismatch(form.get("redirect_uri", ""), code.redirect_uri)
        if code.code_challenge and not _pkce_matches(form.get("code_verifier", ""), code):
            raise aadsts.pkce_mismatch()
        code.redeemed = True
        return Grant(client_id, code.user, now, scope=code.scope, nonce=code.nonce, mfa=code.mfa)


def _expired(issued_at: float, lifetime: float) -> EntraError:
    return aadsts.refresh_token_expired(issued_at, int(lifetime // 86400))


def _pkce_matches(verifier: str, code: Code) -> bool:
    if code.code_challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        expected = verifier
    return bool(verifier) and hmac.compare_digest(expected, code.code_challenge or "")


def _is_loopback(redirect_uri: str) -> bool:
    parts = urlsplit(redirect_uri)
    try:
        port = parts.port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1") and port is not None
