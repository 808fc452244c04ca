"""Entra ID (Azure AD) as the partner tenant's authority: discovery, the v1 and v2 token endpoints, and an
authorization-code flow without UI for the one-time consent.

Works with MSAL (`authority=f"{entra.url}/{tenant}"`, with `instance_discovery=False` or with instance discovery
pointed at `f"{entra.url}/common/discovery/instance"`) and with plain form POSTs. Behaviour follows Entra:
every redemption returns a new refresh token and the old one stays valid (unless `rotation_revokes_old`), a
refresh token lives `refresh_token_lifetime` (90 days) from issue, v1 answers carry numbers as strings, and
errors have Entra's shape (`error`, `error_description` = `AADSTSnnnn: ...`, `error_codes`, `timestamp`,
`trace_id`, `correlation_id`, `error_uri`, and `suberror` where Entra sends one).

Access tokens are JWT-shaped v1 tokens for the requested resource (Partner Center:
`https://api.partnercenter.microsoft.com`) with `scp`, `amr`, `appid`, `upn`; resource stand-ins check them with
`is_valid_access_token`. A v2 answer to a request whose scope has `openid` also carries an ID token
(`preferred_username`, `oid`, `tid`, `amr`, and the authorization request's `nonce` on a code redemption), as MSAL
expects. Nothing here logs a secret or a token.

MFA: `amr` is `["pwd", "mfa"]` when the sign-in behind the grant used MFA, else `["pwd"]`; tokens redeemed from a
refresh token keep the sign-in's `amr`. A refresh token from `issue_refresh_token(..., mfa=False)` stands for a
sign-in without MFA; with `sign_in_with_mfa = False`, every sign-in at the authorize endpoint from then on is
password only (whatever the request's `amr_values`), so its code, tokens and refresh tokens lack MFA.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from sandbox import aadsts, tokens
from sandbox.aadsts import EntraError
from sandbox.server import Clock, Recorded, Response, Route, StandIn
from sandbox.tls import LocalCA

PARTNER_CENTER_RESOURCE = "https://api.partnercenter.microsoft.com"
DEFAULT_USER = "integration@partner.example"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
GRAPH_RESOURCE = "https://graph.microsoft.com"
FAILURE_CODES = (50076, 50078, 700082)
_TENANT = r"/(?P<tenant>[^/]+)"


@dataclass
class _Grant:
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
class _Code:
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


class EntraStandIn(StandIn):
    name = "entra"

    def __init__(
        self, *, ca: LocalCA, tenant_id: str = tokens.DEFAULT_TENANT_ID, clock: Clock = time.time, port: int = 0
    ) -> None:
        super().__init__(ca=ca, clock=clock, port=port)
        self.tenant_id = tenant_id
        self.tenants = {tenant_id.lower(), "common", "organizations"}  # add a domain name here to accept it
        self.access_token_lifetime = 3599.0
        self.refresh_token_lifetime = 90 * 86400.0
        self.code_lifetime = 600.0
        self.rotation_revokes_old = False
        self.consent_denied = False
        self.sign_in_with_mfa = True  # False: sign-ins at the authorize endpoint are password only
        self.exchanges = 0  # refresh_token grants answered, successful or not
        self._apps: dict[str, str] = {}  # client id -> client secret
        self._grants: dict[str, _Grant] = {}  # refresh token -> grant
        self._codes: dict[str, _Code] = {}
        self._live_access_tokens: set[str] = set()  # `uti` claims
        self._key = secrets.token_bytes(32)

    # --- test helpers

    def register_app(self, client_id: str, client_secret: str) -> None:
        with self._lock:
            self._apps[client_id] = client_secret

    def issue_refresh_token(
        self, client_id: str, *, user: str = DEFAULT_USER, issued_at: float | None = None, mfa: bool = True
    ) -> str:
        """A refresh token as the one-time consent would have produced it (`issued_at` ages it; `mfa=False`: the
        consent sign-in had no MFA, so its access tokens carry `amr: ["pwd"]`)."""
        with self._lock:
            if client_id not in self._apps:
                raise KeyError(f"app {client_id} is not registered")
            return self._new_refresh_token(client_id, user, mfa=mfa, issued_at=issued_at)

    def issued_refresh_tokens(self) -> list[str]:
        """Every refresh token issued so far (seeded, rotated or from a code), oldest first."""
        with self._lock:
            return list(self._grants)

    def fail_refresh_token(self, token: str, code: int) -> None:
        """Make `token` fail with `invalid_grant` and AADSTS `code` (50076, 50078 or 700082)."""
        if code not in FAILURE_CODES:
            raise ValueError(f"code must be one of {FAILURE_CODES}")
        with self._lock:
            self._grants[token].fail_code = code

    def revoke_all(self) -> None:
        """Revoke every refresh token and unredeemed code (access tokens live on until they expire)."""
        with self._lock:
            for grant in self._grants.values():
                grant.revoked = True
            self._codes.clear()

    def revoke_access_tokens(self) -> None:
        with self._lock:
            self._live_access_tokens.clear()

    def is_valid_access_token(self, token: str, audience: str) -> bool:
        claims = tokens.verify(token, self._key)
        if claims is None or claims.get("aud") != tokens.audience_of(audience):
            return False
        with self._lock:
            if claims.get("uti") not in self._live_access_tokens:
                return False
        return bool(claims["nbf"] <= self.clock() < claims["exp"])

    def on_reset(self) -> None:
        self.exchanges = 0

    # --- protocol

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/common/discovery/instance", "discovery", self._instance_discovery),
            Route("GET", rf"{_TENANT}/v2\.0/\.well-known/openid-configuration", "discovery", self._openid_v2),
            Route("GET", rf"{_TENANT}/\.well-known/openid-configuration", "discovery", self._openid_v1),
            Route("POST", rf"{_TENANT}/oauth2/token", "token", self._token_v1),
            Route("POST", rf"{_TENANT}/oauth2/v2\.0/token", "token", self._token_v2),
            Route("GET", rf"{_TENANT}/oauth2/v2\.0/authorize", "authorize", self._authorize),
        ]

    def fault_body(self, status: int, retry_after: int | None) -> Any:
        return aadsts.body(aadsts.transient(status), self.clock())

    def not_found(self, request: Recorded) -> Response:
        return self._refuse(aadsts.not_found(request.path))

    def _instance_discovery(self, request: Recorded, params: dict[str, str]) -> Response:
        endpoint = request.arg("authorization_endpoint")
        if not endpoint:
            return self._refuse(aadsts.missing("authorization_endpoint"))
        tenant = urlsplit(endpoint).path.strip("/").split("/")[0] or "common"
        host = f"{self.host}:{self.port}"
        return Response(
            200,
            {
                "tenant_discovery_endpoint": f"{self.url}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            },
        )

    def _openid_v2(self, request: Recorded, params: dict[str, str]) -> Response:
        return self._openid(params["tenant"], f"{self.url}/{self.tenant_id}/v2.0", "/v2.0")

    def _openid_v1(self, request: Recorded, params: dict[str, str]) -> Response:
        return self._openid(params["tenant"], tokens.sts_issuer(self.tenant_id), "")

    def _openid(self, tenant: str, issuer: str, version: str) -> Response:
        try:
            self._check_tenant(tenant)
        except EntraError as error:
            return self._refuse(error)
        base = f"{self.url}/{tenant}/oauth2{version}"
        return Response(
            200,
            {
                "issuer": issuer,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "device_authorization_endpoint": f"{base}/devicecode",
                "end_session_endpoint": f"{base}/logout",
                "jwks_uri": f"{self.url}/{tenant}/discovery{version}/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["plain", "S256"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "msgraph_host": "graph.microsoft.com",
            },
        )

    def _token_v1(self, request: Recorded, params: dict[str, str]) -> Response:
        return self._token(request, params["tenant"], v2=False)

    def _token_v2(self, request: Recorded, params: dict[str, str]) -> Response:
        return self._token(request, params["tenant"], v2=True)

    def _token(self, request: Recorded, tenant: str, *, v2: bool) -> Response:
        form = request.form
        grant_type = form.get("grant_type", "")
        with self._lock:
            if grant_type == "refresh_token":
                self.exchanges += 1
            try:
                self._check_tenant(tenant)
                client_id = self._authenticate_client(request, form)
                if grant_type == "refresh_token":
                    grant = self._redeem_refresh_token(form, client_id)
                elif grant_type == "authorization_code":
                    grant = self._redeem_code(form, client_id)
                elif not grant_type:
                    raise aadsts.missing("grant_type")
                else:
                    raise aadsts.unsupported_grant_type(grant_type)
                return Response(200, self._issue(form, grant, v2=v2))
            except EntraError as error:
                return self._refuse(error)

    def _authorize(self, request: Recorded, params: dict[str, str]) -> Response:
        """No UI: the user is taken to have signed in with MFA (and consented unless `consent_denied`)."""
        arg = request.arg
        with self._lock:
            try:
                self._check_tenant(params["tenant"])
                client_id = arg("client_id") or ""
                if client_id not in self._apps:
                    raise aadsts.unknown_app(client_id, self.tenant_id)
                redirect_uri = arg("redirect_uri") or ""
                if not _is_loopback(redirect_uri):
                    raise aadsts.redirect_uri_mismatch(redirect_uri, client_id)
            except EntraError as error:
                return self._refuse(error)  # nowhere safe to redirect to: Entra shows an error page

            refusal = _authorize_refusal(request, consent_denied=self.consent_denied)
            if refusal is not None:
                answer = {"error": refusal.error, "error_description": f"AADSTS{refusal.code}: {refusal.description}"}
            else:
                code = "1.A" + secrets.token_urlsafe(48)
                self._codes[code] = _Code(
                    client_id=client_id,
                    redirect_uri=redirect_uri,
                    scope=arg("scope") or "",
                    user=arg("login_hint") or DEFAULT_USER,
                    issued_at=self.clock(),
                    code_challenge=arg("code_challenge"),
                    code_challenge_method=arg("code_challenge_method") or "plain",
                    nonce=arg("nonce"),
                    mfa=self.sign_in_with_mfa,
                )
                answer = {"code": code, "session_state": str(uuid.uuid4())}
            state = arg("state")
            if state is not None:
                answer["state"] = state
            return _deliver(redirect_uri, answer, arg("response_mode") or "query")

    # --- grants

    def _check_tenant(self, tenant: str) -> None:
        if tenant.lower() not in self.tenants:
            raise aadsts.unknown_tenant(tenant)

    def _authenticate_client(self, request: Recorded, form: dict[str, str]) -> str:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic" and credentials:
            basic_id, _, basic_secret = base64.b64decode(credentials).decode().partition(":")
            client_id, secret = client_id or unquote(basic_id), secret or unquote(basic_secret)
        if not client_id:
            raise aadsts.missing("client_id")
        if client_id not in self._apps:
            raise aadsts.unknown_app(client_id, self.tenant_id)
        if not secret:
            raise aadsts.missing_client_secret()
        if not hmac.compare_digest(secret.encode(), self._apps[client_id].encode()):
            raise aadsts.invalid_client_secret(client_id)
        return client_id

    def _redeem_refresh_token(self, form: dict[str, str], client_id: str) -> _Grant:
        token = form.get("refresh_token")
        if not token:
            raise aadsts.missing("refresh_token")
        grant = self._grants.get(token)
        now = self.clock()
        if grant is None or grant.revoked or now - grant.issued_at > self.refresh_token_lifetime:
            raise self._expired(grant.issued_at if grant else now - self.refresh_token_lifetime)
        if grant.client_id != client_id:
            raise aadsts.different_client()
        if grant.fail_code == 50076:
            raise aadsts.mfa_required()
        if grant.fail_code == 50078:
            raise aadsts.mfa_expired()
        if grant.fail_code == 700082:
            raise self._expired(grant.issued_at)
        if self.rotation_revokes_old:
            grant.revoked = True
        return grant

    def _redeem_code(self, form: dict[str, str], client_id: str) -> _Grant:
        code = self._codes.get(form.get("code", ""))
        if code is None:
            raise aadsts.malformed_code()
        if code.redeemed:
            raise aadsts.code_redeemed()
        if self.clock() - code.issued_at > self.code_lifetime:
            raise aadsts.code_expired()
        if code.client_id != client_id:
            raise aadsts.different_client()
        if form.get("redirect_uri") != code.redirect_uri:
            raise aadsts.reply_address_mismatch(form.get("redirect_uri", ""), code.redirect_uri)
        if code.code_challenge and not _pkce_matches(form.get("code_verifier", ""), code):
            raise aadsts.pkce_mismatch()
        code.redeemed = True
        return _Grant(client_id, code.user, self.clock(), scope=code.scope, nonce=code.nonce, mfa=code.mfa)

    def _issue(self, form: dict[str, str], grant: _Grant, *, v2: bool) -> dict[str, Any]:
        if v2:
            resource, permissions, offline = _v2_target(form.get("scope") or grant.scope or "")
        else:
            resource = form.get("resource") or ""
            if not resource:
                raise aadsts.missing("resource")
            permissions, offline = ["user_impersonation"], True
        now = int(self.clock())
        expires_on = int(now + self.access_token_lifetime)
        access_token = self._access_token(resource, permissions, grant, now, expires_on)
        lifetime = expires_on - now
        if not v2:
            return {
                "token_type": "Bearer",
                "scope": " ".join(permissions),
                "expires_in": str(lifetime),
                "ext_expires_in": str(lifetime),
                "expires_on": str(expires_on),
                "not_before": str(now - tokens.NOT_BEFORE_SKEW),
                "resource": resource,
                "access_token": access_token,
                "refresh_token": self._new_refresh_token(grant.client_id, grant.user, mfa=grant.mfa),
            }
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(f"{resource}/{p}" for p in permissions),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }
        if offline:
            answer["refresh_token"] = self._new_refresh_token(grant.client_id, grant.user, mfa=grant.mfa)
        if "openid" in (form.get("scope") or grant.scope or "").lower().split():
            answer["id_token"] = self._id_token(grant, now, expires_on)
        return answer

    def _access_token(self, resource: str, permissions: list[str], grant: _Grant, now: int, expires_on: int) -> str:
        uti = secrets.token_urlsafe(16)
        object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"user:{grant.user}"))
        claims = tokens.access_token_claims(resource, self.tenant_id, now, expires_on) | {
            "acr": "1",
            "amr": _amr(grant),
            "appid": grant.client_id,
            "appidacr": "1",
            "idtyp": "user",
            "name": "Partner Center integration user",
            "oid": object_id,
            "scp": " ".join(permissions),
            "sub": object_id,
            "tid": self.tenant_id,
            "unique_name": grant.user,
            "upn": grant.user,
            "uti": uti,
            "ver": "1.0",
        }
        self._live_access_tokens.add(uti)
        return tokens.mint(claims, self._key)

    def _id_token(self, grant: _Grant, now: int, expires_on: int) -> str:
        """A v2 ID token, as Entra adds one when `openid` was asked for (HS256 here; clients that get it straight
        from the token endpoint over TLS read it without checking the signature)."""
        object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"user:{grant.user}"))
        claims: dict[str, Any] = {
            "aud": grant.client_id,
            "amr": _amr(grant),
            "iss": f"{self.url}/{self.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": expires_on,
            "name": "Partner Center integration user",
            "oid": object_id,
            "preferred_username": grant.user,
            "sub": object_id,
            "tid": self.tenant_id,
            "ver": "2.0",
        }
        if grant.nonce:
            claims["nonce"] = grant.nonce
        return tokens.mint(claims, self._key)

    def _new_refresh_token(self, client_id: str, user: str, *, mfa: bool, issued_at: float | None = None) -> str:
        token = "0.A" + secrets.token_urlsafe(96)
        self._grants[token] = _Grant(client_id, user, self.clock() if issued_at is None else issued_at, mfa=mfa)
        return token

    def _expired(self, issued_at: float) -> EntraError:
        return aadsts.refresh_token_expired(issued_at, int(self.refresh_token_lifetime // 86400))

    def _refuse(self, error: EntraError) -> Response:
        return Response(error.status, aadsts.body(error, self.clock()))


def _amr(grant: _Grant) -> list[str]:
    return ["pwd", "mfa"] if grant.mfa else ["pwd"]


def _v2_target(scope: str) -> tuple[str, list[str], bool]:
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


def _authorize_refusal(request: Recorded, *, consent_denied: bool) -> EntraError | None:
    """Why an authorization request is sent back to the app with an error, if it is."""
    response_type = request.arg("response_type")
    if response_type != "code":
        return aadsts.unsupported_response_type(response_type)
    if not request.arg("scope"):
        return aadsts.missing("scope")
    method = request.arg("code_challenge_method") or "plain"
    if request.arg("code_challenge") and method not in ("S256", "plain"):
        return aadsts.unsupported_challenge_method(method)
    if consent_denied:
        return aadsts.consent_declined()
    return None


def _pkce_matches(verifier: str, code: _Code) -> bool:
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


def _deliver(redirect_uri: str, answer: dict[str, str], mode: str) -> Response:
    """Send the browser back to the app: a 302 (query or fragment) or an auto-submitted form (form_post)."""
    if mode == "form_post":
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>' for k, v in answer.items()
        )
        page = (
            f'<html><body onload="document.forms[0].submit()"><form method="POST" '
            f'action="{html.escape(redirect_uri)}">{fields}</form></body></html>'
        )
        return Response(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
    if mode == "fragment":
        return Response(302, None, {"Location": f"{redirect_uri}#{urlencode(answer)}"})
    return Response(302, None, {"Location": f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(answer)}"})
