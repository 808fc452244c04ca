"""The tracking policy, pure: what a status report means, when to check next, when a record is stale, when
tracking gives up. No I/O; `tracker.py` applies it.

- `interpret` turns Partner Center's status strings (undocumented beyond "Completed") into our states:
  compared case-insensitively; "completed" with no failed line item is Completed; anything with "fail" in
  the upgrade or a line item is Failed; everything else stays InProgress (unknown strings are logged).
- Checks are scheduled with the queue's visibility delay: STATUS_FIRST_CHECK_SECONDS, then doubling up to
  STATUS_MAX_INTERVAL_SECONDS; a 429 reschedules after its Retry-After.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.correlation import get_logger
from shared.partner_center.client import StatusReport
from shared.settings import Settings
from shared.upgrades.model import CallbackState, State, UpgradeRecord

log = get_logger(__name__)

KNOWN_IN_PROGRESS = frozenset({"pending", "inprogress", "in progress", "in_progress", "notstarted", "queued"})


@dataclass(frozen=True)
class Meaning:
    """What a status report means for the upgrade: its state, and the error when Failed."""

    state: State
    error: dict[str, Any] | None


def apply_report(record: UpgradeRecord, report: StatusReport, now: float, settings: Settings) -> None:
    """One report applied to the record: state, error, timing, the next check, a callback made due."""
    meaning = interpret(report)
    record.checks += 1
    record.last_checked_at = record.updated_at = now
    record.partner_center_status = report.status
    record.line_items = report.line_items
    record.status, record.error = meaning.state, meaning.error
    tracked_too_long = timed_out(record, now, settings)
    if tracked_too_long:
        record.status, record.error = State.TIMED_OUT, tracked_too_long
    if record.is_final:
        record.next_check_at = None
        if record.callback_url and record.callback_state == CallbackState.NONE:
            record.callback_state = CallbackState.PENDING
    else:
        record.next_check_at = now + next_delay(settings, record.checks)


def interpret(report: StatusReport) -> Meaning:
    status = (report.status or "").strip().lower()
    failed_items = [i for i in report.line_items if "fail" in str(i.get("status", "")).lower()]
    if "fail" in status or failed_items:
        details = report.error_details or next(
            (i.get("errorDetails") for i in failed_items if isinstance(i.get("errorDetails"), dict)), None
        )
        return Meaning(State.FAILED, _error(details, failed_items))
    if status == "completed":
        return Meaning(State.COMPLETED, None)
    if status not in KNOWN_IN_PROGRESS:
        log.warning("Partner Center sent an unrecognised upgrade status %r; still tracking it", report.status)
    return Meaning(State.IN_PROGRESS, None)


def _error(details: Any, failed_items: list[dict[str, Any]]) -> dict[str, Any]:
    details = details if isinstance(details, dict) else {}
    error: dict[str, Any] = {
        "code": str(details.get("code") or "UpgradeFailed"),
        "message": str(details.get("description") or details.get("message") or "Partner Center reported a failure"),
    }
    if failed_items:
        error["failedLineItems"] = len(failed_items)
    return error


def next_delay(settings: Settings, count: int) -> int:
    """Seconds before the next check (or callback retry) after `count` of them: doubling, capped."""
    return min(settings.first_check_seconds * int(2 ** min(count, 30)), settings.max_interval_seconds)


def is_stale(record: UpgradeRecord, now: float, settings: Settings) -> bool:
    """Not final and no check for longer than twice its interval: its queue message may be gone."""
    if record.is_final:
        return False
    last = record.last_checked_at or record.created_at
    interval = (record.next_check_at - last) if record.next_check_at else settings.first_check_seconds
    return now - last > 2 * max(interval, 1)


def timed_out(record: UpgradeRecord, now: float, settings: Settings) -> dict[str, Any] | None:
    """The error of an upgrade tracked past STATUS_MAX_TRACKING_HOURS, or None while it may go on."""
    if record.is_final or now - record.created_at < settings.max_tracking_hours * 3600:
        return None
    return {
        "code": "TrackingTimedOut",
        "message": f"the upgrade was not final after {settings.max_tracking_hours:g} hours of tracking",
    }


def unknown_upgrade_report(code: str | None, detail: str) -> StatusReport:
    """A recorded upgrade that Partner Center no longer knows (900106/900111) can never complete: Failed."""
    return StatusReport(status="Failed", error_details={"code": code or "UnknownUpgrade", "description": detail})
