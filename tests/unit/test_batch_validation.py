"""Batch input (shared/api/batch_input.py): what POST /api/batches and GET .../customers accept, and errors
that name the field (with the index of a bad id) without echoing the value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.api.batch_input import (
    MAX_ERRORS,
    encode_token,
    parse_batch_request,
    parse_customer_query,
)
from shared.api.campaign_input import MAX_CUSTOMERS
from shared.batches.model import Mode, Outcome
from shared.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

A = "0b7e6f1a-2c3d-4e5f-9a8b-7c6d5e4f3a2b"
B = "6a1d2b1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
JSON = "application/json"
HOSTS = ("hooks.contoso.com",)
NOW = 1_800_000_000.0  # notBefore rules are relative to it


def _parse(document: dict[str, Any], content_type: str = JSON) -> Any:
    return parse_batch_request(json.dumps(document).encode(), content_type, HOSTS, {}, NOW)


def _errors(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as failed:
        _parse(document)
    return {error.field: error.detail for error in failed.value.errors}


def test_a_report_for_listed_customers_is_accepted_with_ids_lower_cased() -> None:
    request = _parse({"productFamily": "azure", "mode": "report", "customerIds": [A.upper(), B]})

    assert (request.mode, request.product_family, request.customer_ids) == (Mode.REPORT, "Azure", (A, B))
    assert not request.all_customers and request.callback_url is None


def test_an_upgrade_of_all_customers_with_a_callback_is_accepted() -> None:
    url = "https://hooks.contoso.com/batches"
    request = _parse({"productFamily": "Azure", "mode": "upgrade", "allCustomers": True, "callbackUrl": url})

    assert request.all_customers and request.mode is Mode.UPGRADE and request.callback_url == url


def test_nothing_is_upgraded_unless_the_mode_says_so() -> None:
    assert "is required" in _errors({"productFamily": "Azure", "customerIds": [A]})["mode"]
    assert _errors({"productFamily": "Azure", "mode": "Upgrade", "customerIds": [A]})["mode"] == (
        "must be 'report' or 'upgrade'"
    )


@pytest.mark.parametrize(
    "members",
    [{}, {"customerIds": [A], "allCustomers": True}, {"customerIds": []}, {"customerIds": A}],
)
def test_exactly_one_non_empty_customer_selection(members: dict[str, Any]) -> None:
    assert set(_errors({"productFamily": "Azure", "mode": "report", **members})) == {"customerIds"}


def test_all_customers_must_be_true() -> None:
    assert set(_errors({"productFamily": "Azure", "mode": "report", "allCustomers": False})) == {"allCustomers"}


def test_bad_and_repeated_ids_are_named_by_index_without_their_value() -> None:
    ids = [A, "not-a-guid", "00000000-0000-0000-0000-000000000000", A.upper()]

    errors = _errors({"productFamily": "Azure", "mode": "report", "customerIds": ids})

    assert errors == {
        "customerIds[1]": "must be a non-nil GUID",
        "customerIds[2]": "must be a non-nil GUID",
        "customerIds[3]": "repeats customerIds[0]",
    }


def test_too_many_customers_is_one_error() -> None:
    ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(1, MAX_CUSTOMERS + 2)]

    errors = _errors({"productFamily": "Azure", "mode": "report", "customerIds": ids})

    assert errors == {"customerIds": f"has {MAX_CUSTOMERS + 1} items; at most {MAX_CUSTOMERS} are accepted"}


def test_at_most_max_errors_are_listed() -> None:
    ids = [f"bad-{n}" for n in range(MAX_ERRORS + 5)]

    assert len(_errors({"productFamily": "Azure", "mode": "report", "customerIds": ids})) == MAX_ERRORS


def test_unknown_fields_wrong_family_and_foreign_callback_are_named() -> None:
    document = {"productFamily": "Office", "mode": "report", "customerIds": [A], "dryRun": True,
                "callbackUrl": "https://evil.example/x"}  # fmt: skip

    errors = _errors(document)

    assert set(errors) == {"dryRun", "productFamily", "callbackUrl"}
    assert "evil" not in errors["callbackUrl"]


def test_the_body_must_be_json_of_bounded_size() -> None:
    with pytest.raises(UnsupportedMediaType):
        _parse({"mode": "report"}, content_type="text/plain")
    with pytest.raises(PayloadTooLarge):
        parse_batch_request(b" " * (256 * 1024 + 1), JSON, HOSTS, {}, NOW)


def test_a_customer_page_query_round_trips_its_token() -> None:
    query = parse_customer_query({"outcome": "hasUpgrade", "top": "25", "continuationToken": encode_token(A)})

    assert (query.outcome, query.top, query.after) == (Outcome.HAS_UPGRADE, 25, A)
    assert parse_customer_query({}) == type(query)(None, 100, None)


def test_a_bad_customer_page_query_names_each_parameter() -> None:
    with pytest.raises(ValidationFailed) as failed:
        parse_customer_query({"outcome": "done", "top": "0", "continuationToken": encode_token("someone")})

    assert [error.field for error in failed.value.errors] == ["outcome", "top", "continuationToken"]
