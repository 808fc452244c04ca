"""The consent health rule before the first KeepConsentAlive check (shared/consent/health.py): healthy for 48 hours
after a consent, a detail that says how long ago it was stored (once), and the stored time among the facts."""

from __future__ import annotations

import pytest

from shared.clock import iso
from shared.consent.health import assess_consent

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("age_seconds", "healthy", "said"),
    [
        (0, True, "stored less than an hour ago"),
        (3599, True, "stored less than an hour ago"),
        (3600, True, "stored 1 hour ago"),
        (5 * 3600 + 59, True, "stored 5 hours ago"),
        (48 * 3600, True, "stored 48 hours ago"),
        (49 * 3600, False, "stored 49 hours ago (over 48 hours without a check)"),
    ],
)
def test_a_consent_not_checked_yet_says_when_it_was_stored(age_seconds: int, healthy: bool, said: str) -> None:
    health = assess_consent(None, NOW, NOW - age_seconds)

    assert health.healthy is healthy
    assert said in health.detail and health.detail.count("KeepConsentAlive has") == 1
    assert health.facts["refreshTokenStoredAt"] == iso(NOW - age_seconds)
    assert health.facts["lastCheckedAt"] is None


def test_without_a_stored_time_it_is_unhealthy_and_says_how_to_run_the_check() -> None:
    health = assess_consent(None, NOW)

    assert not health.healthy and "POST /admin/functions/KeepConsentAlive" in health.detail
    assert health.facts["refreshTokenStoredAt"] is None and "stored" not in health.detail
