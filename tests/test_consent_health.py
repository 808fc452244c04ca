"""KeepConsentAlive, GET /api/health and the consent/MFA alert lines, against the sandbox and Azurite.

The timer runs as the host runs it (`KeepConsentAlive.main` with a real `TimerRequest`); rotations are counted in
the Key Vault stand-in's versions, exchanges at the Entra stand-in; the ERROR lines are matched with the very regex
the deployed Azure Monitor alert uses (infra/alerts.bicep).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.clock import ManualClock
from sandbox.stack import REFRESH_TOKEN_SECRET, SamSeed, Sandbox
from shared.api.callers import OPERATIONS_READ
from shared.clock import iso
from shared.consent.health import assess_consent
from shared.services import services
from shared.storage.consent_state import ConsentState
from support.callers import bearer
from support.harness import AppHarness

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400.0
PROBLEM = "urn:partner-center-upgrade:problem:"


def _alert_pattern() -> re.Pattern[str]:
    """The regex of the consent alert's KQL query, as deployed."""
    bicep = (ROOT / "infra" / "alerts.bicep").read_text()
    query = re.search(r"^var consentQuery = '''\n(.*?)'''$", bicep, re.MULTILINE | re.DOTALL)
    assert query
    (pattern,) = re.findall(r'matches regex @"((?:[^"]|"")*)"', query.group(1))
    return re.compile(pattern)


def alert_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The ERROR lines the consent alert fires on."""
    pattern = _alert_pattern()
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and pattern.search(r.getMessage())]


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture
def own_queues(configure: Callable[..., None]) -> None:
    """A batch queue of this test's own, so poison counts are this test's only (Azurite is shared)."""
    configure(UPGRADE_BATCH_QUEUE=f"batch-{uuid.uuid4().hex[:12]}")


# --- the keep-alive ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("own_queues")
def test_keep_alive_rotates_the_refresh_token_once_per_24_hours_and_health_shows_it(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    vault, entra = sandbox.key_vault, sandbox.entra
    vault.backdate(REFRESH_TOKEN_SECRET, 25 * 3600)  # stored more than a day ago: the next redemption rotates it
    before = len(vault.versions(REFRESH_TOKEN_SECRET))  # the session's sandbox keeps earlier tests' versions

    app.keep_consent_alive()
    rotated = vault.versions(REFRESH_TOKEN_SECRET)
    app.keep_consent_alive()  # same instance, same minute: a real exchange again, but no second rotation
    again = vault.versions(REFRESH_TOKEN_SECRET)
    virtual_clock.advance(12 * 3600)
    app.keep_consent_alive()
    half_day = vault.versions(REFRESH_TOKEN_SECRET)
    virtual_clock.advance(13 * 3600)  # 25 h after the rotation
    app.keep_consent_alive()
    next_day = vault.versions(REFRESH_TOKEN_SECRET)

    added = [len(versions) - before for versions in (rotated, again, half_day, next_day)]
    assert added == [1, 1, 1, 2]
    assert entra.exchanges == 4  # every run redeemed the token for real, none reused a cached access token
    assert rotated[-1]["value"] in entra.issued_refresh_tokens()
    assert sandbox.partner_center.log == []  # the keep-alive proves consent without calling Partner Center
    answer = app.health()
    assert answer.status == 200, answer.body
    body = answer.json()
    assert body["status"] == "healthy"
    assert {name: check["status"] for name, check in body["checks"].items()} == dict.fromkeys(
        ("configuration", "keyVault", "storage", "consent", "poisonMessages"), "healthy"
    )
    consent = body["checks"]["consent"]
    stored_at = next_day[-1]["attributes"]["created"]
    assert (consent["outcome"], consent["mfa"], consent["daysUntilRefreshTokenExpires"]) == ("ok", True, 89)
    assert consent["refreshTokenStoredAt"].startswith(_iso_minute(stored_at))
    assert consent["refreshTokenExpiresAt"].startswith(_iso_minute(stored_at + 90 * DAY))
    assert consent["lastCheckedAt"].startswith(_iso_minute(virtual_clock.now()))
    assert error_lines(caplog) == []
    assert answer.header("Cache-Control") == "no-store"


def _iso_minute(epoch: float) -> str:
    return (iso(epoch) or "")[:16]


@pytest.mark.usefixtures("own_queues")
def test_an_expired_consent_shows_on_health_and_in_exactly_one_alert_line(
    app: AppHarness, sandbox: Sandbox, sam: SamSeed, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.entra.fail_refresh_token(sam.refresh_token, 700082)

    app.keep_consent_alive()
    answer = app.health()

    assert answer.status == 503
    body = answer.json()
    consent = body["checks"]["consent"]
    assert body["status"] == "unhealthy" and consent["status"] == "unhealthy"
    assert consent["outcome"] == "consent-required" and consent["mfa"] is None
    assert "AADSTS700082" in consent["detail"] and "make consent" in consent["detail"]
    assert body["checks"]["keyVault"]["status"] == "healthy"  # the secrets are readable; the token is dead
    [line] = alert_lines(caplog)
    assert f"problemType={PROBLEM}consent-required" in line and "AADSTS700082" in line
    assert error_lines(caplog) == [line]
    assert sandbox.partner_center.log == []


@pytest.mark.usefixtures("own_queues")
def test_a_consent_without_mfa_shows_on_health_and_in_exactly_one_alert_line(
    app: AppHarness, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.seed_sam_credentials(mfa=False)

    app.keep_consent_alive()
    answer = app.health()

    assert answer.status == 503
    consent = answer.json()["checks"]["consent"]
    assert (consent["status"], consent["outcome"], consent["mfa"]) == ("unhealthy", "mfa-required", False)
    assert 'make consent ARGS="--vault' in consent["detail"] and "MFA" in consent["detail"]
    assert consent["daysUntilRefreshTokenExpires"] == 89  # the token itself works and was renewed
    [line] = alert_lines(caplog)
    assert f"problemType={PROBLEM}mfa-required" in line and "KeepConsentAlive" in line
    assert error_lines(caplog) == [line]
    assert sandbox.partner_center.log == []


def test_an_upgrade_with_a_token_without_mfa_answers_502_mfa_required(
    app: AppHarness, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.seed_sam_credentials(mfa=False)

    answer = app.post({"customerId": str(uuid.uuid4()), "productFamily": "Azure"})

    assert answer.status == 502 and answer.content_type == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == f"{PROBLEM}mfa-required"
    assert (
        'make consent ARGS="--vault' in problem["detail"]
        and "sign in as the integration user with MFA" in (problem["detail"])
    )
    assert (problem["partnerCenter"]["httpStatus"], problem["partnerCenter"]["code"]) == (401, "900421")
    # One forced token refresh, then no further attempt: retrying cannot fix a consent.
    assert [r.status for r in sandbox.partner_center.log] == [401, 401]
    [line] = alert_lines(caplog)
    assert f"problemType={PROBLEM}mfa-required" in line
    assert error_lines(caplog) == [line]


# --- the health route ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("own_queues")
def test_health_counts_poison_messages_per_queue(app: AppHarness, sandbox: Sandbox) -> None:
    app.keep_consent_alive()
    poison = f"{app.queue_name}-poison"
    app.queue(poison).send_message('{"upgradeId": "x"}')

    answer = app.health()

    assert answer.status == 503
    checks = answer.json()["checks"]
    batch_poison = f"{services().settings.batch_queue}-poison"
    assert checks["poisonMessages"]["status"] == "unhealthy"
    assert checks["poisonMessages"]["queues"] == {poison: 1, batch_poison: 0}
    assert f"{poison}: 1" in checks["poisonMessages"]["detail"]
    assert all(checks[name]["status"] == "healthy" for name in ("configuration", "keyVault", "storage", "consent"))


@pytest.mark.usefixtures("own_queues")
def test_health_before_any_consent_check_is_healthy_for_a_fresh_consent_and_then_says_how_to_run_one(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    fresh = app.health()  # consent stored just now (a deploy or `make run`): the first daily run is still to come
    sandbox.key_vault.backdate(REFRESH_TOKEN_SECRET, 49 * 3600)
    configure()  # a new instance: the secret cache would otherwise keep the fresh version for minutes
    answer = app.health()

    assert fresh.status == 200, fresh.json()
    first = fresh.json()["checks"]["consent"]
    assert first["detail"].startswith("the refresh token was stored less than an hour ago; KeepConsentAlive has")
    assert first["detail"].count("KeepConsentAlive has") == 1  # said once, not twice
    stored_at = sandbox.key_vault.versions(REFRESH_TOKEN_SECRET)[-1]["attributes"]["created"]
    assert first["refreshTokenStoredAt"] is not None  # what "stored ... ago" is about is shown, not null
    assert answer.status == 503
    consent = answer.json()["checks"]["consent"]
    assert consent["status"] == "unhealthy" and consent["lastCheckedAt"] is None
    assert "stored 49 hours ago" in consent["detail"] and consent["refreshTokenStoredAt"].startswith(
        _iso_minute(stored_at)
    )
    assert "KeepConsentAlive" in consent["detail"] and "/admin/functions/KeepConsentAlive" in consent["detail"]
    assert sandbox.partner_center.log == [] and sandbox.entra.requests_to("token") == []  # no token spent


def test_health_with_invalid_settings_names_configuration(
    app: AppHarness, configure: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    configure(KEY_VAULT_URL="http://not-https.example")

    answer = app.health()

    # No caller can be checked without valid settings: the configuration problem, whose detail points at the log.
    assert answer.status == 500
    assert answer.json()["type"].endswith(":configuration-error")
    assert any("KEY_VAULT_URL must be an absolute https URL" in line for line in error_lines(caplog))


@pytest.mark.usefixtures("own_queues")
def test_health_reports_an_unreachable_key_vault_without_calling_partner_center(
    app: AppHarness, sandbox: Sandbox
) -> None:
    app.keep_consent_alive()
    services().secrets.invalidate(REFRESH_TOKEN_SECRET)
    _, app.credential = bearer(sandbox, (OPERATIONS_READ,))  # a monitor's token: it needs no Key Vault read
    sandbox.key_vault.down()

    answer = app.health()

    sandbox.key_vault.up()
    assert answer.status == 503
    checks = answer.json()["checks"]
    assert checks["keyVault"]["status"] == "unhealthy" and "Key Vault" in checks["keyVault"]["detail"]
    assert checks["consent"]["status"] == "healthy" and checks["storage"]["status"] == "healthy"
    assert sandbox.partner_center.log == []


# --- the consent state --------------------------------------------------------------------------------------


def _state(
    checked_at: float, *, outcome: str = "ok", mfa: bool | None = True, stored_days_ago: float = 0
) -> ConsentState:
    stored = checked_at - stored_days_ago * DAY
    return ConsentState(checked_at, outcome, "d", mfa, "v1", stored, stored + 90 * DAY)


@pytest.mark.parametrize(
    ("state", "healthy", "says"),
    [
        (_state(1_000_000), True, "89 days left"),
        (_state(1_000_000 - 47 * 3600), True, "days left"),
        (_state(1_000_000 - 49 * 3600), False, "more than 48"),
        (_state(1_000_000, stored_days_ago=84), False, "expires in 5 days"),
        (_state(1_000_000, stored_days_ago=91), False, "has expired"),
        (_state(1_000_000, outcome="mfa-required", mfa=False), False, "mfa-required"),
        (None, False, "no check yet"),
    ],
)
def test_the_consent_health_rule(state: ConsentState | None, healthy: bool, says: str) -> None:
    assessed = assess_consent(state, 1_000_000 + 60)
    assert assessed.healthy is healthy and says in assessed.detail


def test_an_older_check_never_overwrites_a_newer_one(app: AppHarness) -> None:
    store = services().consent_state
    newer, older = _state(2_000_000), _state(1_000_000, outcome="consent-required", mfa=None)

    store.record(newer)
    store.record(older)
    assert store.read() == newer
    store.record(_state(3_000_000))
    assert store.read() == _state(3_000_000)
