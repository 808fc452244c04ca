"""A batch's customers as CSV (RFC 4180 quoting by the csv module). A cell that starts with `=`, `+`, `-`, `@`, a
TAB or a CR gets a leading `'`, so a spreadsheet shows it instead of running it as a formula (OWASP's CSV
injection guidance: company names and reasons come from Partner Center, not from us)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from shared.batches.model import CustomerRow

HEADER = ("customerId", "companyName", "outcome", "upgradeId", "reason", "updatedAt")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def to_csv(rows: Iterable[CustomerRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    for row in rows:
        item = row.to_item()
        writer.writerow([safe_cell(item[name]) for name in HEADER])
    return buffer.getvalue()


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
