"""POST /api/upgrades end to end: CreateUpgrade.main with the real shared code against the sandbox.

Assertions are on what the stand-ins received over the wire and on what the caller got back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox.partner_center import Customer
from sandbox.stack import APP_ID_SECRET, APP_SECRET_SECRET, REFRESH_TOKEN_SECRET, SamSeed, Sandbox
from shared.correlation import is_guid
from support.harness import BASE_URL, AppHarness

PROBLEM = "urn:partner-center-upgrade:problem:"


def new_customer() -> str:
    return str(uuid.uuid4())


def body_for(customer_id: str, **extra: object) -> dict[str, object]:
    return {"customerId": customer_id, "productFamily": "Azure", **extra}


# --- the happy path -------------------------------------------------------------------------------


def test_accepted_upgrade_answers_202_with_location_retry_after_and_body(app: AppHarness, sandbox: Sandbox) -> None:
    customer = new_customer()
    correlation = str(uuid.uuid4())

    answer = app.post(body_for(customer, productFamily="azure"), headers={"x-correlation-id": correlation})

    assert answer.status == 202
    body = answer.json()
    upgrade_id = body["upgradeId"]
    assert upgrade_id in sandbox.partner_center.upgrades
    location = answer.header("Location") or ""
    assert location.startswith(f"{BASE_URL}/api/follow/upgrades/{upgrade_id}?customerId={customer}&expires=")
    assert answer.header("Retry-After") == "60"
    assert answer.header("x-correlation-id") == correlation
    assert answer.content_type.startswith("application/json")
    assert body == {
        "upgradeId": upgrade_id,
        "customerId": customer,
        "productFamily": "Azure",
        "status": "InProgress",
        "partnerCenterLocation": f"productUpgrades/{upgrade_id}",
        "statusUri": f"{BASE_URL}/api/upgrades/{upgrade_id}?customerId={customer}",
        "existing": False,
        "correlationId": correlation,
    }


def test_partner_center_gets_the_documented_body_and_headers_with_a_token_from_the_stored_refresh_token(
    app: AppHarness, sandbox: Sandbox, sam: SamSeed
) -> None:
    customer = new_customer()
    correlation = str(uuid.uuid4())

    assert app.post(body_for(customer), headers={"x-correlation-id": correlation}).status == 202

    [exchange] = sandbox.entra.requests_to("token")
    assert exchange.path.endswith(f"/{sandbox.tenant_id}/oauth2/v2.0/token")
    form = exchange.form
    assert form["grant_type"] == "refresh_token"
    assert (form["client_id"], form["client_secret"], form["refresh_token"]) == (
        sam.app_id,
        sam.app_secret,
        sam.refresh_token,
    )
    assert form["scope"] == f"{sandbox.partner_center.url}/user_impersonation offline_access"

    eligibility, create = sandbox.partner_center.log
    assert (eligibility.route, create.route) == ("eligibility", "create")
    assert create.method == "POST" and create.path == "/v1/productupgrades"
    assert create.json == {"customerId": customer, "productFamily": "Azure"}
    headers = create.headers
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Locale"] == "en-US"
    assert headers["MS-PartnerCenter-Application"] == "PartnerCenterUpgradeFunctions"
    assert headers["MS-CorrelationId"] == correlation
    assert is_guid(headers["MS-RequestId"])
    assert eligibility.headers["MS-RequestId"] != headers["MS-RequestId"]
    token = create.bearer_token()
    assert token and sandbox.entra.is_valid_access_token(token, sandbox.partner_center.url)


def test_without_the_eligibility_check_only_the_create_is_called(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    configure(CHECK_ELIGIBILITY="false")

    assert app.post(body_for(new_customer())).status == 202

    assert [r.route for r in sandbox.partner_center.log] == ["create"]


def test_an_existing_upgrade_named_by_eligibility_is_returned_instead_of_creating_another(
    app: AppHarness, sandbox: Sandbox
) -> None:
    customer = new_customer()
    existing = sandbox.partner_center.seed_upgrade(customer)

    answer = app.post(body_for(customer))

    assert answer.status == 202
    assert answer.json()["upgradeId"] == existing
    assert answer.json()["existing"] is True
    assert answer.json()["partnerCenterLocation"] == f"productUpgrades/{existing}"
    assert [r.route for r in sandbox.partner_center.log] == ["eligibility"]


def test_correlation_id_is_replaced_when_the_caller_sends_no_guid(app: AppHarness, sandbox: Sandbox) -> None:
    answer = app.post(body_for(new_customer()), headers={"x-correlation-id": "not-a-guid"})

    correlation = answer.header("x-correlation-id")
    assert correlation and is_guid(correlation) and correlation != "not-a-guid"
    assert answer.json()["correlationId"] == correlation
    assert sandbox.partner_center.requests_to("create")[0].headers["MS-CorrelationId"] == correlation


# --- retries and MS-RequestId -----------------------------------------------------------------------


def test_a_failing_create_is_retried_with_the_same_request_id(app: AppHarness, sandbox: Sandbox) -> None:
    sandbox.partner_center.faults.add("create", status=503, times=2)

    answer = app.post(body_for(new_customer()))

    assert answer.status == 202
    creates = sandbox.partner_center.requests_to("create")
    assert [c.status for c in creates] == [503, 503, 202]
    assert len({c.headers["MS-RequestId"] for c in creates}) == 1
    assert sandbox.partner_center.creates == 1


def test_each_logical_call_gets_a_new_request_id(app: AppHarness, sandbox: Sandbox) -> None:
    app.post(body_for(new_customer()))
    app.post(body_for(new_customer()))

    ids = [r.headers["MS-RequestId"] for r in sandbox.partner_center.log]
    assert len(ids) == 4 and len(set(ids)) == 4


def test_a_reset_connection_is_retried_and_partner_center_creates_one_upgrade(
    app: AppHarness, sandbox: Sandbox
) -> None:
    sandbox.partner_center.faults.add("create", reset_connection=True)

    answer = app.post(body_for(new_customer()))

    assert answer.status == 202
    creates = sandbox.partner_center.requests_to("create")
    assert len(creates) == 2 and creates[0].headers["MS-RequestId"] == creates[1].headers["MS-RequestId"]
    assert sandbox.partner_center.creates == 1


def test_throttled_create_waits_for_retry_after_then_succeeds(app: AppHarness, sandbox: Sandbox) -> None:
    sandbox.partner_center.faults.add("create", status=429, retry_after=1)

    answer = app.post(body_for(new_customer()))

    assert answer.status == 202
    first, second = sandbox.partner_center.requests_to("create")
    assert (first.status, second.status) == (429, 202)
    assert second.at - first.at >= 1.0
    assert first.headers["MS-RequestId"] == second.headers["MS-RequestId"]


def test_throttling_beyond_the_budget_is_503_with_partner_centers_retry_after(
    app: AppHarness, sandbox: Sandbox
) -> None:
    sandbox.partner_center.faults.add("create", status=429, retry_after=120)

    answer = app.post(body_for(new_customer()))

    assert answer.status == 503
    assert answer.header("Retry-After") == "120"
    problem = answer.json()
    assert problem["type"] == PROBLEM + "partner-center-throttled"
    assert problem["partnerCenter"]["httpStatus"] == 429
    assert len(sandbox.partner_center.requests_to("create")) == 1


def test_partner_center_5xx_after_retries_is_502(app: AppHarness, sandbox: Sandbox) -> None:
    sandbox.partner_center.faults.add("create", status=500, times=10)

    answer = app.post(body_for(new_customer()))

    assert answer.status == 502
    problem = answer.json()
    assert problem["type"] == PROBLEM + "partner-center-error"
    assert problem["partnerCenter"]["code"] == "800003"
    assert len(sandbox.partner_center.requests_to("create")) == 4


def test_partner_center_timeout_after_retries_is_504(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    configure(PARTNER_CENTER_TIMEOUT_SECONDS="0.3")
    sandbox.partner_center.faults.add("create", delay=1.0, times=10)

    answer = app.post(body_for(new_customer()))

    assert answer.status == 504
    assert answer.json()["type"] == PROBLEM + "partner-center-timeout"
    creates = sandbox.partner_center.requests_to("create")
    assert len(creates) == 4 and len({c.headers["MS-RequestId"] for c in creates}) == 1


def test_a_401_forces_one_token_refresh_and_the_retry_succeeds(app: AppHarness, sandbox: Sandbox) -> None:
    sandbox.partner_center.faults.add("create", status=401)

    answer = app.post(body_for(new_customer()))

    assert answer.status == 202
    assert sandbox.entra.exchanges == 2
    first, second = sandbox.partner_center.requests_to("create")
    assert first.bearer_token() != second.bearer_token()


def test_a_401_after_the_forced_refresh_is_502(app: AppHarness, sandbox: Sandbox) -> None:
    sandbox.partner_center.faults.add("create", status=401, times=5)

    answer = app.post(body_for(new_customer()))

    assert answer.status == 502
    assert answer.json()["type"] == PROBLEM + "partner-center-error"
    assert answer.json()["partnerCenter"]["httpStatus"] == 401
    assert len(sandbox.partner_center.requests_to("create")) == 2
    assert sandbox.entra.exchanges == 2


# --- Partner Center says no -------------------------------------------------------------------------


def test_a_customer_that_is_not_eligible_gets_422_with_the_reason(app: AppHarness, sandbox: Sandbox) -> None:
    customer = new_customer()
    sandbox.partner_center.add_customer(Customer(customer, eligible=False, reason="No legacy Azure subscriptions"))

    answer = app.post(body_for(customer))

    assert answer.status == 422
    problem = answer.json()
    assert problem["type"] == PROBLEM + "not-eligible"
    assert "No legacy Azure subscriptions" in problem["detail"]
    assert problem["partnerCenter"]["description"] == "No legacy Azure subscriptions"
    assert sandbox.partner_center.requests_to("create") == []


@pytest.mark.parametrize(
    ("status", "code"),
    [(403, "900105"), (403, "900108"), (400, "900107"), (403, "900119"), (403, "900120"), (403, "900130")],
)
def test_partner_center_rejecting_the_customer_is_422_with_its_code_and_description(
    app: AppHarness, sandbox: Sandbox, status: int, code: str
) -> None:
    customer = new_customer()
    description = f"Partner Center says no ({code})"
    sandbox.partner_center.add_customer(Customer(customer, create_error=(status, code, description)))

    answer = app.post(body_for(customer))

    assert answer.status == 422
    problem = answer.json()
    assert problem["type"] == PROBLEM + "partner-center-rejected"
    create = sandbox.partner_center.requests_to("create")[0]
    assert problem["partnerCenter"] == {
        "httpStatus": status,
        "code": code,
        "description": description,
        "requestId": create.headers["MS-RequestId"],
        "correlationId": answer.header("x-correlation-id"),
    }


def test_an_upgrade_already_in_progress_is_409(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    configure(CHECK_ELIGIBILITY="false")
    customer = new_customer()
    sandbox.partner_center.seed_upgrade(customer)

    answer = app.post(body_for(customer))

    assert answer.status == 409
    problem = answer.json()
    assert problem["type"] == PROBLEM + "upgrade-conflict"
    assert problem["partnerCenter"]["code"] == "900109"


def test_a_409_in_progress_whose_upgrade_eligibility_cannot_name_stays_409(app: AppHarness, sandbox: Sandbox) -> None:
    customer = new_customer()
    conflict = (409, "900109", "Not allowed because original upgrade is still in progress.")
    sandbox.partner_center.add_customer(Customer(customer, create_error=conflict))

    answer = app.post(body_for(customer))

    assert answer.status == 409
    assert answer.json()["partnerCenter"]["code"] == "900109"
    assert [r.route for r in sandbox.partner_center.log] == ["eligibility", "create", "eligibility"]


# --- SAM consent and the refresh token --------------------------------------------------------------


@pytest.mark.parametrize("aadsts", [50076, 50078, 700082])
def test_a_refresh_token_that_needs_consent_is_502_consent_required_logged_once(
    app: AppHarness, sandbox: Sandbox, sam: SamSeed, caplog: pytest.LogCaptureFixture, aadsts: int
) -> None:
    sandbox.entra.fail_refresh_token(sam.refresh_token, aadsts)

    answer = app.post(body_for(new_customer()))

    assert answer.status == 502
    problem = answer.json()
    assert problem["type"].endswith("consent-required")
    assert f"AADSTS{aadsts}" in problem["detail"] and "consent" in problem["detail"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and f"AADSTS{aadsts}" in errors[0].getMessage()
    assert "problemType=urn:partner-center-upgrade:problem:consent-required" in errors[0].getMessage()  # the alert
    assert sandbox.partner_center.log == []


def test_the_rotated_refresh_token_is_written_back_when_the_stored_one_is_over_a_day_old(
    app: AppHarness, sandbox: Sandbox
) -> None:
    old = sandbox.seed_sam_credentials(refresh_token_age_hours=25)

    assert app.post(body_for(new_customer())).status == 202

    assert sandbox.key_vault.writes(REFRESH_TOKEN_SECRET) == 1
    current = sandbox.key_vault.versions(REFRESH_TOKEN_SECRET)[-1]
    assert current["value"] != old.refresh_token
    assert current["value"] in sandbox.entra.issued_refresh_tokens()
    assert current["attributes"].get("exp")  # expires with the refresh token's 90-day lifetime


def test_a_fresh_refresh_token_is_not_rewritten(app: AppHarness, sandbox: Sandbox) -> None:
    assert app.post(body_for(new_customer())).status == 202

    assert sandbox.key_vault.writes(REFRESH_TOKEN_SECRET) == 0


def test_32_concurrent_first_requests_share_one_token_exchange_and_one_read_per_secret(
    app: AppHarness, sandbox: Sandbox
) -> None:
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda _: app.post(body_for(new_customer())), range(32)))

    assert [a.status for a in answers] == [202] * 32
    assert sandbox.entra.exchanges == 1
    for name in (APP_ID_SECRET, APP_SECRET_SECRET, REFRESH_TOKEN_SECRET):
        assert sandbox.key_vault.reads(name) == 1, name
    assert sandbox.partner_center.creates == 32


# --- outside failures -------------------------------------------------------------------------------


def test_key_vault_down_is_503_with_retry_after_and_partner_center_is_not_called(
    app: AppHarness, sandbox: Sandbox
) -> None:
    sandbox.key_vault.down()

    answer = app.post(body_for(new_customer()))

    assert answer.status == 503
    assert answer.header("Retry-After")
    assert answer.json()["type"] == PROBLEM + "dependency-unavailable"
    assert sandbox.partner_center.log == []


def test_entra_down_is_503_with_retry_after(app: AppHarness, sandbox: Sandbox) -> None:
    sandbox.entra.down()

    answer = app.post(body_for(new_customer()))

    assert answer.status == 503
    assert answer.header("Retry-After")
    assert sandbox.partner_center.log == []


def test_the_log_shows_each_partner_center_call_with_its_tracking_ids(
    app: AppHarness, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    answer = app.post(body_for(new_customer()))

    correlation = answer.header("x-correlation-id")
    create = sandbox.partner_center.requests_to("create")[0]
    lines = [r.getMessage() for r in caplog.records]
    assert any("Partner Center create -> 202" in line and create.headers["MS-RequestId"] in line for line in lines)
    assert all(line.startswith(f"[{correlation}]") for line in lines if line.startswith("["))
