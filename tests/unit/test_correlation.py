"""Correlation ids (shared/correlation.py): a caller's GUID is kept, anything else replaced by a new GUID, and every
log line of a scope carries the id."""

from __future__ import annotations

import logging

import pytest

from shared.correlation import correlation_id_from, correlation_scope, current_correlation_id, get_logger, is_guid

GIVEN = "6A1D2B1E-3C4D-4E5F-8A9B-0C1D2E3F4A5B"


def test_a_callers_guid_is_kept_lower_cased() -> None:
    assert correlation_id_from(f"  {GIVEN} ") == GIVEN.lower()


@pytest.mark.parametrize("value", [None, "", "abc", "{" + GIVEN + "}", GIVEN + "0", "'; drop"])
def test_anything_else_gets_a_new_guid(value: str | None) -> None:
    new = correlation_id_from(value)

    assert is_guid(new) and new != correlation_id_from(value)


def test_every_line_in_a_scope_carries_the_id_and_the_scope_ends(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log = get_logger("unit.correlation")

    with correlation_scope(GIVEN.lower()):
        log.info("checked %s", "status")
        assert current_correlation_id() == GIVEN.lower()
    log.info("outside")

    inside, outside = caplog.records
    assert inside.getMessage() == f"[{GIVEN.lower()}] checked status"
    assert inside.correlationId == GIVEN.lower()  # type: ignore[attr-defined]
    assert outside.getMessage() == "[-] outside" and current_correlation_id() == "-"
