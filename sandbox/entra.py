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

The stand-in keeps its apps, refresh tokens and codes in `sandbox.entra_grants` (with the checks before a
redemption), and builds its token answers and tokens with `sandbox.entra_tokens`.
"""

from __future__ import annotations

import html
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from sandbox import aadsts, tokens
from sandbox.aadsts import EntraError
from sandbox.entra_api import ApiAuthority, ApiClient
from sandbox.entra_discovery import instance_metadata as _instance_metadata
from sandbox.entra_discovery import openid_configuration as _openid_configuration
from sandbox.entra_grants import DEFAULT_USER, Code, Grant, Grants
from sandbox.entra_tokens import GRAPH_RESOURCE, OIDC_SCOPES, AccessTokens, v1_answer, v1_target, v2_answer, v2_target
from sandbox.server import Clock, Recorded, Response, Route, StandIn
from sandbox.tls import LocalCA

__all__ = [
    "DEFAULT_USER",
    "FAILURE_CODES",
    "GRAPH_RESOURCE",
    "OIDC_SCOPES",
    "PARTNER_CENTER_RESOURCE",
    "EntraStandIn",
]

PARTNER_CENTER_RESOURCE = "https://api.partnercenter.microsoft.com"
FAILURE_CODES = (50076, 50078, 700082)
_TENANT = r"/(?P<tenant>[^/]+)"


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
        self._grants = Grants()  # apps, refresh tokens, codes
        self._tokens = AccessTokens()  # the signing key, live access tokens
        self.api = ApiAuthority(lambda: self.url, tenant_id)  # the app's own API: app roles, RS256 keys

    def register_api_client(self, roles: tuple[str, ...] | None = None) -> ApiClient:
        """A client app with `roles` (default: all) of the app's API, and its secret registered here."""
        with self._lock:
            client = self.api.register(*(() if roles is None else (roles,)))
            self._grants.apps[client.client_id] = client.secret
            return client

    # --- test helpers

    def register_app(self, client_id: str, client_secret: str) -> None:
        with self._lock:
            self._grants.apps[client_id] = client_secret

    def issue_refresh_token(
        self, client_id: str, *, user: str = DEFAULT_USER, issued_at: float | None = None, mfa: bool = True
    ) -> str:
        """A refresh token as the one-time consent would have produced it (`issued_at` ages it; `mfa=False`: the
        consent sign-in had no MFA, so its access tokens carry `amr: ["pwd"]`)."""
        with self._lock:
            if client_id not in self._grants.apps:
                raise KeyError(f"app {client_id} is not registered")
            return self._new_refresh_token(client_id, user, mfa=mfa, issued_at=issued_at)

    def issued_refresh_tokens(self) -> list[str]:
        """Every refresh token issued so far (seeded, rotated or from a code), oldest first."""
        with self._lock:
            return list(self._grants.refresh_tokens)

    def fail_refresh_token(self, token: str, code: int) -> None:
        """Make `token` fail with `invalid_grant` and AADSTS `code` (50076, 50078 or 700082)."""
        if code not in FAILURE_CODES:
            raise ValueError(f"code must be one of {FAILURE_CODES}")
        with self._lock:
            self._grants.refresh_tokens[token].fail_code = code

    def revoke_all(self) -> None:
        """Revoke every refresh token and unredeemed code (access tokens live on until they expire)."""
        with self._lock:
            self._grants.revoke_all()

    def revoke_access_tokens(self) -> None:
        with self._lock:
            self._tokens.revoke_all()

    def is_valid_access_token(self, token: str, audience: str) -> bool:
        claims = self._tokens.claims_for(token, audience)
        if claims is None:
            return False
        with self._lock:
            if not self._tokens.is_live(claims):
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
            Route("GET", rf"(?:{_TENANT})?/discovery/v2\.0/keys", "keys", self._keys),
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
        return Response(200, _instance_metadata(self.url, f"{self.host}:{self.port}", tenant))

    def _openid_v2(self, request: Recorded, params: dict[str, str]) -> Response:
        return self._openid(params["tenant"], f"{self.url}/{self.tenant_id}/v2.0", "/v2.0")

    def _openid_v1(self, request: Recorded, params: dict[str, str]) -> Response:
        return self._openid(params["tenant"], tokens.sts_issuer(self.tenant_id), "")

    def _openid(self, tenant: str, issuer: str, version: str) -> Response:
        try:
            self._check_tenant(tenant)
        except EntraError as error:
            return self._refuse(error)
        return Response(200, _openid_configuration(self.url, tenant, issuer, version))

    def _keys(self, request: Recorded, params: dict[str, str]) -> Response:
        with self._lock:
            return Response(200, self.api.jwks())

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
                client_id = self._grants.authenticate_client(request, form, self.tenant_id)
                if grant_type == "client_credentials" and v2:
                    return Response(200, self.api.client_credentials(form, client_id, self.clock()))
                return Response(200, self._issue(form, self._redeem(grant_type, form, client_id), v2=v2))
            except EntraError as error:
                return self._refuse(error)

    def _authorize(self, request: Recorded, params: dict[str, str]) -> Response:
        """No UI: the user is taken to have signed in with MFA (and consented unless `consent_denied`)."""
        arg = request.arg
        with self._lock:
            try:
                self._check_tenant(params["tenant"])
                client_id, redirect_uri = arg("client_id") or "", arg("redirect_uri") or ""
                self._grants.check_redirect(client_id, redirect_uri, self.tenant_id)
            except EntraError as error:
                return self._refuse(error)  # nowhere safe to redirect to: Entra shows an error page

            refusal = _authorize_refusal(request, consent_denied=self.consent_denied)
            if refusal is not None:
                answer = {"error": refusal.error, "error_description": f"AADSTS{refusal.code}: {refusal.description}"}
            else:
                code = Code.requested(
                    request, client_id, redirect_uri, issued_at=self.clock(), mfa=self.sign_in_with_mfa
                )
                answer = {"code": self._grants.new_code(code), "session_state": str(uuid.uuid4())}
            state = arg("state")
            if state is not None:
                answer["state"] = state
            return _deliver(redirect_uri, answer, arg("response_mode") or "query")

    # --- grants and tokens

    def _check_tenant(self, tenant: str) -> None:
        if tenant.lower() not in self.tenants:
            raise aadsts.unknown_tenant(tenant)

    def _redeem(self, grant_type: str, form: dict[str, str], client_id: str) -> Grant:
        if grant_type == "refresh_token":
            return self._grants.redeem_refresh_token(
                form,
                client_id,
                now=self.clock(),
                lifetime=self.refresh_token_lifetime,
                rotation_revokes_old=self.rotation_revokes_old,
            )
        if grant_type == "authorization_code":
            return self._grants.redeem_code(form, client_id, now=self.clock(), lifetime=self.code_lifetime)
        if not grant_type:
            raise aadsts.missing("grant_type")
        raise aadsts.unsupported_grant_type(grant_type)

    def _issue(self, form: dict[str, str], grant: Grant, *, v2: bool) -> dict[str, Any]:
        scope = form.get("scope") or grant.scope or ""
        resource, permissions, offline = v2_target(scope) if v2 else v1_target(form)
        now = int(self.clock())
        expires_on = int(now + self.access_token_lifetime)
        access_token = self._tokens.access_token(
            grant, resource=resource, permissions=permissions, tenant_id=self.tenant_id, now=now, expires_on=expires_on
        )
        if v2:
            answer = v2_answer(resource, permissions, access_token, lifetime=expires_on - now)
        else:
            answer = v1_answer(resource, permissions, access_token, now=now, expires_on=expires_on)
        if offline:
            answer["refresh_token"] = self._new_refresh_token(grant.client_id, grant.user, mfa=grant.mfa)
        if v2 and "openid" in scope.lower().split():
            issuer = f"{self.url}/{self.tenant_id}/v2.0"
            answer["id_token"] = self._tokens.id_token(
                grant, issuer=issuer, tenant_id=self.tenant_id, now=now, expires_on=expires_on
            )
        return answer

    def _new_refresh_token(self, client_id: str, user: str, *, mfa: bool, issued_at: float | None = None) -> str:
        issued_at = self.clock() if issued_at is None else issued_at
        return self._grants.new_refresh_token(client_id, user, mfa=mfa, issued_at=issued_at)

    def _refuse(self, error: EntraError) -> Response:
        return Response(error.status, aadsts.body(error, self.clock()))


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
