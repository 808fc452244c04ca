"""List query and continuation tokens (shared/api/list_query.py): filters are checked and named, and a token only
works unaltered, with the filters it was handed out for."""

from __future__ import annotations

import pytest

from shared.api.list_query import DEFAULT_TOP, MAX_TOP, ListQuery, encode_token, parse_list_query
from shared.errors import ValidationFailed
from shared.upgrades.model import State

CUSTOMER_ID = "0B7E6F1A-2C3D-4E5F-9A8B-7C6D5E4F3A2B"
POSITION = {"PartitionKey": "up|0b7e", "RowKey": "6a1d2b1e"}


def _fields(params: dict[str, str]) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as failed:
        parse_list_query(params)
    return {error.field: error.detail for error in failed.value.errors}


def test_no_parameters_list_everything_a_default_page_at_a_time() -> None:
    assert parse_list_query({}) == ListQuery(None, None, DEFAULT_TOP, None)


def test_filters_are_read_in_any_case() -> None:
    query = parse_list_query({"customerId": CUSTOMER_ID, "status": "timedout", "top": str(MAX_TOP), "code": "x"})

    assert query == ListQuery(CUSTOMER_ID.lower(), State.TIMED_OUT, MAX_TOP, None)


def test_every_bad_parameter_is_named_at_once() -> None:
    fields = _fields({"customerId": "00000000-0000-0000-0000-000000000000", "status": "Done", "top": "1001"})

    assert set(fields) == {"customerId", "status", "top"}
    assert "InProgress, Completed, Failed, TimedOut" in fields["status"]


@pytest.mark.parametrize("top", ["0", "-1", "1.5", "ten", "99999"])
def test_top_must_be_a_whole_number_in_range(top: str) -> None:
    assert set(_fields({"top": top})) == {"top"}


def test_a_token_brings_back_its_position_with_the_same_filters() -> None:
    filtered = parse_list_query({"customerId": CUSTOMER_ID, "status": "Failed"})
    token = encode_token(filtered, POSITION)

    again = parse_list_query({"customerId": CUSTOMER_ID.lower(), "status": "FAILED", "continuationToken": token})

    assert again.position == POSITION


@pytest.mark.parametrize(
    "other", [{}, {"status": "Failed"}, {"customerId": CUSTOMER_ID}, {"customerId": CUSTOMER_ID, "status": "Completed"}]
)
def test_a_token_with_other_filters_is_refused(other: dict[str, str]) -> None:
    token = encode_token(parse_list_query({"customerId": CUSTOMER_ID, "status": "Failed"}), POSITION)

    fields = _fields(other | {"continuationToken": token})

    assert "other filters" in fields["continuationToken"]


def _altered(token: str) -> str:
    payload, digest = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    return f"{flipped}.{digest}"


@pytest.mark.parametrize(
    ("mangle", "detail"),
    [
        (_altered, "was altered"),
        (lambda token: token.replace(".", ""), "not a token this API handed out"),
        (lambda token: token + ".x", "not a token this API handed out"),
        (lambda token: "!!!." + token.split(".")[1], "not a token this API handed out"),
        (lambda token: token + "A" * 5000, "not a token this API handed out"),
    ],
)
def test_a_mangled_token_is_a_400_naming_continuation_token(mangle: object, detail: str) -> None:
    token = encode_token(parse_list_query({}), POSITION)

    fields = _fields({"continuationToken": mangle(token)})  # type: ignore[operator]

    assert list(fields) == ["continuationToken"] and detail in fields["continuationToken"]
