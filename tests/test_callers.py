"""Who may do what, and who did it: every keyed route resolves its caller (Entra token or caller key) before any
work, answers 401 the same way whatever was wrong, 403 naming the missing role, and leaves an audit entry
(docs/design.md, "Callers, roles and audit")."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sandbox.clock import ManualClock
from sandbox.entra_api import BAD_TOKEN_KINDS
from sandbox.stack import CALLER_KEY_PREFIX, Sandbox
from shared.api.callers import (
    BATCHES_REPORT,
    BATCHES_UPGRADE,
    OPERATIONS_READ,
    PUBLIC,
    ROUTES,
    UPGRADES_CREATE,
    UPGRADES_READ,
)
from shared.auth.caller_keys import CACHE_SECONDS, REFRESH_AFTER_SECONDS
from shared.auth.tokens import REFRESH_INTERVAL_SECONDS
from support.callers import bearer
from support.harness import Answer, AppHarness

ROOT = Path(__file__).resolve().parent.parent
PROBLEM = "urn:partner-center-upgrade:problem:"
CUSTOMER = "4f6a2d1e-8c3b-4e5f-9a7d-2b1c0e9f8a76"
BATCH = "9d2f6c1a-3b4e-4f5a-8c7d-1e2f3a4b5c6d"


def _every_route(app: AppHarness) -> dict[str, Callable[[], Answer]]:
    """One request to each keyed route, sent with the harness's current credential."""
    return {
        "CreateUpgrade": lambda: app.post({"customerId": CUSTOMER, "productFamily": "Azure"}),
        "ListUpgrades": app.list_upgrades,
        "GetUpgradeStatus": lambda: app.get(BATCH, CUSTOMER),
        "CheckEligibility": lambda: app.eligibility(CUSTOMER),
        "StartBatch": lambda: app.post_batch({"productFamily": "Azure", "mode": "report", "customerIds": [CUSTOMER]}),
        "GetBatch": lambda: app.get_batch(BATCH),
        "GetBatchCustomers": lambda: app.get_batch_customers(BATCH),
        "Health": app.health,
        "GetAudit": app.audit,
    }


def _refusal(answer: Answer) -> dict[str, object]:
    """The 401 body without its correlationId (the one member that differs per request)."""
    assert answer.status == 401, answer.body
    assert answer.header("WWW-Authenticate") == "Bearer"
    body = answer.json()
    assert body["correlationId"] == answer.header("x-correlation-id")
    return {k: v for k, v in body.items() if k != "correlationId"}


def _audit(app: AppHarness, **params: str) -> list[dict[str, object]]:
    answer = app.audit(**params)
    assert answer.status == 200, answer.body
    return list(answer.json()["items"])


# --- the route table --------------------------------------------------------------------------------------


def test_every_http_function_has_a_role_in_the_route_table() -> None:
    missing, mismatched = [], []
    for function_json in sorted(ROOT.glob("*/function.json")):
        name = function_json.parent.name
        for binding in json.loads(function_json.read_text())["bindings"]:
            if binding["type"] != "httpTrigger" or name in PUBLIC:
                continue
            rule = ROUTES.get(name)
            if rule is None:
                missing.append(name)
            elif {m.upper() for m in binding["methods"]} != set(rule.methods) or binding["route"] != rule.route:
                mismatched.append(name)
            assert binding["authLevel"] == "anonymous", f"{name}: the app checks callers itself"
    assert missing == [], f"add these functions to shared/api/callers.py ROUTES: {missing}"
    assert mismatched == [], f"ROUTES disagrees with function.json about: {mismatched}"


# --- 401: the same answer whatever was wrong, no work done -----------------------------------------------


def test_every_keyed_route_without_a_credential_is_401_and_audited(app: AppHarness, sandbox: Sandbox) -> None:
    full = app.credential
    app.credential = {}
    bodies = {name: _refusal(request()) for name, request in _every_route(app).items()}

    assert len({json.dumps(b, sort_keys=True) for b in bodies.values()}) == 1
    assert next(iter(bodies.values()))["type"] == PROBLEM + "unauthenticated"
    assert sandbox.partner_center.log == []  # nothing reached Partner Center
    app.credential = full
    entries = _audit(app, top="50")
    refused = [e for e in entries if e["outcome"]["status"] == 401]  # type: ignore[index]
    assert len(refused) == len(bodies)
    assert all(e["caller"]["kind"] == "none" and e["outcome"]["reason"] == "no credential" for e in refused)  # type: ignore[index]


def test_bad_tokens_and_bad_headers_get_one_identical_401(app: AppHarness, sandbox: Sandbox) -> None:
    client, good = bearer(sandbox)
    sent = {kind: f"Bearer {sandbox.entra.api.bad_token(kind, client, sandbox.clock())}" for kind in BAD_TOKEN_KINDS}
    sent |= {
        "not a JWT": "Bearer abc.def",
        "basic scheme": "Basic dXNlcjpwYXNz",
        "bearer without token": "Bearer ",
        "token twice": good["Authorization"] + " " + good["Authorization"],
    }
    bodies = {}
    for case, header in sent.items():
        app.credential = {"Authorization": header}
        bodies[case] = _refusal(app.post({"customerId": CUSTOMER, "productFamily": "Azure"}))
    app.credential = good
    accepted = app.post({"customerId": CUSTOMER, "productFamily": "Azure"})

    assert len({json.dumps(b, sort_keys=True) for b in bodies.values()}) == 1, bodies
    assert accepted.status == 202, accepted.body  # the same client with a good token gets in
    creates = sandbox.partner_center.requests_to("create")
    assert len(creates) == 1  # only the good token's request reached Partner Center
    reasons = {e["outcome"]["reason"] for e in _audit(app, action="upgrade.create") if e["outcome"]["status"] == 401}  # type: ignore[index]
    assert len(reasons) >= 6  # each refusal is explained to the operator, never to the caller


def test_a_principal_header_is_not_an_identity(app: AppHarness) -> None:
    principal = {"X-MS-CLIENT-PRINCIPAL": "eyJ1c2VyUm9sZXMiOlsiVXBncmFkZXMuQ3JlYXRlIl19"}
    app.credential = principal

    assert app.post({"customerId": CUSTOMER, "productFamily": "Azure"}).status == 401


def test_a_new_signing_key_is_fetched_once_and_at_most_every_five_minutes(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    _, first = bearer(sandbox, (UPGRADES_READ,))
    app.credential = first
    before_rotation = app.list_upgrades().status
    sandbox.entra.api.rotate_keys()
    _, second = bearer(sandbox, (UPGRADES_READ,))
    app.credential = second
    too_soon = [app.list_upgrades().status for _ in range(3)]  # keys were read a moment ago: no refresh yet
    fetches_then = len(sandbox.entra.requests_to("keys"))
    virtual_clock.advance(REFRESH_INTERVAL_SECONDS + 1)
    later = [app.list_upgrades().status for _ in range(3)]

    assert (before_rotation, too_soon, later) == (200, [401] * 3, [200] * 3)
    assert (fetches_then, len(sandbox.entra.requests_to("keys"))) == (1, 2)  # one refresh for the new key id


# --- caller keys ------------------------------------------------------------------------------------------


def test_a_caller_key_works_in_the_header_and_the_query(app: AppHarness, sandbox: Sandbox) -> None:
    key = sandbox.seed_caller_key("crm-query", (UPGRADES_READ,))
    app.credential = {}

    by_header = app.list_upgrades(headers={"X-Caller-Key": key})
    by_query = app.list_upgrades(callerKey=key)
    wrong_query = app.list_upgrades(callerKey=key[:-4] + "AAAA")
    both = app.list_upgrades(headers={"X-Caller-Key": key}, callerKey=key)  # one credential, not two

    assert (by_header.status, by_query.status, wrong_query.status, both.status) == (200, 200, 401, 200)


def test_a_wrong_or_revoked_key_is_401_and_a_rotated_one_keeps_the_old_valid(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    first = sandbox.seed_caller_key("crm", (UPGRADES_READ,))
    second = sandbox.seed_caller_key("crm", (UPGRADES_READ,))  # a rotation: both versions valid
    name, _, secret = first.partition(".")
    app.credential = {}
    answers = {
        "first": app.list_upgrades(headers={"X-Caller-Key": first}).status,
        "second": app.list_upgrades(headers={"X-Caller-Key": second}).status,
        "wrong": app.list_upgrades(headers={"X-Caller-Key": f"{name}.{secret[::-1]}"}).status,
    }
    third = sandbox.seed_caller_key("crm", (UPGRADES_READ,))
    virtual_clock.advance(CACHE_SECONDS + 1)
    answers["first after the next rotation"] = app.list_upgrades(headers={"X-Caller-Key": first}).status
    answers["third"] = app.list_upgrades(headers={"X-Caller-Key": third}).status
    sandbox.key_vault.delete(CALLER_KEY_PREFIX + "crm")
    virtual_clock.advance(CACHE_SECONDS + 1)
    answers["third after revocation"] = app.list_upgrades(headers={"X-Caller-Key": third}).status

    assert answers == {
        "first": 200,
        "second": 200,
        "wrong": 401,
        "first after the next rotation": 401,
        "third": 200,
        "third after revocation": 401,
    }


def test_a_caller_key_in_use_is_read_again_in_the_background_and_never_waits_on_key_vault(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    """Past REFRESH_AFTER_SECONDS a request is answered from the cache and the key is read again beside it, so a
    caller with steady traffic never waits on Key Vault: here Key Vault is unreachable once that read is done, and
    the key still works past CACHE_SECONDS of the first read (a read on the request path would be a 503)."""
    key = {"X-Caller-Key": sandbox.seed_caller_key("steady", (UPGRADES_READ,))}
    assert app.list_upgrades(headers=key).status == 200
    reads = len(sandbox.key_vault.log)
    virtual_clock.advance(REFRESH_AFTER_SECONDS + 1)
    assert app.list_upgrades(headers=key).status == 200
    deadline = time.monotonic() + 60
    while [r for r in sandbox.key_vault.log[reads:] if r.status] != sandbox.key_vault.log[reads:] or len(
        sandbox.key_vault.log
    ) < reads + 2:  # the versions and the secret, read (and answered) in the background
        assert time.monotonic() < deadline, "the key was not read again in the background"
        time.sleep(0.05)
    sandbox.key_vault.down()
    try:
        virtual_clock.advance(CACHE_SECONDS - REFRESH_AFTER_SECONDS)  # 61 s after the first read
        # answered from what the background read stored (until it has, a request would read Key Vault: 503)
        while (answer := app.list_upgrades(headers=key)).status != 200:
            assert time.monotonic() < deadline, f"the key is read on the request path: {answer.status}"
        virtual_clock.advance(CACHE_SECONDS)  # nothing read since: read now, and Key Vault is down
        assert app.list_upgrades(headers=key).status == 503
    finally:
        sandbox.key_vault.up()


# --- 403: the role, named --------------------------------------------------------------------------------


def test_a_caller_without_the_role_gets_403_naming_it_and_nothing_is_done(app: AppHarness, sandbox: Sandbox) -> None:
    reader = sandbox.seed_caller_key("reader", (UPGRADES_READ,))
    reporter = sandbox.seed_caller_key("reporter", (BATCHES_REPORT,))
    app.credential = {"X-Caller-Key": reader}
    create = app.post({"customerId": CUSTOMER, "productFamily": "Azure"})
    health = app.health()
    app.credential = {"X-Caller-Key": reporter}
    upgrade_batch = app.post_batch({"productFamily": "Azure", "mode": "upgrade", "customerIds": [CUSTOMER]})
    report_batch = app.post_batch({"productFamily": "Azure", "mode": "report", "customerIds": [CUSTOMER]})

    assert (create.status, create.json()["type"]) == (403, PROBLEM + "forbidden")
    assert UPGRADES_CREATE in create.json()["detail"]
    assert health.status == 403 and OPERATIONS_READ in health.json()["detail"]
    assert upgrade_batch.status == 403 and BATCHES_UPGRADE in upgrade_batch.json()["detail"]
    assert report_batch.status == 202
    assert sandbox.partner_center.log == []
    app.credential = {"X-Caller-Key": sandbox.seed_caller_key("auditor", (OPERATIONS_READ,))}
    refused = [e for e in _audit(app) if e["outcome"]["status"] == 403]  # type: ignore[index]
    assert {(e["caller"]["id"], e["action"]) for e in refused} == {  # type: ignore[index]
        ("reader", "upgrade.create"),
        ("reader", "health.read"),
        ("reporter", "batch.start"),
    }


# --- who did it -------------------------------------------------------------------------------------------


def test_a_token_caller_is_recorded_on_the_upgrade_and_in_the_audit(app: AppHarness, sandbox: Sandbox) -> None:
    client, header = bearer(sandbox, (UPGRADES_CREATE, UPGRADES_READ))
    app.credential = header
    customer, correlation = str(uuid.uuid4()), str(uuid.uuid4())

    accepted = app.post({"customerId": customer, "productFamily": "Azure"}, headers={"x-correlation-id": correlation})
    status = app.get(accepted.json()["upgradeId"], customer)

    assert accepted.status == 202
    caller = sandbox.entra.api.clients[client.client_id]
    assert status.json()["requestedBy"] == {"kind": "token", "id": caller.object_id, "name": None}
    sent = sandbox.partner_center.requests_to("create")[0].headers["MS-CorrelationId"]
    app.credential = {"X-Caller-Key": sandbox.seed_caller_key("auditor", (OPERATIONS_READ,))}
    [entry] = _audit(app, action="upgrade.create", callerId=caller.object_id)
    assert entry["correlationId"] == sent == correlation
    assert entry["caller"] == {"kind": "token", "id": caller.object_id, "appId": client.client_id, "name": None}
    assert entry["targets"] == [customer, accepted.json()["upgradeId"]]
    assert entry["outcome"] == {"status": 202, "problemType": None, "reason": None}


def test_a_key_caller_is_recorded_on_the_batch_and_in_the_audit(app: AppHarness, sandbox: Sandbox) -> None:
    app.credential = {"X-Caller-Key": sandbox.seed_caller_key("crm-batches", (BATCHES_REPORT, UPGRADES_READ))}

    started = app.post_batch({"productFamily": "Azure", "mode": "report", "customerIds": [CUSTOMER]})
    read = app.get_batch(started.json()["batchId"])

    assert started.json()["requestedBy"] == {"kind": "key", "id": "crm-batches", "name": "crm-batches"}
    assert read.json()["requestedBy"] == started.json()["requestedBy"] and read.json()["cancelledBy"] is None
    app.credential = {"X-Caller-Key": sandbox.seed_caller_key("auditor", (OPERATIONS_READ,))}
    [entry] = _audit(app, action="batch.start")
    assert entry["caller"]["id"] == "crm-batches" and entry["targets"] == [started.json()["batchId"]]  # type: ignore[index]


def test_the_upgrades_a_batch_creates_carry_the_batch_requester(
    app: AppHarness, sandbox: Sandbox, virtual_clock: ManualClock
) -> None:
    app.credential = {"X-Caller-Key": sandbox.seed_caller_key("crm-upgrades", (BATCHES_UPGRADE, UPGRADES_READ))}
    customer = str(uuid.uuid4())
    started = app.post_batch({"productFamily": "Azure", "mode": "upgrade", "customerIds": [customer]})
    app.virtual_queues(virtual_clock).run()

    [row] = app.get_batch_customers(started.json()["batchId"]).json()["items"]
    upgrade = app.get(row["upgradeId"], customer).json()
    assert upgrade["requestedBy"] == {"kind": "key", "id": "crm-upgrades", "name": "crm-upgrades"}


def test_a_cancel_records_who_cancelled_on_the_batch_and_in_the_audit(app: AppHarness, sandbox: Sandbox) -> None:
    app.credential = {"X-Caller-Key": sandbox.seed_caller_key("ops-desk", (BATCHES_UPGRADE, UPGRADES_READ))}
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))  # Scheduled: nothing runs
    started = app.post_batch(
        {"productFamily": "Azure", "mode": "upgrade", "customerIds": [CUSTOMER], "notBefore": later}
    )

    cancelled = app.cancel_batch(started.json()["batchId"])

    assert cancelled.status == 200, cancelled.body
    caller = {"kind": "key", "id": "ops-desk", "name": "ops-desk"}
    assert cancelled.json()["cancelledBy"] == caller and cancelled.json()["requestedBy"] == caller
    app.credential = {"X-Caller-Key": sandbox.seed_caller_key("auditor", (OPERATIONS_READ,))}
    [entry] = _audit(app, action="batch.cancel")
    assert entry["caller"]["id"] == "ops-desk" and entry["targets"] == [started.json()["batchId"]]  # type: ignore[index]
    assert entry["outcome"]["status"] == 200  # type: ignore[index]


def test_the_audit_reads_newest_first_in_pages_and_as_csv(app: AppHarness, sandbox: Sandbox) -> None:
    app.credential = {"X-Caller-Key": "=cmd.not-a-key-at-all-but-long-enough-to-look-like-one"}
    for _ in range(3):
        app.list_upgrades()
    app.credential = {"X-Caller-Key": sandbox.seed_caller_key("auditor", (OPERATIONS_READ,))}

    first = app.audit(top="2")
    second = app.audit(top="2", continuationToken=first.json()["continuationToken"])
    csv = app.audit(headers={"Accept": "text/csv"})
    bad = app.audit(top="0", continuationToken="nope")

    times = [e["time"] for e in first.json()["items"] + second.json()["items"]]
    assert len(times) == 3 and times == sorted(times, reverse=True)
    assert second.json()["continuationToken"] is None
    assert csv.status == 200 and csv.content_type.startswith("text/csv")
    lines = csv.body.decode().splitlines()
    assert lines[0].startswith("time,callerKind,callerId") and len(lines) == 4
    assert bad.status == 400 and {e["field"] for e in bad.json()["errors"]} == {"top", "continuationToken"}
