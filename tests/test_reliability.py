"""Reliability: outside failures, load with injected faults, and a generated corpus of hostile input.

Every scenario checks what the caller got, and that no accepted upgrade is lost: each 202 either has a status
record or is recovered by the status route from the customerId its Location carries. (The `app` fixture also
checks every response against the OpenAPI description and every log line and response for leaked secrets.)
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from localrun.azurite import Azurite
from sandbox.faults import Fault
from sandbox.stack import SamSeed, Sandbox
from shared.api import validation
from shared.correlation import is_guid
from shared.errors import ValidationFailed
from support.harness import Answer, AppHarness

PROBLEM = "urn:partner-center-upgrade:problem:"


def body(customer_id: str) -> dict[str, str]:
    return {"customerId": customer_id, "productFamily": "Azure"}


def assert_nothing_lost(app: AppHarness, answers: Iterable[Answer]) -> None:
    """Every 202 from POST can be followed to its upgrade."""
    for answer in answers:
        if answer.method == "POST" and answer.status == 202:
            location = answer.header("Location")
            assert location
            followed = app.follow(location)
            assert followed.status in (200, 202), (location, followed.status, followed.body)
            assert followed.json()["upgradeId"] == answer.json()["upgradeId"]


# --- outside failures -------------------------------------------------------------------------------


def test_a_429_storm_ends_in_503_with_retry_after_and_the_retry_after_it_succeeds(
    app: AppHarness, sandbox: Sandbox
) -> None:
    customer = str(uuid.uuid4())
    sandbox.partner_center.faults.add("create", status=429, retry_after=1, times=4)

    throttled = app.post(body(customer), headers={"Idempotency-Key": "storm"})
    accepted = app.post(body(customer), headers={"Idempotency-Key": "storm"})

    assert throttled.status == 503 and throttled.header("Retry-After") == "1"
    assert throttled.json()["type"] == PROBLEM + "partner-center-throttled"
    assert accepted.status == 202
    assert sandbox.partner_center.creates == 1
    assert_nothing_lost(app, app.answers)


def test_a_5xx_burst_is_absorbed_by_retries(app: AppHarness, sandbox: Sandbox) -> None:
    sandbox.partner_center.faults.add("eligibility", status=502)
    sandbox.partner_center.faults.add("create", status=503, times=2)

    answer = app.post(body(str(uuid.uuid4())))

    assert answer.status == 202
    assert sandbox.partner_center.creates == 1
    assert_nothing_lost(app, app.answers)


def test_a_create_that_outlives_the_timeout_is_retried_and_partner_center_creates_it_once(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    configure(PARTNER_CENTER_TIMEOUT_SECONDS="0.3")
    sandbox.partner_center.faults.add("create", delay=0.6)  # processed by Partner Center, answered too late

    answer = app.post(body(str(uuid.uuid4())))

    assert answer.status == 202
    creates = sandbox.partner_center.requests_to("create")
    assert len(creates) == 2 and len({c.headers["MS-RequestId"] for c in creates}) == 1
    assert sandbox.partner_center.creates == 1
    assert answer.json()["upgradeId"] in sandbox.partner_center.upgrades
    assert_nothing_lost(app, app.answers)


def test_a_warm_instance_keeps_working_while_key_vault_and_entra_are_down(app: AppHarness, sandbox: Sandbox) -> None:
    assert app.post(body(str(uuid.uuid4()))).status == 202  # warms the secret and token caches
    sandbox.key_vault.down()
    sandbox.entra.down()

    answer = app.post(body(str(uuid.uuid4())))

    assert answer.status == 202
    assert_nothing_lost(app, app.answers)


@pytest.mark.parametrize("service", ["key_vault", "entra"])
def test_a_cold_instance_answers_503_while_key_vault_or_entra_is_down_and_recovers(
    app: AppHarness, sandbox: Sandbox, service: str
) -> None:
    getattr(sandbox, service).down()

    down = app.post(body(str(uuid.uuid4())))
    getattr(sandbox, service).up()
    up = app.post(body(str(uuid.uuid4())))

    assert down.status == 503 and down.header("Retry-After")
    assert down.json()["type"] == PROBLEM + "dependency-unavailable"
    assert up.status == 202
    assert sandbox.partner_center.creates == 1


def test_invalid_grant_is_502_consent_required_and_clears_once_consent_is_redone(
    app: AppHarness, sandbox: Sandbox, sam: SamSeed
) -> None:
    sandbox.entra.revoke_all()

    refused = app.post(body(str(uuid.uuid4())))
    sandbox.seed_sam_credentials()  # the operator re-ran the consent tool: new versions in the vault
    from shared.services import reset_services

    reset_services()  # ... and the next instance (or the 60 s failure memory expiring) picks them up
    accepted = app.post(body(str(uuid.uuid4())))

    assert refused.status == 502 and refused.json()["type"] == PROBLEM + "consent-required"
    assert accepted.status == 202


def test_storage_stopped_and_restarted_mid_run_loses_no_accepted_upgrade(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None], tmp_path: Path
) -> None:
    storage = Azurite(tmp_path).start()
    try:
        configure(AzureWebJobsStorage=storage.connection_string)
        app.azurite = storage
        before = app.post(body(str(uuid.uuid4())))

        storage.stop()
        during = app.post(body(str(uuid.uuid4())))  # Partner Center accepts; recording and queueing fail
        during_get = app.get(before.json()["upgradeId"])
        keyed = app.post(body(str(uuid.uuid4())), headers={"Idempotency-Key": "while-down"})

        storage.start()  # in memory: it comes back empty, as if its data were lost too
        assert (before.status, during.status) == (202, 202)
        assert during_get.status == 503 and during_get.header("Retry-After")
        assert keyed.status == 503 and keyed.header("Retry-After")
        assert_nothing_lost(app, [before, during])
        assert {m.json()["upgradeId"] for m in app.scheduled()} >= {
            before.json()["upgradeId"],
            during.json()["upgradeId"],
        }
    finally:
        storage.stop()


# --- load ------------------------------------------------------------------------------------------


def test_500_requests_from_32_threads_with_5_percent_faults(
    app: AppHarness, sandbox: Sandbox, configure: Callable[..., None]
) -> None:
    configure(PARTNER_CENTER_TIMEOUT_SECONDS="1")
    sandbox.partner_center.faults.randomly(
        0.05,
        [
            Fault(None, status=503),
            Fault(None, status=500),
            Fault(None, status=429, retry_after=1),
            Fault(None, reset_connection=True),
            Fault(None, delay=1.5),  # past the read timeout
        ],
        seed=20261121,
    )
    keys = [f"load-{i}" for i in range(450)]
    customers = {key: str(uuid.uuid4()) for key in keys}
    plan = keys + random.Random(7).sample(keys, 50)  # 50 keys sent twice, possibly at the same time
    random.Random(8).shuffle(plan)

    def send(key: str) -> tuple[str, Answer]:
        return key, app.post(body(customers[key]), headers={"Idempotency-Key": key})

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(send, plan))

    statuses = Counter(answer.status for _, answer in results)
    assert not [s for s in statuses if s >= 500 and s not in (502, 503, 504)], statuses
    assert statuses[202] >= 450 * 0.9, statuses
    for _, answer in results:
        if answer.status >= 400:
            assert answer.content_type.startswith("application/problem+json")
            assert answer.json()["status"] == answer.status
    ours = set(customers.values())  # the session's sandbox also holds other tests' upgrades
    upgrades_per_customer = Counter(
        u.customer_id for u in sandbox.partner_center.upgrades.values() if u.customer_id in ours
    )
    assert max(upgrades_per_customer.values()) == 1
    accepted: dict[str, set[str]] = defaultdict(set)
    for key, answer in results:
        if answer.status == 202:
            accepted[key].add(answer.json()["upgradeId"])
    assert all(len(ids) == 1 for ids in accepted.values())
    sandbox.partner_center.faults.clear()
    assert_nothing_lost(app, [answer for _, answer in results])
    print(f"\nload: {dict(statuses)}; Partner Center creates {sandbox.partner_center.creates}")


# --- hostile input -----------------------------------------------------------------------------------

GUID = "a3c1f7e2-52d4-4f0b-9a8e-1d2c3b4a5f60"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {},
        optional={
            "customerId": st.one_of(
                st.just(GUID), st.just(GUID + "\n"), st.uuids().map(str), st.text(max_size=40), json_values
            ),
            "productFamily": st.one_of(st.sampled_from(["Azure", "azure", "AZURE", "Office"]), json_values),
            "callbackUrl": st.one_of(st.none(), st.text(max_size=60), st.just("https://localhost/cb")),
            "extra": json_values,
        },
    ).map(lambda d: json.dumps(d).encode()),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/vnd.foo+json",
        "text/plain",
        "",
        "application/problem+json",
        "a/b; c",
    ]
)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=300)
# What the host can route to {upgradeId}: one non-empty path segment.
route_segment = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="/?#%"), min_size=1, max_size=80
)


def valid_request(raw: bytes, content_type: str, key: str | None) -> bool:
    """Would the app accept this? Each rule (media type, size, strict JSON, Idempotency-Key, customer id, fields)
    is the app's own definition, imported, so the oracle cannot drift from the app; only the composition is ours."""
    if not validation.is_json_media_type(content_type) or len(raw) > validation.MAX_BODY_BYTES:
        return False
    if key is not None and not validation.is_idempotency_key(key):
        return False
    try:
        document = validation.parse_json_object(raw)
    except ValidationFailed:
        return False
    if set(document) - set(validation.ALLOWED_FIELDS):
        return False
    family = document.get("productFamily")
    return (
        validation.is_customer_id(document.get("customerId"))
        and isinstance(family, str)
        and family.lower() == validation.PRODUCT_FAMILY.lower()
        and document.get("callbackUrl") is None
    )


def reflected(value: str, answer: Answer, control: Callable[[str], Answer]) -> bool:
    """Whether `answer` echoes `value`: it holds the value more often than the answer to the same request with the
    value swapped for a neutral one of the same length (`control`). Counting against a control keeps words the
    app always writes ("status", "detail", ...) from passing for a reflection when a generated value equals one."""
    text = answer.body.decode("utf-8", "replace")
    if len(value) < 4 or value not in text:
        return False
    neutral = ("q" if set(value) != {"q"} else "z") * len(value)
    return text.count(value) > control(neutral).body.decode("utf-8", "replace").count(value)


def strings_in(raw: bytes) -> list[str]:
    """Every string value (not key) of a JSON body, to look for in error bodies."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for item in node.values():
                walk(item)

    walk(document)
    return found


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=bodies, content_type=content_types, key=st.none() | header_text, correlation=header_text)
@example(raw=json.dumps(body(GUID)).encode(), content_type="application/json", key=None, correlation="-")
@example(raw=json.dumps(body(GUID)).encode(), content_type="application/vnd.foo+json", key=None, correlation="-")
@example(raw=json.dumps(body(GUID + "\n")).encode(), content_type="application/json", key=None, correlation="-")
def test_generated_create_requests_never_get_a_5xx_or_reach_partner_center_unless_valid(
    app: AppHarness, sandbox: Sandbox, raw: bytes, content_type: str, key: str | None, correlation: str
) -> None:
    sandbox.partner_center.log.clear()
    headers = {"x-correlation-id": correlation} | ({"Idempotency-Key": key} if key is not None else {})

    answer = app.post(raw=raw, headers=headers, content_type=content_type)

    assert answer.status < 500, answer.body
    valid = valid_request(raw, content_type, key)
    if sandbox.partner_center.log:
        assert valid, (answer.status, raw)
    elif valid:  # only a replayed, reused or in-flight Idempotency-Key spares Partner Center
        assert key is not None and answer.status in (202, 409, 422), (answer.status, raw)
    if answer.status >= 400:

        def with_body_value(value: str) -> Callable[[str], Answer]:
            encoded = json.dumps(value)[1:-1].encode()
            return lambda neutral: app.post(raw=raw.replace(encoded, neutral.encode()), headers=headers,
                                            content_type=content_type)  # fmt: skip

        for value in strings_in(raw):
            assert is_guid(value) or not reflected(value, answer, with_body_value(value))
        if key:
            assert not reflected(key, answer, lambda n: app.post(raw=raw, headers=headers | {"Idempotency-Key": n},
                                                                 content_type=content_type))  # fmt: skip
        assert not reflected(correlation, answer, lambda n: app.post(raw=raw, headers=headers | {"x-correlation-id": n},
                                                                     content_type=content_type))  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    upgrade_id=st.one_of(st.uuids().map(str), route_segment),
    customer_id=st.none() | st.uuids().map(str) | header_text,
)
def test_generated_status_requests_never_get_a_5xx(
    app: AppHarness, sandbox: Sandbox, upgrade_id: str, customer_id: str | None
) -> None:
    answer = app.get(upgrade_id, customer_id)

    assert answer.status in (200, 202, 400, 404), (answer.status, answer.body)
    if answer.status == 400:
        assert not reflected(upgrade_id, answer, lambda neutral: app.get(neutral, customer_id))
        assert not (customer_id and reflected(customer_id, answer, lambda neutral: app.get(upgrade_id, neutral)))
