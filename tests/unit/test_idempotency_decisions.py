"""The Idempotency-Key decision table (shared/storage/idempotency.py `decide`): what a request with a key meets."""

from __future__ import annotations

import pytest

from shared.storage.idempotency import STALE_CLAIM_SECONDS, WINDOW_SECONDS, Decision, decide
from shared.storage.idempotency_table import IdempotencyRecord

NOW = 1_750_000_000.0
ASKED = "fingerprint-of-this-body"


def record(age: float, *, done: bool = False, fingerprint: str = ASKED) -> IdempotencyRecord:
    claimed = IdempotencyRecord.in_progress("crm-order-4711", fingerprint, NOW - age)
    return claimed.completed({"upgradeId": "u"}, 60) if done else claimed


@pytest.mark.parametrize(
    ("found", "decision"),
    [
        (None, Decision.CLAIM),
        (record(1), Decision.IN_FLIGHT),
        (record(STALE_CLAIM_SECONDS - 1), Decision.IN_FLIGHT),
        (record(STALE_CLAIM_SECONDS + 1), Decision.TAKE_OVER),  # abandoned by a dead instance
        (record(1, done=True), Decision.REPLAY),
        (record(WINDOW_SECONDS - 1, done=True), Decision.REPLAY),
        (record(WINDOW_SECONDS + 1, done=True), Decision.TAKE_OVER),  # expired: a new request
        (record(1, fingerprint="another body"), Decision.REUSED),
        (record(1, done=True, fingerprint="another body"), Decision.REUSED),
        (record(WINDOW_SECONDS + 1, fingerprint="another body"), Decision.TAKE_OVER),
    ],
)
def test_each_record_a_key_can_meet_has_one_decision(found: IdempotencyRecord | None, decision: Decision) -> None:
    assert decide(found, ASKED, NOW, STALE_CLAIM_SECONDS) is decision


def test_the_lease_is_the_configured_one() -> None:
    assert decide(record(31), ASKED, NOW, lease=30) is Decision.TAKE_OVER
    assert decide(record(29), ASKED, NOW, lease=30) is Decision.IN_FLIGHT
