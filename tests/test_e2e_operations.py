"""Ready for a real tenant, through Microsoft's worker with function keys enforced as the Functions host does.

The repository's own app folder runs in `DevHost` with a keys file (a host key and a master key): every `function`
route needs a key, the follow route (`anonymous`) needs none, and the admin endpoint that runs a timer by hand needs
the master key. What a Power Automate flow does (key on the POST only, then plain GETs on `Location`), what an
operator sees on `/api/health` and in the log, and the daily consent keep-alive are all observed over real sockets.
Every response is checked against the OpenAPI description and every response and log line for leaked secrets
(`checked`, shared with tests/test_e2e_devhost.py).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from test_e2e_devhost import ROOT, Client, checked, e2e_env, quick_customer, wait_for  # noqa: F401 - fixtures

from devhost import DevHost, HostKeys
from localrun.storage import app_queue_service
from sandbox.stack import REFRESH_TOKEN_SECRET, Sandbox
from shared.api.follow_links import signed_url, upgrade_path

HOST_KEY = "host-key-for-e2e-operations-0123456789"
MASTER_KEY = "master-key-for-e2e-operations-0123456789"
ALERT_LINE = re.compile(r"problemType=urn:partner-center-upgrade:problem:[a-z-]*(consent-required|mfa-required)")

pytestmark = pytest.mark.timeout(180)  # a ceiling: the waits below end on their conditions


@pytest.fixture
def keyed_app(e2e_env: dict[str, str], checked: list[Client]) -> Iterator[tuple[DevHost, Client]]:  # noqa: F811
    keys = HostKeys.from_document({"master": MASTER_KEY, "host": {"default": HOST_KEY}})
    host = DevHost(ROOT, http_port=0, environ=e2e_env, queue_service=app_queue_service, keys=keys).start()
    client = Client(host.url)
    checked.append(client)
    # These tests send the credential themselves, on the requests that need one (a flow's POST, not its polls).
    _CREDENTIAL["X-Caller-Key"] = str(client.session.headers.pop("X-Caller-Key"))
    yield host, client
    host.stop()


_CREDENTIAL: dict[str, str] = {}


def keyed(**headers: str) -> dict[str, str]:
    """The caller's credential (the app checks callers itself; function keys only guard the admin endpoint)."""
    return {**_CREDENTIAL, **headers}


def run_by_hand(client: Client, function: str) -> None:
    """The admin endpoint, as an operator (or Core Tools) runs a non-HTTP function now."""
    answer = client.request(
        "POST", f"/admin/functions/{function}", json={"input": ""}, headers={"x-functions-key": MASTER_KEY},
        host_answer=True,
    )  # fmt: skip
    assert answer.status_code == 202, answer.text


def consent_checked_after(client: Client, since: str | None) -> requests.Response:
    """GET /api/health until the keep-alive recorded a check newer than `since`."""

    def probe() -> list[requests.Response]:  # a list: a 503 Response is falsy
        health = client.request("GET", "/api/health", headers=keyed())
        checked_at = health.json()["checks"]["consent"].get("lastCheckedAt")
        return [health] if checked_at and checked_at != since else []

    return wait_for(probe, timeout=60, what="the keep-alive's consent record")[0]


def test_a_flow_sends_the_key_on_the_post_only_and_follows_location_without_it_to_the_final_200(
    keyed_app: tuple[DevHost, Client], sandbox: Sandbox
) -> None:
    _, client = keyed_app
    customer = quick_customer(sandbox, completes_after=2.0)
    body = {"customerId": customer.customer_id, "productFamily": "Azure"}

    assert client.post_upgrade(body).status_code == 401  # the host refuses a keyless POST
    accepted = client.post_upgrade(body, **keyed(**{"Idempotency-Key": f"flow-{uuid.uuid4()}"}))
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["Location"]
    assert urlsplit(location).path.startswith("/api/follow/upgrades/")
    assert client.request("GET", accepted.json()["statusUri"], host_answer=True).status_code == 401  # keyed route

    final = client.follow(location, until=lambda r: r.status_code != 202, timeout=60)  # no key on any poll

    assert final.status_code == 200, final.text
    assert final.json()["status"] == "Completed"


def test_tampered_expired_and_missing_signatures_are_401_alike_for_known_and_unknown_upgrades(
    keyed_app: tuple[DevHost, Client], sandbox: Sandbox, sam_link_key: bytes
) -> None:
    _, client = keyed_app
    customer = quick_customer(sandbox, completes_after=60)
    accepted = client.post_upgrade({"customerId": customer.customer_id, "productFamily": "Azure"}, **keyed())
    location = accepted.headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    unknown, upgrade_id, customer_id = str(uuid.uuid4()), accepted.json()["upgradeId"], customer.customer_id
    past = int(time.time()) - 60

    links = {
        "tampered signature": location.replace(query["sig"], query["sig"][::-1]),
        "tampered expiry": location.replace(f"expires={query['expires']}", f"expires={int(query['expires']) + 1}"),
        "missing signature": location.split("&sig=")[0],
        "expired": signed_url(sam_link_key, client.base_url, upgrade_path(upgrade_id), customer_id, past),
        "unknown upgrade, borrowed signature": location.replace(upgrade_id, unknown),
        "unknown upgrade, expired": signed_url(sam_link_key, client.base_url, upgrade_path(unknown), customer_id, past),
    }
    answers = {name: client.request("GET", link) for name, link in links.items()}

    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(links, 401)
    bodies = {name: {k: v for k, v in a.json().items() if k != "correlationId"} for name, a in answers.items()}
    assert len({str(sorted(b.items())) for b in bodies.values()}) == 1, bodies  # nothing tells them apart
    assert next(iter(bodies.values()))["type"].endswith("invalid-follow-link")
    assert client.request("GET", location).status_code == 202  # the real link still works


def test_health_needs_a_key_and_the_keep_alive_run_by_hand_rotates_once_and_not_twice_within_24_hours(
    keyed_app: tuple[DevHost, Client], sandbox: Sandbox
) -> None:
    _, client = keyed_app
    assert client.request("GET", "/api/health", host_answer=True).status_code == 401
    sandbox.key_vault.backdate(REFRESH_TOKEN_SECRET, 49 * 3600)  # stored two days ago, and never checked since
    before = client.request("GET", "/api/health", headers=keyed())
    assert before.status_code == 503  # the operator is told to run the keep-alive
    versions = len(sandbox.key_vault.versions(REFRESH_TOKEN_SECRET))

    run_by_hand(client, "KeepConsentAlive")
    first = consent_checked_after(client, None)
    after_first = len(sandbox.key_vault.versions(REFRESH_TOKEN_SECRET))
    run_by_hand(client, "KeepConsentAlive")
    consent_checked_after(client, first.json()["checks"]["consent"]["lastCheckedAt"])
    after_second = len(sandbox.key_vault.versions(REFRESH_TOKEN_SECRET))

    assert first.status_code == 200, first.json()
    assert first.json()["checks"]["consent"]["daysUntilRefreshTokenExpires"] >= 89
    assert (after_first - versions, after_second - versions) == (1, 1)  # rotated once, not again the same day
    assert sandbox.partner_center.log == []  # neither health nor the keep-alive calls Partner Center


def test_an_mfa_less_consent_answers_mfa_required_shows_on_health_and_raises_one_alert_line_per_failure(
    keyed_app: tuple[DevHost, Client],
    sandbox: Sandbox,
    configure: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, client = keyed_app
    sandbox.seed_sam_credentials(mfa=False)  # the consent behind the stored refresh token had no MFA
    configure()  # a new instance: nothing cached from the MFA-proving seed
    caplog.set_level(logging.INFO)

    answer = client.post_upgrade({"customerId": str(uuid.uuid4()), "productFamily": "Azure"}, **keyed())
    run_by_hand(client, "KeepConsentAlive")
    health = consent_checked_after(client, None)

    assert answer.status_code == 502 and answer.json()["type"].endswith("mfa-required"), answer.text
    assert health.status_code == 503
    assert health.json()["checks"]["consent"]["mfa"] is False
    alerts = [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and ALERT_LINE.search(r.getMessage())
    ]
    assert len(alerts) == 2, alerts  # one for the refused create, one for the keep-alive: what the alert rule queries


@pytest.fixture
def sam_link_key(sandbox: Sandbox) -> bytes:
    """The follow-link signing key the sandbox's Key Vault holds (the app reads it from there)."""
    return str(sandbox.key_vault.versions("status-link-signing-key")[-1]["value"]).encode()
