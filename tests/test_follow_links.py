"""Follow links: every Location works without a function key, is signed exactly as docs/design.md says, and
refuses anything it did not sign with one 401 that tells nothing about the upgrade. Plus the Host hardening:
Location and statusUri are built on the current request's base, never a malformed or an earlier request's Host.

Through the harness (the functions' `main`); the worker-level variant, where the host enforces the function key
on every route but the follow route, is added with devhost's key enforcement.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from sandbox.clock import ManualClock
from sandbox.partner_center import Customer, Step
from sandbox.stack import STATUS_LINK_KEY_SECRET, Sandbox
from support.harness import BASE_URL, Answer, AppHarness

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = "urn:partner-center-upgrade:problem:"
FUNCTION_KEY = "flow-function-key-0123456789"
LIFETIME_SECONDS = (72 + 24) * 3600  # STATUS_MAX_TRACKING_HOURS (default) + 24 h


def customer_with(sandbox: Sandbox, *steps: Step) -> str:
    customer_id = str(uuid.uuid4())
    sandbox.partner_center.add_customer(Customer(customer_id, progression=list(steps)))
    return customer_id


def accepted(app: AppHarness, customer_id: str, **kwargs: Any) -> Answer:
    answer = app.post({"customerId": customer_id, "productFamily": "Azure"}, **kwargs)
    assert answer.status == 202, answer.body
    return answer


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def expected_sig(sandbox: Sandbox, path: str, customer_id: str, expires: str) -> str:
    """docs/design.md: unpadded base64url HMAC-SHA256 of "{path}\\n{customerId}\\n{expires}", keyed by the UTF-8
    value of the Key Vault secret, recomputed here from what the sandbox's Key Vault holds."""
    key = (sandbox.key_vault.current(STATUS_LINK_KEY_SECRET) or "").encode("utf-8")
    digest = hmac.new(key, f"{path}\n{customer_id}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def with_query(location: str, **changes: str | None) -> str:
    parts = urlsplit(location)
    params = {**query(location), **changes}
    kept = {name: value for name, value in params.items() if value is not None}
    return parts._replace(query=urlencode(kept)).geturl()


# --- the follow route -------------------------------------------------------------------------------------


def test_the_follow_function_is_anonymous_get_only_on_the_follow_routes() -> None:
    [trigger, output] = json.loads((ROOT / "Follow" / "function.json").read_text())["bindings"]
    assert trigger == {
        "type": "httpTrigger",
        "direction": "in",
        "name": "req",
        "authLevel": "anonymous",
        "methods": ["get"],
        "route": "follow/{resource}/{id}/{part?}",  # no constraint: the app answers 401 for other resources or parts
    }
    assert output == {"type": "http", "direction": "out", "name": "$return"}


def test_a_flow_sends_the_key_on_the_post_only_and_follows_location_without_it_to_the_final_200(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    """Power Automate's HTTP action: the function key on the POST, then GET Location (no key) while 202."""
    customer = customer_with(sandbox, Step(0, "InProgress"), Step(150, "Completed"))
    answer = accepted(app, customer, headers={"x-functions-key": FUNCTION_KEY})
    upgrade_id = answer.json()["upgradeId"]
    locations: list[str] = []
    delivered = 0

    while answer.status == 202:
        location = answer.header("Location") or ""
        locations.append(location)
        assert urlsplit(location).path == f"/api/follow/upgrades/{upgrade_id}", location
        assert "code" not in query(location) and FUNCTION_KEY not in location
        virtual_clock.advance(int(answer.header("Retry-After") or "0"))
        scheduled = app.scheduled()
        for put in scheduled[delivered:]:
            app.deliver(put)  # the status check the queue trigger runs meanwhile
        delivered = len(scheduled)
        answer = app.follow(location, headers={})  # no x-functions-key
        assert len(locations) < 20

    assert answer.status == 200, answer.body
    assert answer.json()["status"] == "Completed" and answer.json()["upgradeId"] == upgrade_id
    assert len(locations) >= 2  # the POST 202, then at least one follow 202, each a follow link
    assert len(set(locations)) == len(locations)  # every 202 signs afresh (expires moves with the clock)


def test_the_signature_is_exactly_the_documented_hmac(app: AppHarness, sandbox: Sandbox) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"))
    answer = accepted(app, customer)
    upgrade_id = answer.json()["upgradeId"]
    location = answer.header("Location") or ""
    params = query(location)
    path = f"/api/follow/upgrades/{upgrade_id}"

    assert location.startswith(f"{BASE_URL}{path}?")
    assert list(params) == ["customerId", "expires", "sig"]
    assert params["customerId"] == customer
    assert params["sig"] == expected_sig(sandbox, path, customer, params["expires"])
    assert len(params["sig"]) == 43 and "=" not in params["sig"]
    issued = int(params["expires"]) - LIFETIME_SECONDS
    assert abs(issued - time.time()) < 60
    assert answer.json()["statusUri"] == f"{BASE_URL}/api/upgrades/{upgrade_id}?customerId={customer}"


def test_the_follow_route_answers_what_the_keyed_route_answers(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"))
    posted = accepted(app, customer)
    upgrade_id = posted.json()["upgradeId"]
    virtual_clock.advance(20)

    followed = app.follow(posted.header("Location") or "")
    keyed = app.get(upgrade_id, customer)

    assert followed.status == keyed.status == 202
    assert {**followed.json(), "correlationId": None} == {**keyed.json(), "correlationId": None}
    assert followed.header("Retry-After") == keyed.header("Retry-After") == "40"
    for answer in (followed, keyed):
        location = answer.header("Location") or ""
        assert urlsplit(location).path == f"/api/follow/upgrades/{upgrade_id}"
        assert app.follow(location).status == 202  # the fresh link works too


def test_a_valid_link_to_an_unknown_upgrade_is_404(app: AppHarness, sandbox: Sandbox) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"))
    unknown = str(uuid.uuid4())
    path = f"/api/follow/upgrades/{unknown}"
    expires = str(int(time.time()) + 3600)
    link = f"{BASE_URL}{path}?" + urlencode(
        {"customerId": customer, "expires": expires, "sig": expected_sig(sandbox, path, customer, expires)}
    )

    answer = app.follow(link)

    assert answer.status == 404 and answer.json()["type"] == PROBLEM + "not-found"


# --- refusals: one 401, whatever exists ---------------------------------------------------------------------


def _tamper_sig(link: str) -> str:
    sig = query(link)["sig"]
    return with_query(link, sig=("A" if sig[0] != "A" else "B") + sig[1:])


def _tamper_expires(link: str) -> str:
    return with_query(link, expires=str(int(query(link)["expires"]) + 3600))


TAMPERINGS: dict[str, Callable[[str], str]] = {
    "tampered sig": _tamper_sig,
    "tampered expires": _tamper_expires,
    "missing sig": lambda link: with_query(link, sig=None),
    "missing expires": lambda link: with_query(link, expires=None),
    "wrong customerId": lambda link: with_query(link, customerId=str(uuid.uuid4())),
    "missing customerId": lambda link: with_query(link, customerId=None),
    "non-ASCII sig": lambda link: with_query(link, sig="\u00e9" * 43),
    "padded sig": lambda link: with_query(link, sig=query(link)["sig"] + "="),
    "expires not a number": lambda link: with_query(link, expires="tomorrow"),
    "another upgrade": lambda link: link.replace(urlsplit(link).path, f"/api/follow/upgrades/{uuid.uuid4()}"),
    "upgradeId not a GUID": lambda link: link.replace(urlsplit(link).path, "/api/follow/upgrades/latest"),
}


def _problem_without_correlation(answer: Answer) -> dict[str, Any]:
    body = answer.json()
    assert body["correlationId"] == answer.header("x-correlation-id")
    return {**body, "correlationId": None}


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_a_link_the_app_did_not_sign_is_401_identical_for_existing_and_unknown_upgrades(
    app: AppHarness, sandbox: Sandbox, tampering: str
) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"))
    existing_link = accepted(app, customer).header("Location") or ""
    unknown_link = existing_link.replace(urlsplit(existing_link).path, f"/api/follow/upgrades/{uuid.uuid4()}")
    sandbox.partner_center.reset()

    answers = [app.follow(TAMPERINGS[tampering](link)) for link in (existing_link, unknown_link)]

    assert [a.status for a in answers] == [401, 401]
    first, second = (_problem_without_correlation(a) for a in answers)
    assert first == second
    assert first["type"] == PROBLEM + "invalid-follow-link" and first["status"] == 401
    assert sandbox.partner_center.log == []  # nothing was looked up for a link that does not hold


def test_an_expired_link_is_401_and_a_link_just_before_expiry_still_works(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"))
    link = accepted(app, customer).header("Location") or ""
    expires = int(query(link)["expires"])

    virtual_clock.advance(expires - virtual_clock.now() - 1)
    assert app.follow(link).status in (200, 202)
    virtual_clock.advance(1)
    expired = app.follow(link)

    assert expired.status == 401 and expired.json()["type"] == PROBLEM + "invalid-follow-link"


def test_batch_follow_links_are_checked_the_same_way_and_a_valid_link_to_an_unknown_batch_is_404(
    app: AppHarness, sandbox: Sandbox
) -> None:
    batch_id = str(uuid.uuid4())
    path = f"/api/follow/batches/{batch_id}"
    expires = str(int(time.time()) + 3600)
    valid = f"{BASE_URL}{path}?" + urlencode({"expires": expires, "sig": expected_sig(sandbox, path, "", expires)})

    found = app.follow(valid)
    unsigned = app.follow(with_query(valid, sig=None))
    tampered = app.follow(_tamper_expires(valid))

    assert found.status == 404 and found.json()["type"] == PROBLEM + "not-found"
    assert found.json()["title"] == "No such batch"
    assert [unsigned.status, tampered.status] == [401, 401]
    assert _problem_without_correlation(unsigned) == _problem_without_correlation(tampered)


# --- no link key in Key Vault: the 202 is never lost ----------------------------------------------------------


def test_without_the_link_key_the_post_still_answers_202_with_the_keyed_url_and_one_error_log(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    configure(STATUS_LINK_KEY_SECRET="no-such-link-key")
    customers = [customer_with(sandbox, Step(0, "InProgress")) for _ in range(2)]

    answers = [accepted(app, customer) for customer in customers]

    for answer in answers:
        assert answer.header("Location") == answer.json()["statusUri"]
        assert urlsplit(answer.header("Location") or "").path.startswith("/api/upgrades/")
        assert app.follow(answer.header("Location") or "").status == 202  # the keyed route, with the key
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "make consent" in errors[0] and "no-such-link-key" in errors[0]

    link = f"{BASE_URL}/api/follow/upgrades/{answers[0].json()['upgradeId']}?customerId={customers[0]}"
    refused = app.follow(link + "&expires=9999999999&sig=" + "A" * 43)
    assert refused.status == 502 and refused.json()["type"] == PROBLEM + "dependency-misconfigured"


# --- Host: the base of every URL is the current request's, and well-formed ----------------------------------


def test_an_idempotent_replay_on_another_host_gets_urls_on_its_own_host_with_a_fresh_signature(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"))
    headers = {"Idempotency-Key": "order-4711"}
    first = accepted(app, customer, headers=headers, base_url="https://attacker.example")
    virtual_clock.advance(30)

    replay = accepted(app, customer, headers=headers)

    upgrade_id = replay.json()["upgradeId"]
    assert upgrade_id == first.json()["upgradeId"] and len(sandbox.partner_center.requests_to("create")) == 1
    location = replay.header("Location") or ""
    assert location.startswith(f"{BASE_URL}/api/follow/upgrades/{upgrade_id}?")
    assert replay.json()["statusUri"] == f"{BASE_URL}/api/upgrades/{upgrade_id}?customerId={customer}"
    assert "attacker" not in replay.body.decode() + location
    assert int(query(location)["expires"]) == int(query(first.header("Location") or "")["expires"]) + 30
    assert app.follow(location).status == 202


MALFORMED_HOSTS = {
    "bracket": "[",
    "IPv6 literal": "[::1]",
    "userinfo": "user@upgrades.example.test",
    "space": "upgrades example.test",
    "non-ASCII": "upgr\u00e4des.example.test",
    "port out of range": "upgrades.example.test:99999",
    "empty label": "upgrades..example.test",
}


@pytest.mark.parametrize("host", list(MALFORMED_HOSTS.values()), ids=list(MALFORMED_HOSTS))
def test_a_malformed_host_is_400_naming_host_before_anything_happens(
    app: AppHarness, sandbox: Sandbox, host: str
) -> None:
    customer = customer_with(sandbox, Step(0, "InProgress"))
    link = accepted(app, customer).header("Location") or ""
    sandbox.partner_center.reset()
    base = f"https://{host}"

    answers = [
        app.post({"customerId": customer, "productFamily": "Azure"}, headers={"Host": host}, base_url=base),
        app.get(str(uuid.uuid4()), customer, headers={"Host": host}, base_url=base),
        app.follow(link, headers={"Host": host}, base_url=base),
    ]

    for answer in answers:
        assert answer.status == 400, (answer.path, answer.body)
        assert answer.json()["type"] == PROBLEM + "validation-failed"
        assert [e["field"] for e in answer.json()["errors"]] == ["Host"]
    assert sandbox.partner_center.log == []


def test_a_malformed_host_header_is_refused_even_when_the_url_looks_fine(app: AppHarness, sandbox: Sandbox) -> None:
    answer = app.post({"customerId": str(uuid.uuid4()), "productFamily": "Azure"}, headers={"Host": "["})

    assert answer.status == 400 and answer.json()["errors"][0]["field"] == "Host"
    assert sandbox.partner_center.log == []


def test_with_public_base_url_the_host_is_not_used_at_all(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    configure(PUBLIC_BASE_URL="https://api.contoso.example")
    customer = customer_with(sandbox, Step(0, "InProgress"))

    answer = accepted(app, customer, headers={"Host": "["}, base_url="https://evil.example")

    assert (answer.header("Location") or "").startswith("https://api.contoso.example/api/follow/upgrades/")
    assert answer.json()["statusUri"].startswith("https://api.contoso.example/api/upgrades/")
