"""The sandbox stand-ins speak the real protocols to the real clients.

Each test starts a fresh `Sandbox` on loopback ports with an injectable clock, points the process at it the
way Azure would (IDENTITY_ENDPOINT/IDENTITY_HEADER, a CA bundle with the local CA, no AZURE_CLIENT_*), and
acts through SecretClient + DefaultAzureCredential, MSAL, plain requests, or azure-storage-queue.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msal  # type: ignore[import-untyped]
import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from azure.storage.queue import QueueServiceClient

from sandbox import tokens
from sandbox.clock import ManualClock
from sandbox.customers import ALREADY_UPGRADING, ELIGIBLE, FAILING, NOT_ELIGIBLE
from sandbox.entra import PARTNER_CENTER_RESOURCE
from sandbox.fleet import NOT_ELIGIBLE_REASONS, Kind, generate_fleet
from sandbox.partner_center import Customer
from sandbox.stack import (
    APP_ID_SECRET,
    APP_SECRET_SECRET,
    CALLBACK_SIGNING_KEY_SECRET,
    REFRESH_TOKEN_SECRET,
    SamSeed,
    Sandbox,
)
from sandbox.throttle import SlidingWindow

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 5
PC_SCOPE = f"{PARTNER_CENTER_RESOURCE}/user_impersonation"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CREDENTIAL_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT",
)


def get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, timeout=TIMEOUT, **kwargs)


def post(url: str, **kwargs: Any) -> requests.Response:
    return requests.post(url, timeout=TIMEOUT, **kwargs)


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StaticCredential:
    """A credential that always hands out the same token (to prove the services check what they get)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", clock=clock) as started:
        for name in CREDENTIAL_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in started.environment().items():
            monkeypatch.setenv(name, value)
        yield started


@pytest.fixture
def seed(sandbox: Sandbox) -> SamSeed:
    return sandbox.seed_sam_credentials()


def token_url(sandbox: Sandbox, version: str = "v2.0") -> str:
    path = "oauth2/token" if version == "v1" else "oauth2/v2.0/token"
    return f"{sandbox.entra.url}/{sandbox.tenant_id}/{path}"


def refresh_form(seed: SamSeed, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "client_id": seed.app_id,
        "client_secret": seed.app_secret,
        "refresh_token": seed.refresh_token,
        **extra,
    }


class Session(requests.Session):
    """A keep-alive session whose calls time out like every other call here."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        return super().request(*args, **kwargs)


def partner_center_session(sandbox: Sandbox, seed: SamSeed) -> requests.Session:
    answer = post(token_url(sandbox, "v1"), data=refresh_form(seed, resource=PARTNER_CENTER_RESOURCE))
    session = Session()
    session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return session


def msal_app(sandbox: Sandbox, seed: SamSeed) -> msal.ConfidentialClientApplication:
    """MSAL, as the consent tool uses it, against the Entra stand-in (no instance discovery)."""
    return msal.ConfidentialClientApplication(
        seed.app_id,
        client_credential=seed.app_secret,
        authority=f"{sandbox.entra.url}/{sandbox.tenant_id}",
        instance_discovery=False,
    )


def upgrade_body(customer_id: str) -> dict[str, str]:
    return {"customerId": customer_id, "productFamily": "Azure"}


# --- managed identity + Key Vault


def test_secret_client_with_default_credential_uses_managed_identity_and_the_challenge(sandbox: Sandbox) -> None:
    vault = sandbox.key_vault
    client = SecretClient(vault.url, DefaultAzureCredential())

    first = client.set_secret(REFRESH_TOKEN_SECRET, "rt-1")
    client.set_secret(REFRESH_TOKEN_SECRET, "rt-2", content_type="text/plain", tags={"rotated": "yes"})
    current = client.get_secret(REFRESH_TOKEN_SECRET)
    versions = list(client.list_properties_of_secret_versions(REFRESH_TOKEN_SECRET))
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("no-such-secret")

    assert current.value == "rt-2" and current.properties.content_type == "text/plain"
    assert current.properties.tags == {"rotated": "yes"}
    assert client.get_secret(REFRESH_TOKEN_SECRET, first.properties.version).value == "rt-1"
    assert sorted(str(v.version) for v in versions) == sorted(
        v["id"].rsplit("/", 1)[1] for v in vault.versions(REFRESH_TOKEN_SECRET)
    )
    assert [p.name for p in client.list_properties_of_secrets()] == [REFRESH_TOKEN_SECRET]
    assert vault.current(REFRESH_TOKEN_SECRET) == "rt-2"
    assert (vault.writes(REFRESH_TOKEN_SECRET), vault.reads(REFRESH_TOKEN_SECRET)) == (2, 2)
    challenge = vault.log[0]
    assert challenge.route == "challenge" and challenge.status == 401 and "Authorization" not in challenge.headers
    assert sandbox.identity.tokens_issued == {vault.challenge_resource: 1}
    assert sandbox.identity.log[0].headers["X-IDENTITY-HEADER"] == sandbox.identity.identity_header


def test_key_vault_challenges_and_refuses_tokens_it_cannot_trust(sandbox: Sandbox) -> None:
    vault = sandbox.key_vault
    storage_token = get(
        sandbox.identity.endpoint,
        params={"api-version": "2019-08-01", "resource": "https://storage.azure.com"},
        headers={"X-IDENTITY-HEADER": sandbox.identity.identity_header},
    ).json()["access_token"]

    bare = get(f"{vault.url}/secrets/x/", params={"api-version": "2026-04-01"})
    wrong_audience = get(f"{vault.url}/secrets/x/", headers={"Authorization": f"Bearer {storage_token}"})
    with pytest.raises(ClientAuthenticationError):
        SecretClient(vault.url, StaticCredential("not-a-token"), retry_total=0).get_secret("x")

    assert bare.status_code == 401 and bare.json()["error"]["code"] == "Unauthorized"
    assert bare.headers["WWW-Authenticate"] == (
        f'Bearer authorization="https://login.microsoftonline.com/{sandbox.tenant_id}", '
        f'resource="https://0.0.1:{vault.port}"'
    )
    assert wrong_audience.status_code == 401
    assert vault.reads("x") == 0 and {r.route for r in vault.log} == {"challenge"}


def test_key_vault_helpers_and_soft_delete(sandbox: Sandbox, clock: FakeClock) -> None:
    vault = sandbox.key_vault
    vault.seed("aged", "v1", created=clock() - 3600)
    vault.seed("aged", "v2")
    vault.backdate("aged", 7200)
    client = SecretClient(vault.url, DefaultAzureCredential())

    secret = client.get_secret("aged")
    client.update_secret_properties("aged", secret.properties.version, enabled=False)
    with pytest.raises(HttpResponseError, match="disabled"):
        client.get_secret("aged")
    deleted = client.begin_delete_secret("aged").result()
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("aged")
    client.purge_deleted_secret("aged")

    assert secret.value == "v2" and secret.properties.created_on is not None
    assert secret.properties.created_on.timestamp() == int(clock() - 7200)
    assert deleted.name == "aged" and str(deleted.recovery_id).endswith("/deletedsecrets/aged")
    assert vault.current("aged") is None and vault.reads("aged") == 3


def test_managed_identity_speaks_the_app_service_protocol(sandbox: Sandbox, clock: FakeClock) -> None:
    identity = sandbox.identity
    query = {"api-version": "2019-08-01", "resource": "https://storage.azure.com/.default"}
    header = {"X-IDENTITY-HEADER": identity.identity_header}

    refused = get(identity.endpoint, params=query)
    answer = get(identity.endpoint, params=query, headers=header)
    unknown_identity = get(identity.endpoint, params={**query, "client_id": str(uuid.uuid4())}, headers=header)

    body = answer.json()
    claims = tokens.read(body["access_token"]) or {}
    assert refused.status_code == 401 and "X-IDENTITY-HEADER" in refused.json()["message"]
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert body["expires_on"] == str(claims["exp"]) and body["client_id"] == identity.client_id
    assert claims["aud"] == "https://storage.azure.com"
    assert claims["iss"] == f"https://sts.windows.net/{sandbox.tenant_id}/" and claims["tid"] == sandbox.tenant_id
    assert claims["nbf"] <= clock() < claims["exp"] and {"oid", "appid", "iat"} <= set(claims)
    assert identity.is_valid(body["access_token"], "https://storage.azure.com")
    assert not identity.is_valid(body["access_token"], "https://vault.azure.net")
    assert unknown_identity.status_code == 400
    assert unknown_identity.json()["message"] == "Unable to load the proper Managed Identity."
    assert identity.environment() == {
        "IDENTITY_ENDPOINT": identity.endpoint,
        "IDENTITY_HEADER": identity.identity_header,
    }


# --- Entra ID


def test_msal_refresh_token_grant_returns_a_rotated_refresh_token(sandbox: Sandbox, seed: SamSeed) -> None:
    entra = sandbox.entra
    app = msal_app(sandbox, seed)

    result = app.acquire_token_by_refresh_token(seed.refresh_token, scopes=[PC_SCOPE])
    again = app.acquire_token_by_refresh_token(seed.refresh_token, scopes=[PC_SCOPE])  # old one stays valid
    rotated = app.acquire_token_by_refresh_token(result["refresh_token"], scopes=[PC_SCOPE])

    assert result["refresh_token"] != seed.refresh_token and "access_token" in again and "access_token" in rotated
    assert entra.is_valid_access_token(result["access_token"], PARTNER_CENTER_RESOURCE)
    assert entra.exchanges == 3
    assert [r.route for r in entra.log] == ["discovery", "token", "token", "token"]
    sent = entra.requests_to("token")[0].form
    assert "offline_access" in sent["scope"].split() and sent["client_secret"] == seed.app_secret


def test_msal_instance_discovery_can_point_at_the_stand_in(sandbox: Sandbox, seed: SamSeed) -> None:
    entra = sandbox.entra
    app = msal.ConfidentialClientApplication(
        seed.app_id,
        client_credential=seed.app_secret,
        authority=f"{entra.url}/{sandbox.tenant_id}",
        instance_discovery=f"{entra.url}/common/discovery/instance",
    )

    result = app.acquire_token_by_refresh_token(seed.refresh_token, scopes=[PC_SCOPE])

    assert "access_token" in result and "refresh_token" in result
    assert [(r.route, r.path.rsplit("/", 1)[-1]) for r in entra.log] == [
        ("discovery", "instance"),
        ("discovery", "openid-configuration"),
        ("token", "token"),
    ]


def test_v1_refresh_grant_answers_with_string_numbers(sandbox: Sandbox, seed: SamSeed, clock: FakeClock) -> None:
    answer = post(token_url(sandbox, "v1"), data=refresh_form(seed, resource=PARTNER_CENTER_RESOURCE))

    body = answer.json()
    claims = tokens.read(body["access_token"]) or {}
    assert answer.status_code == 200
    assert {k: body[k] for k in ("token_type", "scope", "expires_in", "ext_expires_in", "resource")} == {
        "token_type": "Bearer",
        "scope": "user_impersonation",
        "expires_in": "3599",
        "ext_expires_in": "3599",
        "resource": PARTNER_CENTER_RESOURCE,
    }
    assert body["expires_on"] == str(int(clock()) + 3599) and body["not_before"].isdigit()
    assert body["refresh_token"] != seed.refresh_token
    assert claims["aud"] == PARTNER_CENTER_RESOURCE and claims["scp"] == "user_impersonation"
    assert claims["amr"] == ["pwd", "mfa"] and claims["appid"] == seed.app_id and claims["tid"] == sandbox.tenant_id
    assert claims["upn"] == "integration@partner.example" and claims["exp"] == int(clock()) + 3599


def test_v2_refresh_grant_returns_a_refresh_token_only_with_offline_access(sandbox: Sandbox, seed: SamSeed) -> None:
    offline = post(token_url(sandbox), data=refresh_form(seed, scope=f"{PC_SCOPE} offline_access"))
    online = post(token_url(sandbox), data=refresh_form(seed, scope=f"{PARTNER_CENTER_RESOURCE}/.default"))

    assert offline.status_code == 200 and online.status_code == 200
    assert offline.json()["expires_in"] == 3599 and offline.json()["token_type"] == "Bearer"
    assert offline.json()["scope"] == PC_SCOPE and "refresh_token" in offline.json()
    assert "refresh_token" not in online.json()
    assert sandbox.entra.is_valid_access_token(online.json()["access_token"], PARTNER_CENTER_RESOURCE)


def test_refresh_grant_errors_have_entra_shape(
    sandbox: Sandbox, seed: SamSeed, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sandbox")
    entra = sandbox.entra
    entra.register_app("other-app", "other-secret")
    scope = f"{PC_SCOPE} offline_access"
    stale = entra.issue_refresh_token(seed.app_id, issued_at=clock() - 91 * 86400)
    mfa = entra.issue_refresh_token(seed.app_id)
    entra.fail_refresh_token(mfa, 50076)

    mfa_required = post(token_url(sandbox), data=refresh_form(seed, refresh_token=mfa, scope=scope))
    bad_secret = post(token_url(sandbox), data=refresh_form(seed, client_secret="nope", scope=scope))
    other_client = post(
        token_url(sandbox),
        data=refresh_form(seed, client_id="other-app", client_secret="other-secret", scope=scope),
    )
    expired = post(token_url(sandbox), data=refresh_form(seed, refresh_token=stale, scope=scope))
    entra.revoke_all()
    revoked = post(token_url(sandbox, "v1"), data=refresh_form(seed, resource=PARTNER_CENTER_RESOURCE))

    body = mfa_required.json()
    assert mfa_required.status_code == 400 and body["error"] == "invalid_grant" and body["error_codes"] == [50076]
    assert body["error_description"].startswith("AADSTS50076: Due to a configuration change")
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)
    assert (bad_secret.status_code, bad_secret.json()["error"]) == (401, "invalid_client")
    assert bad_secret.json()["error_codes"] == [7000215]
    assert (other_client.status_code, other_client.json()["error_codes"]) == (400, [700007])
    for answer in (expired, revoked):
        assert answer.status_code == 400 and answer.json()["error_codes"] == [700082]
        assert "inactive for 90.00:00:00" in answer.json()["error_description"]
    assert entra.exchanges == 5
    assert seed.app_secret not in caplog.text and seed.refresh_token not in caplog.text


def test_rotation_can_be_made_to_revoke_the_old_refresh_token(sandbox: Sandbox, seed: SamSeed) -> None:
    sandbox.entra.rotation_revokes_old = True
    form = refresh_form(seed, resource=PARTNER_CENTER_RESOURCE)

    first = post(token_url(sandbox, "v1"), data=form)
    second = post(token_url(sandbox, "v1"), data=form)

    assert first.status_code == 200 and second.status_code == 400 and second.json()["error_codes"] == [700082]


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_authorization_code_flow_with_pkce_through_msal(sandbox: Sandbox, seed: SamSeed) -> None:
    entra = sandbox.entra
    app = msal_app(sandbox, seed)
    flow = app.initiate_auth_code_flow(
        [PC_SCOPE], redirect_uri="http://localhost:8400/", login_hint="admin@partner.example", prompt="login"
    )

    signed_in = get(flow["auth_uri"], allow_redirects=False)  # the "browser": no UI, MFA assumed
    location = signed_in.headers["Location"]
    answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    result = app.acquire_token_by_auth_code_flow(flow, answer)
    replay = post(
        token_url(sandbox),
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": "http://localhost:8400/",
            "client_id": seed.app_id,
            "client_secret": seed.app_secret,
            "code_verifier": flow["code_verifier"],
        },
    )
    refreshed = post(
        token_url(sandbox, "v1"),
        data=refresh_form(seed, refresh_token=result["refresh_token"], resource=PARTNER_CENTER_RESOURCE),
    )

    assert signed_in.status_code == 302 and location.startswith("http://localhost:8400/?")
    assert answer["state"] == flow["state"]
    assert (tokens.read(result["access_token"]) or {})["upn"] == "admin@partner.example"
    assert entra.requests_to("token")[0].form["code_verifier"] == flow["code_verifier"]
    assert replay.status_code == 400 and replay.json()["error_codes"] == [54005]
    assert refreshed.status_code == 200


def test_authorization_code_flow_refusals(sandbox: Sandbox, seed: SamSeed) -> None:
    entra = sandbox.entra
    authorize = f"{entra.url}/{sandbox.tenant_id}/oauth2/v2.0/authorize"
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {
        "client_id": seed.app_id,
        "response_type": "code",
        "redirect_uri": "http://127.0.0.1:8765/callback",
        "scope": f"{PC_SCOPE} offline_access",
        "state": "s-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "amr_values": "mfa",
    }

    signed_in = get(authorize, params=query, allow_redirects=False)
    code = parse_qs(urlsplit(signed_in.headers["Location"]).query)["code"][0]
    exchange = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": query["redirect_uri"],
        "client_id": seed.app_id,
        "client_secret": seed.app_secret,
        "scope": query["scope"],
    }
    wrong_verifier = post(token_url(sandbox), data={**exchange, "code_verifier": "x" * 43})
    right_verifier = post(token_url(sandbox), data={**exchange, "code_verifier": verifier})
    not_loopback = get(authorize, params={**query, "redirect_uri": "https://evil.example/cb"})
    form_post = get(authorize, params={**query, "response_mode": "form_post"}, allow_redirects=False)
    entra.consent_denied = True
    denied = get(authorize, params=query, allow_redirects=False)

    assert wrong_verifier.status_code == 400 and wrong_verifier.json()["error_codes"] == [50148]
    assert right_verifier.status_code == 200 and "refresh_token" in right_verifier.json()
    assert not_loopback.status_code == 400 and not_loopback.json()["error_codes"] == [50011]
    assert form_post.status_code == 200 and 'action="http://127.0.0.1:8765/callback"' in form_post.text
    assert '<input type="hidden" name="code"' in form_post.text
    refusal = parse_qs(urlsplit(denied.headers["Location"]).query)
    assert refusal["error"] == ["access_denied"] and refusal["state"] == ["s-1"]
    assert refusal["error_description"][0].startswith("AADSTS65004:")


# --- Partner Center


def test_create_answers_202_with_a_relative_location_and_is_idempotent(sandbox: Sandbox, seed: SamSeed) -> None:
    pc = sandbox.partner_center
    session = partner_center_session(sandbox, seed)
    request_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    headers = {"MS-RequestId": request_id, "MS-CorrelationId": correlation_id}

    created = session.post(f"{pc.url}/v1/productupgrades", json=upgrade_body(ELIGIBLE.customer_id), headers=headers)
    repeated = session.post(f"{pc.url}/v1/productUpgrades", json=upgrade_body(ELIGIBLE.customer_id), headers=headers)
    conflict = session.post(f"{pc.url}/v1/productupgrades", json=upgrade_body(ELIGIBLE.customer_id))

    assert created.status_code == 202 and created.content == b""
    assert re.fullmatch(rf"productUpgrades/{GUID.pattern}", created.headers["Location"])
    assert created.headers["MS-RequestId"] == request_id and created.headers["MS-CorrelationId"] == correlation_id
    assert created.headers["MS-CV"] and created.headers["MS-ServerId"]
    assert (repeated.status_code, repeated.headers["Location"]) == (202, created.headers["Location"])
    upgrade_id = created.headers["Location"].split("/")[1]
    assert conflict.status_code == 409 and conflict.json() == {
        "code": "900109",
        "description": f"Not allowed because original upgrade {upgrade_id} is still in progress.",
        "data": [],
        "source": "PartnerFD",
    }
    assert GUID.fullmatch(conflict.headers["MS-RequestId"])
    assert pc.creates == 1 and list(pc.upgrades) == [upgrade_id]
    assert [r.route for r in pc.log] == ["create", "create", "create"]


def test_eligibility_reports_profiles_and_existing_upgrades(sandbox: Sandbox, seed: SamSeed) -> None:
    pc = sandbox.partner_center
    sandbox.add_demo_customers()
    session = partner_center_session(sandbox, seed)

    def eligibility(customer_id: str, path: str = "/v1/productUpgrades/eligibility") -> dict[str, Any]:
        answer = session.post(f"{pc.url}{path}", json={"customerId": customer_id, "productFamily": "azure"})
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    before = eligibility(ELIGIBLE.customer_id, "/V1/PRODUCTUPGRADES/ELIGIBILITY")
    created = session.post(f"{pc.url}/v1/productupgrades", json=upgrade_body(ELIGIBLE.customer_id))
    after = eligibility(ELIGIBLE.customer_id)

    assert before == {"customerId": ELIGIBLE.customer_id, "productFamily": "azure", "isEligible": True}
    assert after["upgradeId"] == created.headers["Location"].split("/")[1]
    assert eligibility(NOT_ELIGIBLE.customer_id)["isEligible"] is False
    assert eligibility(NOT_ELIGIBLE.customer_id)["reason"] == NOT_ELIGIBLE.reason
    assert eligibility(ALREADY_UPGRADING.customer_id)["upgradeId"] == ALREADY_UPGRADING.existing_upgrade_id


def test_status_follows_the_progression_on_the_injected_clock(
    sandbox: Sandbox, seed: SamSeed, clock: FakeClock
) -> None:
    pc = sandbox.partner_center
    sandbox.add_demo_customers()
    session = partner_center_session(sandbox, seed)

    def status(upgrade_id: str, customer_id: str) -> requests.Response:
        return session.post(f"{pc.url}/v1/productUpgrades/{upgrade_id}/status", json=upgrade_body(customer_id))

    created = session.post(f"{pc.url}/v1/productupgrades", json=upgrade_body(ELIGIBLE.customer_id))
    upgrade_id = created.headers["Location"].split("/")[1]
    failing = session.post(f"{pc.url}/v1/productupgrades", json=upgrade_body(FAILING.customer_id))
    failing_id = failing.headers["Location"].split("/")[1]
    early = status(upgrade_id, ELIGIBLE.customer_id).json()
    clock.advance(21)
    done = status(upgrade_id, ELIGIBLE.customer_id).json()
    failed = status(failing_id, FAILING.customer_id).json()

    assert early["id"] == upgrade_id and early["productFamily"] == "Azure" and early["status"] == "InProgress"
    assert early["lineItems"][0]["status"] == "InProgress" and "upgradedDate" not in early["lineItems"][0]
    assert done["status"] == "Completed" and done["lineItems"][0]["upgradedDate"].endswith("Z")
    assert done["lineItems"][0]["sourceProduct"]["name"] == "AzureSubscription"
    assert failed["status"] == "Completed" and failed["lineItems"][0]["status"] == "Failed"
    assert failed["lineItems"][0]["errorDetails"]["code"]
    wrong_owner = status(upgrade_id, FAILING.customer_id)
    unknown = status(str(uuid.uuid4()), ELIGIBLE.customer_id)
    assert (wrong_owner.status_code, wrong_owner.json()["code"]) == (400, "900111")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "900106")


def test_bad_bodies_are_refused_with_partner_center_codes(sandbox: Sandbox, seed: SamSeed) -> None:
    pc = sandbox.partner_center
    session = partner_center_session(sandbox, seed)
    url = f"{pc.url}/v1/productupgrades"

    not_json = session.post(url, data=b"{", headers={"Content-Type": "application/json"})
    not_guid = session.post(url, json=upgrade_body("contoso"))
    other_family = session.post(url, json={"customerId": str(uuid.uuid4()), "productFamily": "Office"})

    assert (not_json.status_code, not_json.json()["code"]) == (400, "800002")
    assert (not_guid.status_code, not_guid.json()["code"]) == (400, "900118")
    assert other_family.status_code == 400 and pc.creates == 0


def test_requests_without_a_valid_partner_token_get_401(sandbox: Sandbox, seed: SamSeed, clock: FakeClock) -> None:
    pc = sandbox.partner_center
    session = partner_center_session(sandbox, seed)
    url = f"{pc.url}/v1/productupgrades"
    body = upgrade_body(ELIGIBLE.customer_id)
    vault_token = get(
        sandbox.identity.endpoint,
        params={"api-version": "2019-08-01", "resource": PARTNER_CENTER_RESOURCE},
        headers={"X-IDENTITY-HEADER": sandbox.identity.identity_header},
    ).json()["access_token"]

    missing = post(url, json=body)
    foreign = post(url, json=body, headers={"Authorization": f"Bearer {vault_token}"})
    clock.advance(3600)
    expired = session.post(url, json=body)

    for answer in (missing, foreign, expired):
        assert answer.status_code == 401
        assert answer.json() == {
            "code": "800001",
            "description": "Partner token is missing in the request context",
            "data": [],
            "source": "PartnerFD",
        }
        assert answer.headers["WWW-Authenticate"].startswith("OAuth realm=")
    assert pc.creates == 0


def test_throttling_and_server_faults_use_the_documented_shapes(sandbox: Sandbox, seed: SamSeed) -> None:
    pc = sandbox.partner_center
    session = partner_center_session(sandbox, seed)
    url = f"{pc.url}/v1/productupgrades"
    pc.faults.add("create", status=429, retry_after=7)
    pc.faults.add("create", status=503)

    throttled = session.post(url, json=upgrade_body(ELIGIBLE.customer_id))
    unavailable = session.post(url, json=upgrade_body(ELIGIBLE.customer_id))
    created = session.post(url, json=upgrade_body(ELIGIBLE.customer_id))

    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    assert throttled.json() == {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 7 seconds."}
    assert unavailable.status_code == 503 and unavailable.json()["code"] == "800003"
    assert created.status_code == 202 and pc.creates == 1
    assert [r.status for r in pc.requests_to("create")] == [429, 503, 202]


def test_reset_connection_fault_drops_the_connection_without_an_answer(sandbox: Sandbox, seed: SamSeed) -> None:
    pc = sandbox.partner_center
    session = partner_center_session(sandbox, seed)
    pc.faults.add("create", reset_connection=True)

    with pytest.raises(requests.ConnectionError):
        session.post(f"{pc.url}/v1/productupgrades", json=upgrade_body(ELIGIBLE.customer_id))
    after = session.post(f"{pc.url}/v1/productupgrades", json=upgrade_body(ELIGIBLE.customer_id))

    assert after.status_code == 202
    assert [r.status for r in pc.requests_to("create")] == [0, 202] and pc.creates == 1


def test_a_create_that_times_out_after_commit_is_recovered_by_its_request_id(sandbox: Sandbox, seed: SamSeed) -> None:
    pc = sandbox.partner_center
    session = partner_center_session(sandbox, seed)
    headers = {"MS-RequestId": str(uuid.uuid4())}
    pc.faults.add("create", delay=0.4)

    with pytest.raises(requests.Timeout):
        session.post(
            f"{pc.url}/v1/productupgrades", json=upgrade_body(ELIGIBLE.customer_id), headers=headers, timeout=0.1
        )
    deadline = time.monotonic() + 30
    while pc.creates == 0:  # the create the client gave up on commits when its delay ends
        assert time.monotonic() < deadline, "the delayed create never committed"
        time.sleep(0.05)
    retried = session.post(f"{pc.url}/v1/productupgrades", json=upgrade_body(ELIGIBLE.customer_id), headers=headers)

    assert retried.status_code == 202 and pc.creates == 1
    assert retried.headers["Location"] == f"productUpgrades/{next(iter(pc.upgrades.values())).upgrade_id}"


def test_down_refuses_connections_and_up_serves_again_on_the_same_port(sandbox: Sandbox, seed: SamSeed) -> None:
    pc = sandbox.partner_center
    session = partner_center_session(sandbox, seed)
    url = f"{pc.url}/v1/productUpgrades/eligibility"
    assert session.post(url, json=upgrade_body(ELIGIBLE.customer_id)).status_code == 200

    pc.down()
    with pytest.raises(requests.ConnectionError):
        session.post(url, json=upgrade_body(ELIGIBLE.customer_id), timeout=2)
    pc.up()
    back = session.post(url, json=upgrade_body(ELIGIBLE.customer_id), timeout=10)

    assert back.status_code == 200 and pc.url in url


def test_reset_clears_logs_faults_and_counters_but_keeps_state(sandbox: Sandbox, seed: SamSeed) -> None:
    pc = sandbox.partner_center
    session = partner_center_session(sandbox, seed)
    session.post(f"{pc.url}/v1/productupgrades", json=upgrade_body(ELIGIBLE.customer_id))
    pc.faults.add(status=500, times=3)
    pc.latency = 1.0

    sandbox.reset()

    assert (pc.log, pc.faults.pending, pc.latency, pc.creates) == ([], [], 0.0, 0)
    assert sandbox.entra.exchanges == 0 and len(pc.upgrades) == 1
    assert sandbox.key_vault.current(REFRESH_TOKEN_SECRET) == seed.refresh_token


def follow(session: requests.Session, base: str, link: dict[str, Any]) -> requests.Response:
    """Request a Partner Center `links.next` the way the docs say: `uri` under `{base}/v1`, with its headers."""
    assert link["method"] == "GET"
    headers = {header["key"]: header["value"] for header in link["headers"]}
    return session.get(f"{base}/v1{link['uri']}", headers=headers)


def test_customer_list_pages_with_the_continuation_header(sandbox: Sandbox, seed: SamSeed) -> None:
    pc = sandbox.partner_center
    added = [str(uuid.UUID(int=n, version=4)) for n in range(1, 8)]
    for n, customer_id in enumerate(added):
        pc.add_customer(Customer(customer_id, company_name=f"Fabrikam {n}, Ltd."))
    session = partner_center_session(sandbox, seed)

    pages = [session.get(f"{pc.url}/v1/customers", params={"size": 3}).json()]
    while "next" in pages[-1]["links"]:
        answer = follow(session, pc.url, pages[-1]["links"]["next"])
        assert answer.status_code == 200
        pages.append(answer.json())
    again = follow(session, pc.url, pages[0]["links"]["next"]).json()  # a token can be used again (resume)

    assert [page["totalCount"] for page in pages] == [3, 3, 1]
    assert [item["id"] for page in pages for item in page["items"]] == added
    assert pages[0]["items"][0] == {
        "id": added[0],
        "companyProfile": {
            "tenantId": added[0],
            "domain": "fabrikam0ltd.onmicrosoft.com",
            "companyName": "Fabrikam 0, Ltd.",
            "attributes": {"objectType": "CustomerCompanyProfile"},
        },
        "relationshipToPartner": "reseller",
        "attributes": {"objectType": "Customer"},
    }
    first_next = pages[0]["links"]["next"]
    assert first_next["uri"] == "/customers?size=3&seekOperation=Next"
    assert [h["key"] for h in first_next["headers"]] == ["MS-ContinuationToken"]
    assert pages[0]["attributes"] == {"objectType": "Collection"} and "next" not in pages[2]["links"]
    assert again["items"] == pages[1]["items"]
    assert [r.route for r in pc.log] == ["customers"] * 4 and {r.status for r in pc.log} == {200}


def test_customer_list_refuses_a_next_page_without_its_token(sandbox: Sandbox, seed: SamSeed) -> None:
    pc = sandbox.partner_center
    sandbox.add_demo_customers()
    pc.customer_pages.max_size = 2
    session = partner_center_session(sandbox, seed)
    url = f"{pc.url}/v1/customers"

    no_header = session.get(url, params={"size": 2, "seekOperation": "Next"})
    forged = session.get(url, params={"size": 2, "seekOperation": "Next"}, headers={"MS-ContinuationToken": "x"})
    bad_size = session.get(url, params={"size": "0"})
    capped = session.get(url, params={"size": 100})
    default_size = session.get(url)
    anonymous = get(url)

    for refused in (no_header, forged, bad_size):
        assert refused.status_code == 400 and refused.json()["code"] == "800002"
    assert "MS-ContinuationToken" in no_header.json()["description"]
    assert capped.json()["totalCount"] == 2 and capped.json()["links"]["next"]["uri"].startswith("/customers?size=2&")
    assert default_size.json()["totalCount"] == 2  # the default (200) is capped too
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "800001"
    assert len(pc.requests_to("customers")) == 6


def test_throttle_is_a_sliding_window_where_retries_count(sandbox: Sandbox, seed: SamSeed, clock: FakeClock) -> None:
    pc = sandbox.partner_center
    pc.throttle(calls_per_minute=3)
    session = partner_center_session(sandbox, seed)
    eligibility = f"{pc.url}/v1/productUpgrades/eligibility"

    def call() -> requests.Response:
        return session.post(eligibility, json=upgrade_body(ELIGIBLE.customer_id))

    admitted = [call()]  # t=0
    clock.advance(10)
    admitted.append(session.get(f"{pc.url}/v1/customers"))  # t=10: every route counts
    clock.advance(10)
    admitted.append(session.post(f"{pc.url}/v1/productupgrades", json=upgrade_body(ELIGIBLE.customer_id)))  # t=20
    clock.advance(10)
    refused = call()  # t=30: the window holds 0, 10, 20 -> a slot frees at 60, but this call counts too
    anonymous = post(eligibility, json=upgrade_body(ELIGIBLE.customer_id))  # refused before the throttle
    clock.advance(0.5)
    retried_at_once = call()  # t=30.5: 0, 10, 20, 30 in the window
    clock.advance(80 - 30.5)
    after_waiting = call()  # t=80: 0, 10, 20 aged out; 30 and 30.5 remain

    assert [a.status_code for a in admitted] == [200, 200, 202]
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "40"
    assert refused.json() == {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 40 seconds."}
    assert refused.headers["MS-RequestId"] and anonymous.status_code == 401
    assert retried_at_once.status_code == 429 and retried_at_once.headers["Retry-After"] == "50"
    assert after_waiting.status_code == 200
    assert pc.throttled == 2
    assert [(r.route, r.status) for r in pc.log if r.status == 429] == [("eligibility", 429)] * 2


def test_throttle_recovers_after_the_window_and_can_be_switched_off(
    sandbox: Sandbox, seed: SamSeed, clock: FakeClock
) -> None:
    pc = sandbox.partner_center
    pc.throttle(calls_per_minute=2, count_rejected=False)
    session = partner_center_session(sandbox, seed)
    url = f"{pc.url}/v1/productUpgrades/eligibility"

    answers = [session.post(url, json=upgrade_body(ELIGIBLE.customer_id)) for _ in range(4)]
    retry_after = int(answers[-1].headers["Retry-After"])
    clock.advance(retry_after)
    recovered = session.post(url, json=upgrade_body(ELIGIBLE.customer_id))
    pc.reset()
    after_reset = [session.post(url, json=upgrade_body(ELIGIBLE.customer_id)).status_code for _ in range(3)]
    pc.throttle(None)
    unlimited = [session.post(url, json=upgrade_body(ELIGIBLE.customer_id)).status_code for _ in range(5)]

    assert [a.status_code for a in answers] == [200, 200, 429, 429] and retry_after == 60
    assert recovered.status_code == 200
    assert after_reset == [200, 200, 429] and pc.throttled == 1  # reset empties the window and the counter
    assert unlimited == [200] * 5


def test_partner_center_refuses_app_user_tokens_without_mfa(sandbox: Sandbox, clock: FakeClock) -> None:
    pc = sandbox.partner_center
    with_mfa = sandbox.seed_sam_credentials()
    without_mfa = sandbox.seed_sam_credentials(mfa=False)
    url = f"{pc.url}/v1/productupgrades"

    def bearer(seed: SamSeed, refresh_token: str | None = None) -> tuple[dict[str, str], dict[str, Any]]:
        form = refresh_form(seed, resource=PARTNER_CENTER_RESOURCE)
        form["refresh_token"] = refresh_token or seed.refresh_token
        answer = post(token_url(sandbox, "v1"), data=form).json()
        return {"Authorization": f"Bearer {answer['access_token']}"}, answer

    good, _ = bearer(with_mfa)
    bad, rotated = bearer(without_mfa)
    bad_again, _ = bearer(without_mfa, rotated["refresh_token"])  # a rotated refresh token keeps the sign-in's amr
    created = post(url, json=upgrade_body(ELIGIBLE.customer_id), headers=good)
    refused = [
        post(url, json=upgrade_body(ELIGIBLE.customer_id), headers=bad),
        get(f"{pc.url}/v1/customers", headers=bad_again),
    ]

    assert (tokens.read(good["Authorization"][7:]) or {})["amr"] == ["pwd", "mfa"]
    assert (tokens.read(bad["Authorization"][7:]) or {})["amr"] == ["pwd"]
    assert (tokens.read(bad_again["Authorization"][7:]) or {})["amr"] == ["pwd"]
    assert created.status_code == 202
    for answer in refused:
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("OAuth realm=")
        body = answer.json()
        assert (body["code"], body["source"], body["data"]) == ("900421", "PartnerFD", [])
        assert "MFA" in body["description"] and "multi-factor" in body["description"].lower()
    assert pc.creates == 1 and [r.status for r in pc.log] == [202, 401, 401]


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_a_sign_in_without_mfa_gives_id_and_access_tokens_without_mfa(sandbox: Sandbox, seed: SamSeed) -> None:
    entra = sandbox.entra
    app = msal_app(sandbox, seed)

    def sign_in() -> dict[str, Any]:
        flow = app.initiate_auth_code_flow([PC_SCOPE], redirect_uri="http://localhost:8400/", prompt="login")
        location = get(f"{flow['auth_uri']}&amr_values=mfa", allow_redirects=False).headers["Location"]
        answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, answer)
        return result

    normal = sign_in()
    entra.sign_in_with_mfa = False
    password_only = sign_in()
    refreshed = post(
        token_url(sandbox, "v1"),
        data=refresh_form(seed, refresh_token=password_only["refresh_token"], resource=PARTNER_CENTER_RESOURCE),
    ).json()
    refused = post(
        f"{sandbox.partner_center.url}/v1/productUpgrades/eligibility",
        json=upgrade_body(ELIGIBLE.customer_id),
        headers={"Authorization": f"Bearer {password_only['access_token']}"},
    )

    assert normal["id_token_claims"]["amr"] == ["pwd", "mfa"]
    assert (tokens.read(normal["access_token"]) or {})["amr"] == ["pwd", "mfa"]
    assert password_only["id_token_claims"]["amr"] == ["pwd"]
    assert (tokens.read(password_only["access_token"]) or {})["amr"] == ["pwd"]
    assert (tokens.read(refreshed["access_token"]) or {})["amr"] == ["pwd"]
    assert (refused.status_code, refused.json()["code"]) == (401, "900421")


def test_fleet_is_deterministic_and_mixed_as_asked() -> None:
    fleet = generate_fleet(40, seed=7)
    again = generate_fleet(40, seed=7)
    other = generate_fleet(40, seed=8)
    halves = generate_fleet(7, mix={"eligible": 1, Kind.REFUSED: 1})

    assert fleet.counts() == {"eligible": 24, "notEligible": 8, "hasUpgrade": 4, "refused": 2, "lineItemFails": 2}
    assert fleet == again and [c.company_name for c in fleet.customers] == [c.company_name for c in again.customers]
    assert {c.customer_id for c in fleet.customers}.isdisjoint(c.customer_id for c in other.customers)
    assert fleet.counts() == other.counts() and [c.name for c in fleet.customers] != [c.name for c in other.customers]
    assert len({c.company_name for c in fleet.customers}) == 40 and all(c.company_name for c in fleet.customers)
    assert all(GUID.fullmatch(c.customer_id) for c in fleet.customers)
    assert {c.reason for c in fleet.of_kind(Kind.NOT_ELIGIBLE)} <= set(NOT_ELIGIBLE_REASONS)
    assert halves.counts() == {"eligible": 4, "notEligible": 0, "hasUpgrade": 0, "refused": 3, "lineItemFails": 0}
    assert generate_fleet(5000, seed=1).counts()["eligible"] == 3000
    with pytest.raises(ValueError):
        generate_fleet(3, mix={"eligible": 0})


def test_fleet_customers_behave_as_their_kind_says(sandbox: Sandbox, seed: SamSeed, clock: FakeClock) -> None:
    pc = sandbox.partner_center
    fleet = sandbox.add_fleet(60, seed=3, complete_after=4)
    session = partner_center_session(sandbox, seed)
    first = {kind: fleet.of_kind(kind)[0].customer_id for kind in Kind}

    def call(route: str, customer_id: str) -> requests.Response:
        return session.post(f"{pc.url}/v1/{route}", json=upgrade_body(customer_id))

    listed = session.get(f"{pc.url}/v1/customers").json()
    eligibility = {kind: call("productUpgrades/eligibility", first[kind]).json() for kind in Kind}
    created = {kind: call("productupgrades", first[kind]) for kind in Kind}
    upgrade_id = created[Kind.ELIGIBLE].headers["Location"].split("/")[1]
    failing_id = created[Kind.LINE_ITEM_FAILS].headers["Location"].split("/")[1]
    existing_id = eligibility[Kind.HAS_UPGRADE]["upgradeId"]
    clock.advance(4)
    done = call(f"productUpgrades/{upgrade_id}/status", first[Kind.ELIGIBLE]).json()
    failed = call(f"productUpgrades/{failing_id}/status", first[Kind.LINE_ITEM_FAILS]).json()
    existing = call(f"productUpgrades/{existing_id}/status", first[Kind.HAS_UPGRADE]).json()

    assert [item["id"] for item in listed["items"]] == [c.customer_id for c in fleet.customers]
    assert [i["companyProfile"]["companyName"] for i in listed["items"]] == [c.company_name for c in fleet.customers]
    assert [eligibility[kind]["isEligible"] for kind in Kind] == [True, False, True, True, True]
    assert eligibility[Kind.NOT_ELIGIBLE]["reason"] in NOT_ELIGIBLE_REASONS
    assert existing_id == fleet.of_kind(Kind.HAS_UPGRADE)[0].existing_upgrade_id
    assert [created[kind].status_code for kind in Kind] == [202, 403, 409, 403, 202]
    refused = created[Kind.REFUSED].json()
    assert refused["code"] == "900120" and "Microsoft Customer Agreement" in refused["description"]
    assert done["status"] == "Completed" and done["lineItems"][0]["status"] == "Completed"
    assert failed["status"] == "Completed" and failed["lineItems"][0]["status"] == "Failed"
    assert existing["status"] == "Completed"


def test_throttle_window_is_kept_per_partner_tenant() -> None:
    clock = ManualClock()
    clock.freeze(1000.0)
    window = SlidingWindow(2, clock, window=60.0)

    first = [window.admit("tenant-a"), window.admit("tenant-a"), window.admit("tenant-a")]
    other = window.admit("tenant-b")
    clock.advance(59.5)
    still = window.admit("tenant-a")  # the two calls and the refusal at 1000 stay in the window until 1060
    clock.advance(61)
    later = window.admit("tenant-a")

    assert first == [None, None, 60] and other is None
    assert still == 1 and later is None
    with pytest.raises(ValueError):
        SlidingWindow(0, clock)


# --- the whole sandbox


def test_seeded_sandbox_gives_the_app_everything_it_needs(sandbox: Sandbox, clock: FakeClock) -> None:
    seed = sandbox.seed_sam_credentials(refresh_token_age_hours=30)
    vault = sandbox.key_vault
    client = SecretClient(os.environ["KEY_VAULT_URL"], DefaultAzureCredential())

    stored = {name: client.get_secret(name).value for name in (APP_ID_SECRET, APP_SECRET_SECRET, REFRESH_TOKEN_SECRET)}
    answer = post(
        f"{os.environ['AZURE_AUTHORITY_HOST']}/{os.environ['PARTNER_TENANT_ID']}/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": stored[APP_ID_SECRET],
            "client_secret": stored[APP_SECRET_SECRET],
            "refresh_token": stored[REFRESH_TOKEN_SECRET],
            "resource": PARTNER_CENTER_RESOURCE,
        },
    )

    assert set(sandbox.environment()) == {
        "KEY_VAULT_URL",
        "PARTNER_TENANT_ID",
        "PARTNER_CENTER_BASE_URL",
        "AZURE_AUTHORITY_HOST",
        "CALLER_API_AUDIENCE",
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
    }
    assert stored == {
        APP_ID_SECRET: seed.app_id,
        APP_SECRET_SECRET: seed.app_secret,
        REFRESH_TOKEN_SECRET: seed.refresh_token,
    }
    assert vault.current(CALLBACK_SIGNING_KEY_SECRET) == seed.callback_signing_key
    assert vault.versions(REFRESH_TOKEN_SECRET)[-1]["attributes"]["created"] == int(clock() - 30 * 3600)
    assert answer.status_code == 200
    assert Path(os.environ["REQUESTS_CA_BUNDLE"]).read_bytes().endswith(sandbox.ca.ca_path.read_bytes())


def test_azurite_oauth_basic_accepts_managed_identity_tokens(sandbox: Sandbox, tmp_path: Path) -> None:
    azurite = REPO / "node_modules" / ".bin" / "azurite-queue"
    if not azurite.exists():
        pytest.skip("Azurite is not installed (npm ci)")
    output = tmp_path / "azurite.log"
    command = [
        str(azurite),
        "--oauth",
        "basic",
        "--cert",
        str(sandbox.ca.cert_path),
        "--key",
        str(sandbox.ca.key_path),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        "0",
        "--inMemoryPersistence",
        "--extentMemoryLimit",
        "16",
        "--skipApiVersionCheck",
        "--disableTelemetry",
    ]
    with output.open("w") as sink:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        account_url = f"{wait_for_azurite(process, output)}/devstoreaccount1"
        service = QueueServiceClient(account_url, credential=DefaultAzureCredential())
        queue = service.create_queue("upgrade-status")
        queue.send_message("hello")
        received = [m.content for m in queue.receive_messages()]
        vault_token = get(
            sandbox.identity.endpoint,
            params={"api-version": "2019-08-01", "resource": "https://vault.azure.net"},
            headers={"X-IDENTITY-HEADER": sandbox.identity.identity_header},
        ).json()["access_token"]
        with pytest.raises(HttpResponseError, match="audience"):
            QueueServiceClient(account_url, credential=StaticCredential(vault_token)).create_queue("refused")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)

    assert received == ["hello"]
    assert sandbox.identity.tokens_issued["https://storage.azure.com"] == 1


def wait_for_azurite(process: subprocess.Popen[bytes], output: Path) -> str:
    ready = re.compile(
        r"Azurite Queue service (?:successfully listens on|is successfully listening at) (https://[\d.:]+)"
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = ready.search(output.read_text())
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("Azurite did not start:\n" + output.read_text())


def test_python_m_sandbox_prints_the_environment_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--workdir", str(tmp_path), "--fleet", "20", "--throttle", "600"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("# Running"):
                break
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()

    exports = dict(line.removeprefix("export ").strip().split("=", 1) for line in lines if line.startswith("export "))
    assert set(exports) >= {"KEY_VAULT_URL", "PARTNER_CENTER_BASE_URL", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"}
    assert any(ELIGIBLE.customer_id in line and "eligible" in line for line in lines)
    counts = "eligible 12, notEligible 4, hasUpgrade 2, refused 1, lineItemFails 1"
    assert f"# Fleet of 20 (seed 0): {counts}\n" in lines and any("600 calls per minute" in line for line in lines)
    assert process.returncode == 0 and "stopped" in rest
