"""Is the recorded consent healthy? A pure rule over the state `KeepConsentAlive` recorded, for `GET /api/health`.

Unhealthy when (docs/design.md, "Consent keep-alive, health and alerts"):
- no check was ever recorded and the refresh token was stored more than 48 hours ago (a fresh consent or deploy is
  healthy until the first daily run), or the last check is older than 48 hours (the daily timer is not running:
  two missed runs, so one late run is tolerated);
- the last check's outcome is not `ok` (`consent-required`, `mfa-required`, ...), or the token lacked MFA;
- the stored refresh token has expired, or expires within 7 days (the daily write-back is failing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.clock import iso

if TYPE_CHECKING:  # consent_state imports the Table SDK; Health imports it with its first check
    from shared.storage.consent_state import ConsentState

STALE_AFTER_SECONDS = 48 * 3600
EXPIRY_MARGIN_DAYS = 7
DAY_SECONDS = 86_400
NEVER_CHECKED = (
    "KeepConsentAlive has recorded no check yet: it runs on CONSENT_CHECK_SCHEDULE (default 03:30 UTC); run it "
    "now with POST /admin/functions/KeepConsentAlive (master key, body {})"
)  # fmt: skip


@dataclass(frozen=True)
class ConsentHealth:
    healthy: bool
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)


def assess_consent(state: ConsentState | None, now: float, stored_at: float | None = None) -> ConsentHealth:
    """`stored_at`: when the current refresh token was written to Key Vault (None if unknown)."""
    if state is None:  # before the first check: only Key Vault says when the consent was stored
        facts = _facts(None, now) | {"refreshTokenStoredAt": iso(stored_at)}
        if stored_at is None:
            return ConsentHealth(False, NEVER_CHECKED, facts)
        fresh = now - stored_at <= STALE_AFTER_SECONDS
        late = "" if fresh else " (over 48 hours without a check)"
        detail = f"the refresh token was stored {_ago(now - stored_at)}{late}; {NEVER_CHECKED}"
        return ConsentHealth(fresh, detail, facts)
    facts = _facts(state, now)
    days = facts["daysUntilRefreshTokenExpires"]
    if not state.ok:
        return ConsentHealth(False, f"the last check failed ({state.outcome}): {state.detail}", facts)
    if state.mfa is not True:
        return ConsentHealth(False, "the last check's access token did not prove MFA; re-run the consent tool", facts)
    if days is not None and days <= 0:
        return ConsentHealth(False, "the stored SAM refresh token has expired; re-run the consent tool", facts)
    if now - state.last_checked_at > STALE_AFTER_SECONDS:
        hours = (now - state.last_checked_at) / 3600
        detail = f"the last check was {hours:.0f} hours ago (more than 48): is KeepConsentAlive running?"
        return ConsentHealth(False, detail, facts)
    if days is not None and days < EXPIRY_MARGIN_DAYS:
        detail = (
            f"the stored SAM refresh token expires in {days} days: the daily write-back to Key Vault is failing "
            "(check the app identity's Key Vault role), or re-run the consent tool"
        )
        return ConsentHealth(False, detail, facts)
    return ConsentHealth(True, f"consent ok, MFA proven; the refresh token is renewed daily ({days} days left)", facts)


def _ago(seconds: float) -> str:
    hours = math.floor(max(0.0, seconds) / 3600)
    return "less than an hour ago" if hours < 1 else f"{hours} hour{'s' if hours > 1 else ''} ago"


def _facts(state: ConsentState | None, now: float) -> dict[str, Any]:
    expires_at = state.refresh_token_expires_at if state else None
    return {
        "outcome": state.outcome if state else None,
        "mfa": state.mfa if state else None,
        "lastCheckedAt": iso(state.last_checked_at) if state else None,
        "refreshTokenStoredAt": iso(state.refresh_token_stored_at) if state else None,
        "refreshTokenExpiresAt": iso(expires_at),
        "daysUntilRefreshTokenExpires": None if expires_at is None else math.floor((expires_at - now) / DAY_SECONDS),
    }
