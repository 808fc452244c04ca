"""A `text/csv` body for `POST /api/batches`: the batch CSV export after the partner deleted the rows it does not
approve (docs/design.md, "Campaigns"). Only the `customerId` column counts; a leading `'` that the export put
before a formula character (`export.FORMULA_STARTS`, and TAB / CR) is not part of the value. A bad line is a 400
naming its line number (1 is the header).
"""

from __future__ import annotations

import _csv
import csv
import io

from shared.api.campaign_input import MAX_CUSTOMERS
from shared.api.validation import is_customer_id
from shared.errors import FieldError, ValidationFailed

COLUMN = "customerId"
PREFIXED = ("=", "+", "-", "@", "\t", "\r")
MAX_ERRORS = 10


def is_csv_media_type(content_type: str | None) -> bool:
    media, _, params = (content_type or "").partition(";")
    charset = params.strip().lower().removeprefix("charset=").strip('"')
    return media.strip().lower() == "text/csv" and charset in ("", "utf-8", "utf8")


def parse_customer_csv(body: bytes) -> tuple[str, ...]:
    """The customer ids of the `customerId` column, in file order, lower case."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed([FieldError("body", "must be UTF-8 text")]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
        column = [name.strip() for name in header].index(COLUMN)
    except ValueError:
        raise ValidationFailed([FieldError("body", f"line 1 (the header) has no {COLUMN} column")]) from None
    except csv.Error:
        raise ValidationFailed([FieldError("body", "line 1 is not valid CSV")]) from None
    return _customer_ids(reader, column)


def _customer_ids(reader: _csv.Reader, column: int) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    errors: list[FieldError] = []
    line = reader.line_num + 1
    try:
        for record in reader:
            if any(cell.strip() for cell in record):
                _one(record, column, line, seen, errors)
            if len(seen) > MAX_CUSTOMERS:
                raise ValidationFailed([FieldError("body", f"has more than {MAX_CUSTOMERS} customer rows")])
            line = reader.line_num + 1
    except csv.Error:
        errors.append(FieldError(f"line {line}", "is not valid CSV"))
    if not seen and not errors:
        errors.append(FieldError("body", "has no customer rows below its header"))
    if errors:
        raise ValidationFailed(errors[:MAX_ERRORS])
    return tuple(seen)


def _one(record: list[str], column: int, line: int, seen: dict[str, int], errors: list[FieldError]) -> None:
    value = record[column].strip() if column < len(record) else ""
    if value.startswith("'") and value[1:].startswith(PREFIXED):
        value = value[1:].strip()
    cell: object = value
    if not is_customer_id(cell):
        errors.append(FieldError(f"line {line}", f"{COLUMN} must be a non-nil GUID"))
    elif value.lower() in seen:
        errors.append(FieldError(f"line {line}", f"{COLUMN} repeats line {seen[value.lower()]}"))
    else:
        seen[value.lower()] = line
