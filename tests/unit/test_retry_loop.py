"""The Partner Center retry loop (shared/partner_center/client.py, outbound.py, budget.py): what is retried, after
how long, with which MS-RequestId, and when the caller gets the failure instead. The client talks to
`ScriptedSession`, a stand-in for requests.Session that answers from a script, on a clock that never waits."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from shared.errors import PartnerCenterFailed, PartnerCenterThrottled, PartnerCenterTimeout
from shared.partner_center.budget import MAX_CALL_ATTEMPTS, Budget
from shared.partner_center.client import BACKOFF_SECONDS, PartnerCenterClient
from shared.partner_center.outbound import backoff, retry_after
from support.step_clock import StepClock

CUSTOMER_ID = "0b7e6f1a-2c3d-4e5f-9a8b-7c6d5e4f3a2b"
UPGRADE_ID = "6a1d2b1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
Answer = tuple[int, dict[str, str], dict[str, Any]] | type[requests.RequestException]


def _response(status: int, headers: dict[str, str], body: dict[str, Any]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict(headers)
    response._content = json.dumps(body).encode()
    return response


class ScriptedSession:
    """Answers each request with the next scripted answer (or raises it) and remembers what was sent."""

    def __init__(self, *answers: Answer) -> None:
        self._answers = list(answers)
        self.sent: list[dict[str, str]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.sent.append(dict(kwargs["headers"]))
        answer = self._answers.pop(0)
        if isinstance(answer, type):
            raise answer("scripted")
        return _response(*answer)


class Tokens:
    def __init__(self) -> None:
        self.issued = 0
        self.rejected: list[str] = []

    def access_token(self, rejected: str | None = None) -> str:
        if rejected is not None:
            self.rejected.append(rejected)
        self.issued += 1
        return f"token-{self.issued}"


STATUS_OK: Answer = (200, {}, {"status": "InProgress"})


def _client(session: ScriptedSession, clock: StepClock, tokens: Tokens | None = None) -> PartnerCenterClient:
    return PartnerCenterClient(
        "https://pc.example",
        tokens or Tokens(),  # type: ignore[arg-type]
        session,  # type: ignore[arg-type]
        clock,
        read_timeout=30,
    )


def _status(client: PartnerCenterClient, budget: Budget) -> str | None:
    return client.get_status(UPGRADE_ID, CUSTOMER_ID, "Azure", budget).status


def test_a_5xx_is_retried_with_the_same_request_id_after_a_growing_back_off(step_clock: StepClock) -> None:
    session = ScriptedSession((503, {}, {}), (500, {}, {}), (502, {}, {}), STATUS_OK)

    assert _status(_client(session, step_clock), Budget(60, step_clock)) == "InProgress"

    assert len({headers["MS-RequestId"] for headers in session.sent}) == 1 and len(session.sent) == 4
    first, second, third = step_clock.slept
    assert 0.8 * BACKOFF_SECONDS <= first <= 1.2 * BACKOFF_SECONDS
    assert 1.6 * BACKOFF_SECONDS <= second <= 2.4 * BACKOFF_SECONDS
    assert 3.2 * BACKOFF_SECONDS <= third <= 4.8 * BACKOFF_SECONDS


def test_the_last_failure_is_raised_when_the_attempts_are_used_up(step_clock: StepClock) -> None:
    session = ScriptedSession(*[(503, {}, {"code": "5000", "description": "busy"})] * (MAX_CALL_ATTEMPTS + 1))

    with pytest.raises(PartnerCenterFailed) as failed:
        _status(_client(session, step_clock), Budget(60, step_clock))

    assert len(session.sent) == MAX_CALL_ATTEMPTS
    assert "HTTP 503" in failed.value.detail


def test_a_429_is_waited_out_for_its_retry_after_when_it_fits(step_clock: StepClock) -> None:
    session = ScriptedSession((429, {"Retry-After": "7"}, {}), STATUS_OK)

    assert _status(_client(session, step_clock), Budget(30, step_clock)) == "InProgress"

    assert step_clock.slept == [7.0]


def test_a_429_that_outlives_the_budget_is_passed_on_at_once(step_clock: StepClock) -> None:
    session = ScriptedSession((429, {"Retry-After": "45"}, {}), STATUS_OK)

    with pytest.raises(PartnerCenterThrottled) as throttled:
        _status(_client(session, step_clock), Budget(30, step_clock))

    assert throttled.value.retry_after == 45
    assert step_clock.slept == [] and len(session.sent) == 1


def test_a_queue_check_never_waits_on_a_429(step_clock: StepClock) -> None:
    session = ScriptedSession((429, {"Retry-After": "2"}, {}), STATUS_OK)
    budget = Budget(60, step_clock, attempts=2, wait_when_throttled=False)

    with pytest.raises(PartnerCenterThrottled) as throttled:
        _status(_client(session, step_clock), budget)

    assert throttled.value.retry_after == 2 and step_clock.slept == []


def test_a_back_off_that_does_not_fit_the_remaining_time_ends_the_call(step_clock: StepClock) -> None:
    session = ScriptedSession((503, {"Retry-After": "20"}, {}), STATUS_OK)

    with pytest.raises(PartnerCenterFailed):
        _status(_client(session, step_clock), Budget(10, step_clock))

    assert step_clock.slept == []


def test_timeouts_and_dropped_connections_are_retried(step_clock: StepClock) -> None:
    session = ScriptedSession(requests.ConnectTimeout, requests.ConnectionError, STATUS_OK)

    assert _status(_client(session, step_clock), Budget(60, step_clock)) == "InProgress"

    assert len(session.sent) == 3


def test_a_budget_with_no_time_left_makes_no_call(step_clock: StepClock) -> None:
    session = ScriptedSession(STATUS_OK)
    budget = Budget(5, step_clock)
    step_clock.advance(5)

    with pytest.raises(PartnerCenterTimeout):
        _status(_client(session, step_clock), budget)

    assert session.sent == []


def test_a_401_forces_one_token_refresh(step_clock: StepClock) -> None:
    tokens = Tokens()
    session = ScriptedSession((401, {}, {}), STATUS_OK)

    assert _status(_client(session, step_clock, tokens), Budget(60, step_clock)) == "InProgress"

    assert tokens.rejected == ["token-1"]
    assert [headers["Authorization"] for headers in session.sent] == ["Bearer token-1", "Bearer token-2"]


def test_the_gate_runs_before_every_exchange(step_clock: StepClock) -> None:
    gated: list[int] = []
    session = ScriptedSession((503, {}, {}), STATUS_OK)
    budget = Budget(60, step_clock, gate=lambda: gated.append(len(session.sent)))

    _status(_client(session, step_clock), budget)

    assert gated == [0, 1]  # before the first request and before the retry


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "12"}, 12.0), ({"Retry-After": "1.5"}, None), ({"Retry-After": "-3"}, None), ({}, None),
     ({"Retry-After": "\uff15"}, None),  # RFC 9110 delta-seconds: ASCII digits only
     ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, None)],
)  # fmt: skip
def test_retry_after_reads_delta_seconds_only(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers) == expected


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5])
def test_back_off_doubles_per_attempt_with_bounded_jitter(attempt: int) -> None:
    center = 0.5 * 2 ** (attempt - 1)
    waits = [backoff(attempt, 0.5) for _ in range(200)]

    assert all(0.8 * center <= wait <= 1.2 * center for wait in waits)
    assert len(set(waits)) > 1  # jittered: instances that failed together do not retry together


def test_budget_remaining_counts_down_and_stops_at_zero(step_clock: StepClock) -> None:
    budget = Budget(10, step_clock)
    step_clock.advance(4)
    assert budget.remaining() == 6
    step_clock.advance(20)
    assert budget.remaining() == 0
