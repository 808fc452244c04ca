"""The daily consent keep-alive (function `KeepConsentAlive`; docs/design.md, "Consent keep-alive, health and
alerts").

An app without traffic would never redeem its SAM refresh token, and Entra expires an unused one after 90 days.
Once a day this redeems it for real (not a cached access token), which writes the rotated token back to Key Vault
under the 24-hour rule of `SamTokenProvider`, checks that the access token proves MFA, and records the outcome
(`shared/storage/consent_state.py`) for `GET /api/health`.

A bad consent is logged at ERROR exactly once, with `problemType=urn:partner-center-upgrade:problem:<slug>`:
a refused refresh token by `SamTokenProvider` itself, a token without MFA here. The check never raises for a
bad consent: a failed invocation would make the Functions host log a second ERROR without the problem type.
"""

from __future__ import annotations

from shared.clock import Clock
from shared.correlation import get_logger
from shared.errors import MFA_ADVICE, MfaRequired, UpgradeError
from shared.key_vault import Secret, SecretStore
from shared.partner_center.claims import authentication_methods, proves_mfa
from shared.partner_center.sam import REFRESH_TOKEN_LIFETIME_DAYS, SamTokenProvider
from shared.settings import Settings
from shared.storage.consent_state import OK, ConsentState, ConsentStateStore

log = get_logger(__name__)

DAY_SECONDS = 86_400


def keep_consent_alive(
    settings: Settings, tokens: SamTokenProvider, secrets: SecretStore, store: ConsentStateStore, clock: Clock
) -> ConsentState:
    """Redeem, check MFA, record. Raises UpgradeError only when the state cannot be recorded."""
    checked_at = clock.now()
    mfa: bool | None = None
    try:
        access_token = tokens.redeem_now()
    except UpgradeError as error:  # SamTokenProvider logged a refused token at ERROR with its problem type
        outcome, detail = error.slug, error.detail
        log.warning("KeepConsentAlive: the SAM refresh token could not be redeemed (%s)", outcome)
    else:
        mfa = proves_mfa(access_token)
        if mfa:
            outcome, detail = OK, "the SAM refresh token was redeemed and its access token proves MFA"
        else:
            methods = ", ".join(authentication_methods(access_token)) or "none"
            problem = MfaRequired(
                f"The SAM refresh token works, but its access token does not prove multi-factor authentication "
                f"(amr: {methods}), so Partner Center refuses App+User calls with it. {MFA_ADVICE}"
            )
            outcome, detail = problem.slug, problem.detail
            log.error(
                "KeepConsentAlive: the SAM access token has no MFA claim (amr: %s): problemType=%s",
                methods,
                problem.problem_type,
            )
    stored = _stored_refresh_token(secrets, settings)
    stored_at = stored.created_on if stored else None
    state = ConsentState(
        last_checked_at=checked_at,
        outcome=outcome,
        detail=detail,
        mfa=mfa,
        refresh_token_version=stored.version if stored else None,
        refresh_token_stored_at=stored_at,
        refresh_token_expires_at=stored_at + REFRESH_TOKEN_LIFETIME_DAYS * DAY_SECONDS if stored_at else None,
    )
    store.record(state)
    log.info(
        "KeepConsentAlive: consent %s, MFA %s, refresh token version %s expires in %s days",
        outcome,
        "yes" if mfa else "no" if mfa is False else "unknown",
        state.refresh_token_version,
        _days(state.refresh_token_expires_at, checked_at),
    )
    return state


def _stored_refresh_token(secrets: SecretStore, settings: Settings) -> Secret | None:
    """The refresh token's current Key Vault version (cached by the redemption just made), None if unreadable."""
    try:
        return secrets.get(settings.refresh_token_secret)
    except UpgradeError as error:
        log.warning("KeepConsentAlive: cannot read the refresh token's Key Vault version: %s", error.detail)
        return None


def _days(expires_at: float | None, now: float) -> str:
    return "unknown" if expires_at is None else f"{(expires_at - now) / DAY_SECONDS:.1f}"
