"""The batch CSV (shared/batches/export.py): one header, RFC 4180 quoting, and no cell a spreadsheet would run."""

from __future__ import annotations

import csv
import io

import pytest

from shared.batches.export import HEADER, safe_cell, to_csv
from shared.batches.model import CustomerRow, Outcome

A = "0b7e6f1a-2c3d-4e5f-9a8b-7c6d5e4f3a2b"
UPGRADE_ID = "6a1d2b1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"


def test_rows_follow_the_header_with_crlf_and_iso_times() -> None:
    row = CustomerRow(A, Outcome.HAS_UPGRADE, "Contoso, Ltd", UPGRADE_ID, None, 1_800_000_000.5)

    text = to_csv([row])

    assert text.split("\r\n") == [
        ",".join(HEADER),
        f'{A},"Contoso, Ltd",hasUpgrade,{UPGRADE_ID},,2027-01-15T08:00:00.500Z',
        "",
    ]


def test_no_rows_is_just_the_header() -> None:
    assert to_csv([]) == "customerId,companyName,outcome,upgradeId,reason,updatedAt\r\n"


def test_quotes_and_line_breaks_survive_a_round_trip() -> None:
    name = 'The "Best"\nCompany'
    rows = list(csv.reader(io.StringIO(to_csv([CustomerRow(A, company_name=name, reason="a;b")]), newline="")))

    assert rows[1][1] == name and rows[1][4] == "a;b"


@pytest.mark.parametrize("formula", ['=HYPERLINK("x")', "+1", "-2+3", "@SUM(A1)"])
def test_a_cell_that_looks_like_a_formula_is_shown_not_run(formula: str) -> None:
    rows = list(csv.reader(io.StringIO(to_csv([CustomerRow(A, company_name=formula)]))))

    assert rows[1][1] == "'" + formula


def test_safe_cell_leaves_plain_values_and_empties_none() -> None:
    assert (safe_cell("Contoso"), safe_cell(None), safe_cell(3)) == ("Contoso", "", "3")
