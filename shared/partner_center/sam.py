"""Secure Application Model: refresh token (from Key Vault) -> Partner Center access token.

- One exchange at a time per instance (single flight); the access token is reused until shortly
  before it expires.
- Every exchange returns a rotated refresh token. When the stored version is more than a day old,
  the new one is written back to Key Vault as a new version, so the 90-day inactivity expiry never bites.
- `invalid_grant` (expired, revoked, MFA required) means a human must redo the consent: it is logged
  at ERROR once per failed exchange with `problemType=urn:partner-center-upgrade:problem:<slug>` (what the
  Azure Monitor alert matches), never with the token, and remembered briefly so a burst of
  requests does not hammer Entra ID with a token that cannot work.

A plain form POST is used instead of MSAL: MSAL hides the rotated refresh token, and one grant is simpler
to reason about than MSAL's cache (see docs/partner-center.md, "SAM token flow").
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from shared.clock import Clock
from shared.correlation import get_logger
from shared.errors import (
    ConsentRequired,
    DependencyMisconfigured,
    DependencyUnavailable,
    SamCredentialsRejected,
    UpgradeError,
)
from shared.key_vault import Secret, SecretStore
from shared.partner_center.outbound import AttemptAgain, json_object, with_retries
from shared.settings import Settings
from shared.whole_number import whole_number

log = get_logger(__name__)

EARLY_REFRESH_SECONDS = 5 * 60
WRITE_BACK_AFTER_SECONDS = 24 * 60 * 60
REFRESH_TOKEN_LIFETIME_DAYS = 90
FAILURE_MEMORY_SECONDS = 60
TIMEOUT = (5.0, 15.0)
ATTEMPTS = 2
RETRY_WAIT_SECONDS = 0.5

_CONSENT_ERRORS = ("invalid_grant", "interaction_required")
_CLIENT_ERRORS = ("invalid_client", "unauthorized_client")
_AADSTS_MEANING = {
    50076: "multi-factor authentication is required",
    50078: "the multi-factor authentication has expired",
    50079: "the user must enroll for multi-factor authentication",
    700082: "the refresh token has expired (90 days without use) or was revoked",
    700084: "the refresh token has expired",
    700007: "the refresh token was issued to a different application",
    70000: "the grant is invalid or malformed",
    70043: "the refresh token expired under a Conditional Access sign-in frequency policy",
    50173: "the grant expired because the user's credentials changed",
    7000215: "the application secret is invalid or expired",
    7000222: "the application secret has expired",
}


@dataclass(frozen=True)
class _AccessToken:
    value: str
    expires_at: float

    def __repr__(self) -> str:
        return f"_AccessToken(expires_at={self.expires_at})"


@dataclass(frozen=True)
class _Credentials:
    app_id: Secret
    app_secret: Secret
    refresh_token: Secret


class SamTokenProvider:
    def __init__(self, settings: Settings, secrets: SecretStore, session: requests.Session, clock: Clock) -> None:
        self._settings = settings
        self._secrets = secrets
        self._session = session
        self._clock = clock
        self._token_url = f"{settings.authority_host}/{settings.partner_tenant_id}/oauth2/v2.0/token"
        self._scope = f"{settings.partner_center_base_url}/user_impersonation offline_access"
        self._lock = threading.Lock()
        self._token: _AccessToken | None = None
        self._failure: tuple[type[UpgradeError], str, float] | None = None

    def access_token(self, rejected: str | None = None) -> str:
        """A valid Partner Center access token. Pass the token Partner Center just rejected to force a new one."""
        token = self._token
        if token and rejected is None and self._usable(token):
            return token.value
        with self._lock:
            token = self._token
            if token and token.value != rejected and self._usable(token):
                return token.value
            if self._failure and self._clock.now() < self._failure[2]:
                kind, detail, _ = self._failure
                raise kind(detail)
            if rejected is not None:
                log.info("Partner Center rejected the access token; re-reading SAM secrets and exchanging again")
                self._invalidate_secrets()
            self._token = self._exchange()
            self._failure = None
            return self._token.value

    def redeem_now(self) -> str:
        """Redeem the refresh token now, whatever is cached, and return the new access token: the consent
        keep-alive's daily proof that the stored token still works. Re-reads the SAM secrets first, so the
        24-hour write-back rule sees the version that is in Key Vault now."""
        with self._lock:
            self._invalidate_secrets()
            self._token = self._exchange()
            self._failure = None
            return self._token.value

    def _usable(self, token: _AccessToken) -> bool:
        return self._clock.now() < token.expires_at - EARLY_REFRESH_SECONDS

    def _secret_names(self) -> tuple[str, str, str]:
        s = self._settings
        return s.app_id_secret, s.app_secret_secret, s.refresh_token_secret

    def _invalidate_secrets(self) -> None:
        self._secrets.invalidate(*self._secret_names())

    def _credentials(self) -> _Credentials:
        app_id, app_secret, refresh_token = (self._secrets.get(n) for n in self._secret_names())
        return _Credentials(app_id, app_secret, refresh_token)

    def _exchange(self) -> _AccessToken:
        credentials = self._credentials()
        status, body = self._redeem(credentials)
        if status != 200 and body.get("error") in (*_CONSENT_ERRORS, *_CLIENT_ERRORS):
            # Auth failure: the vault may hold newer credentials (rotated by another instance or re-consented).
            self._invalidate_secrets()
            fresh = self._credentials()
            if fresh != credentials:
                log.info("SAM secrets changed in Key Vault since they were cached; retrying the exchange")
                credentials = fresh
                status, body = self._redeem(credentials)
        if status != 200:
            self._fail(body)
        return self._accept(body, credentials.refresh_token)

    def _redeem(self, credentials: _Credentials) -> tuple[int, dict[str, Any]]:
        form = {
            "grant_type": "refresh_token",
            "client_id": credentials.app_id.value,
            "client_secret": credentials.app_secret.value,
            "refresh_token": credentials.refresh_token.value,
            "scope": self._scope,
        }
        return with_retries(
            lambda attempt: self._redeem_once(form, attempt),
            attempts=ATTEMPTS,
            remaining=lambda: float("inf"),
            clock=self._clock,
        )

    def _redeem_once(self, form: dict[str, str], attempt: int) -> tuple[int, dict[str, Any]]:
        """Entra's answer, or `AttemptAgain` when Entra is unreachable, throttling or failing (429, 5xx)."""
        started = time.monotonic()
        try:
            response = self._session.post(self._token_url, data=form, timeout=TIMEOUT, allow_redirects=False)
        except requests.RequestException as error:
            log.warning("Entra ID token request failed: %s (attempt %d)", type(error).__name__, attempt)
            raise AttemptAgain(RETRY_WAIT_SECONDS, _entra_unavailable(10)) from None
        elapsed = (time.monotonic() - started) * 1000
        log.info("Entra ID token exchange -> %d in %.0f ms", response.status_code, elapsed)
        if response.status_code < 429 or 430 <= response.status_code < 500:
            return response.status_code, json_object(response)
        raise AttemptAgain(RETRY_WAIT_SECONDS, _entra_unavailable(_seconds(response.headers.get("Retry-After"), 10)))

    def _accept(self, body: dict[str, Any], stored: Secret) -> _AccessToken:
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise DependencyUnavailable("Entra ID answered without an access token", retry_after=10)
        lifetime = _seconds(body.get("expires_in"), 3600)
        token = _AccessToken(access_token, self._clock.now() + lifetime)
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != stored.value and self._stale(stored):
            self._write_back(rotated)
        return token

    def _stale(self, stored: Secret) -> bool:
        return stored.created_on is None or self._clock.now() - stored.created_on > WRITE_BACK_AFTER_SECONDS

    def _write_back(self, refresh_token: str) -> None:
        try:
            secret = self._secrets.set(
                self._settings.refresh_token_secret, refresh_token, expires_in_days=REFRESH_TOKEN_LIFETIME_DAYS
            )
        except UpgradeError as error:
            log.warning("could not write the rotated SAM refresh token back to Key Vault: %s", error.detail)
            return
        log.info("wrote the rotated SAM refresh token back to Key Vault (new version %s)", secret.version)

    def _fail(self, body: dict[str, Any]) -> None:
        error = str(body.get("error") or "unknown_error")
        codes = [c for c in body.get("error_codes") or [] if isinstance(c, int)]
        code = codes[0] if codes else None
        meaning = _AADSTS_MEANING.get(code or 0, "the request was refused")
        label = f"AADSTS{code}" if code else error
        trace = f"trace_id={body.get('trace_id')}, correlation_id={body.get('correlation_id')}"
        kind: type[UpgradeError]
        if error in _CONSENT_ERRORS:
            kind = ConsentRequired
            detail = (
                f"Entra ID refused the stored SAM refresh token ({label}: {meaning}). An operator must redo the "
                "Secure Application Model consent with the integration user and store the new refresh token "
                "in Key Vault (make consent, from the repository root)."
            )
        elif error in _CLIENT_ERRORS:
            kind = SamCredentialsRejected
            detail = (
                f"Entra ID refused the SAM application credentials ({label}: {meaning}). Store the current "
                "application id and secret in Key Vault."
            )
        else:
            kind = DependencyMisconfigured
            detail = f"Entra ID refused the token request ({label}); check PARTNER_TENANT_ID and AZURE_AUTHORITY_HOST."
        failure = kind(detail)
        log.error("SAM token exchange refused: problemType=%s %s [%s, %s]", failure.problem_type, detail, error, trace)
        self._failure = (kind, detail, self._clock.now() + FAILURE_MEMORY_SECONDS)
        raise failure


def _entra_unavailable(retry_after: int) -> DependencyUnavailable:
    return DependencyUnavailable(
        "Entra ID is unavailable; the Partner Center token could not be refreshed", retry_after
    )


def _seconds(value: Any, default: int) -> int:
    """Entra's v1 endpoint sends numbers as strings (ASCII digits only); Retry-After may be missing or a date."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return max(0, int(value))
    number = whole_number(value) if isinstance(value, str) else None
    return default if number is None else number
