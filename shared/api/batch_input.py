"""Validation of what callers send to the batch routes. Errors name the field (with its index for ids) and the
rule, never echo the value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.api.campaign_input import check_guid_list, check_not_before, check_source
from shared.api.csv_upload import is_csv_media_type, parse_customer_csv
from shared.api.validation import (
    check_callback_url,
    check_product_family,
    is_customer_id,
    is_json_media_type,
    parse_json_object,
    printable_name,
)
from shared.batches.model import BatchRequest, Mode, Outcome
from shared.errors import FieldError, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from shared.upgrades.model import PRODUCT_FAMILY
from shared.whole_number import whole_number

MAX_BODY_BYTES = 256 * 1024
MAX_TOP = 1000
DEFAULT_TOP = 100
ALLOWED_FIELDS = (
    "productFamily", "mode", "customerIds", "allCustomers", "fromBatch", "outcomes", "excludeCustomerIds",
    "notBefore", "callbackUrl",
)  # fmt: skip
CSV_PARAMETERS = ("mode", "productFamily", "notBefore", "callbackUrl")
MAX_ERRORS = 10


def parse_batch_request(
    body: bytes,
    content_type: str | None,
    allowed_callback_hosts: tuple[str, ...],
    params: Mapping[str, str],
    now: float,
) -> BatchRequest:
    """A JSON body, or a `text/csv` body with the other fields as query parameters."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is {len(body)} bytes; at most {MAX_BODY_BYTES} bytes are accepted")
    if is_csv_media_type(content_type):
        customer_ids = parse_customer_csv(body)
        document: dict[str, Any] = {name: params[name] for name in CSV_PARAMETERS if name in params}
        return _request(document | {"customerIds": list(customer_ids)}, allowed_callback_hosts, now)
    if not is_json_media_type(content_type):
        raise UnsupportedMediaType(
            "send the body as Content-Type: application/json (UTF-8), or the edited batch CSV as text/csv"
        )
    misplaced = [name for name in CSV_PARAMETERS if name in params]
    if misplaced:  # two places for one field would be two parsers reading one request differently
        raise ValidationFailed(
            [
                FieldError(name, "is a query parameter of a text/csv body only; send it in the JSON body")
                for name in misplaced
            ]
        )
    document = parse_json_object(body)
    return _request(document, allowed_callback_hosts, now)


def _request(document: dict[str, Any], allowed_callback_hosts: tuple[str, ...], now: float) -> BatchRequest:
    errors = [
        FieldError(printable_name(name), "is not a known field") for name in document if name not in ALLOWED_FIELDS
    ]
    mode = _mode(document, errors)
    check_product_family(document, errors)
    source = check_source(document, errors)
    excluded: tuple[str, ...] = ()
    if document.get("excludeCustomerIds") is not None:
        excluded = check_guid_list("excludeCustomerIds", document["excludeCustomerIds"], errors, allow_empty=True)
    not_before = check_not_before(document.get("notBefore"), now, errors)
    callback_url = check_callback_url(document, allowed_callback_hosts, errors)
    if errors:
        raise ValidationFailed(errors[:MAX_ERRORS])
    assert mode is not None
    return BatchRequest(
        mode, PRODUCT_FAMILY, source.customer_ids, callback_url,
        from_batch=source.from_batch, outcomes=source.outcomes, excluded=excluded, not_before=not_before,
    )  # fmt: skip


def _mode(document: dict[str, Any], errors: list[FieldError]) -> Mode | None:
    value = document.get("mode")
    if value is None:
        errors.append(FieldError("mode", "is required: 'report' or 'upgrade' (nothing is upgraded unless asked)"))
    elif value not in (Mode.REPORT.value, Mode.UPGRADE.value):
        errors.append(FieldError("mode", "must be 'report' or 'upgrade'"))
    else:
        return Mode(value)
    return None


@dataclass(frozen=True)
class CustomerQuery:
    outcome: Outcome | None
    top: int
    after: str | None  # the customer id the previous page ended with


def parse_customer_query(params: Mapping[str, str]) -> CustomerQuery:
    errors: list[FieldError] = []
    outcome: Outcome | None = None
    raw_outcome = params.get("outcome")
    if raw_outcome is not None:
        if raw_outcome in {o.value for o in Outcome}:
            outcome = Outcome(raw_outcome)
        else:
            errors.append(FieldError("outcome", "must be one of " + ", ".join(o.value for o in Outcome)))
    top = DEFAULT_TOP
    raw_top = params.get("top")
    if raw_top:
        number = whole_number(raw_top, max_digits=5)
        if number is not None and 1 <= number <= MAX_TOP:
            top = number
        else:
            errors.append(FieldError("top", f"must be a whole number from 1 to {MAX_TOP}"))
    after = None
    token = params.get("continuationToken")
    if token:
        after = decode_token(token)
        if after is None:
            errors.append(FieldError("continuationToken", "is not a token this route handed out"))
    if errors:
        raise ValidationFailed(errors)
    return CustomerQuery(outcome, top, after)


def encode_token(customer_id: str) -> str:
    return base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")


def decode_token(token: str) -> str | None:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return text if is_customer_id(text) else None
