"""Tracking policy (shared/tracking/policy.py): what a Partner Center status means, when the next check comes,
when a record is stale and when tracking gives up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.partner_center.client import StatusReport
from shared.settings import Settings
from shared.tracking.policy import interpret, is_stale, next_delay, timed_out, unknown_upgrade_report
from shared.upgrades.model import State, UpgradeRecord

UPGRADE_ID = "6a1d2b1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
CUSTOMER_ID = "0b7e6f1a-2c3d-4e5f-9a8b-7c6d5e4f3a2b"
T0 = 1_800_000_000.0


@pytest.mark.parametrize("status", ["Completed", "completed", " COMPLETED "])
def test_completed_in_any_case_is_final_without_error(status: str) -> None:
    outcome = interpret(StatusReport(status))

    assert (outcome.state, outcome.error) == (State.COMPLETED, None)


@pytest.mark.parametrize("status", ["Pending", "InProgress", "in progress", "NotStarted", "Queued", None, ""])
def test_anything_neither_completed_nor_failed_stays_in_progress(status: str | None) -> None:
    assert interpret(StatusReport(status)).state is State.IN_PROGRESS


def test_an_unknown_status_is_still_tracked_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert interpret(StatusReport("Reticulating")).state is State.IN_PROGRESS
    assert "Reticulating" in caplog.text


def test_failed_carries_partner_centers_code_and_description() -> None:
    report = StatusReport("Failed", error_details={"code": "4012", "description": "subscription is disabled"})

    outcome = interpret(report)

    assert outcome.state is State.FAILED
    assert outcome.error == {"code": "4012", "message": "subscription is disabled"}


def test_a_failed_line_item_fails_a_completed_upgrade_and_is_counted() -> None:
    items: list[dict[str, Any]] = [
        {"status": "Completed"},
        {"status": "Failed", "errorDetails": {"code": "LI-9", "message": "quota"}},
        {"status": "failed"},
    ]

    outcome = interpret(StatusReport("Completed", line_items=items))

    assert outcome.state is State.FAILED
    assert outcome.error == {"code": "LI-9", "message": "quota", "failedLineItems": 2}


def test_a_failure_without_details_still_has_a_code_and_a_message() -> None:
    outcome = interpret(StatusReport("UpgradeFailed"))

    assert outcome.error == {"code": "UpgradeFailed", "message": "Partner Center reported a failure"}


def test_an_upgrade_partner_center_forgot_is_failed() -> None:
    outcome = interpret(unknown_upgrade_report("900106", "no such upgrade"))

    assert outcome.state is State.FAILED
    assert outcome.error == {"code": "900106", "message": "no such upgrade"}
    assert interpret(unknown_upgrade_report(None, "gone")).error == {"code": "UnknownUpgrade", "message": "gone"}


def test_checks_double_from_the_first_delay_up_to_the_cap(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(STATUS_FIRST_CHECK_SECONDS="60", STATUS_MAX_INTERVAL_SECONDS="900")

    assert [next_delay(settings, count) for count in range(7)] == [60, 120, 240, 480, 900, 900, 900]


def test_a_huge_check_count_stays_at_the_cap(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(STATUS_FIRST_CHECK_SECONDS="5", STATUS_MAX_INTERVAL_SECONDS="86400")

    assert next_delay(settings, 10_000) == 86_400


def _record(**fields: object) -> UpgradeRecord:
    record = UpgradeRecord.new(UPGRADE_ID, CUSTOMER_ID, T0)
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def test_a_record_is_stale_after_twice_its_interval_without_a_check(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    record = _record(last_checked_at=T0 + 100, next_check_at=T0 + 220)  # a 120 s interval

    assert not is_stale(record, T0 + 100 + 240, settings)
    assert is_stale(record, T0 + 100 + 241, settings)


def test_a_never_checked_record_uses_the_first_check_delay(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(STATUS_FIRST_CHECK_SECONDS="30")
    record = _record()

    assert not is_stale(record, T0 + 60, settings)
    assert is_stale(record, T0 + 61, settings)


@pytest.mark.parametrize("state", [State.COMPLETED, State.FAILED, State.TIMED_OUT])
def test_final_records_are_never_stale_nor_timed_out(state: State, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(STATUS_MAX_TRACKING_HOURS="1")
    record = _record(status=state)

    assert not is_stale(record, T0 + 10 * 86_400, settings)
    assert timed_out(record, T0 + 10 * 86_400, settings) is None


def test_tracking_times_out_at_the_configured_hours(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(STATUS_MAX_TRACKING_HOURS="1.5")
    record = _record()

    assert timed_out(record, T0 + 5399, settings) is None
    error = timed_out(record, T0 + 5400, settings)
    assert error == {"code": "TrackingTimedOut", "message": "the upgrade was not final after 1.5 hours of tracking"}
