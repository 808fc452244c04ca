"""The query of `GET /api/upgrades`: filters, page size and the opaque continuation token.

The token is `base64url(JSON) "." base64url(digest)`: the JSON holds the Table service's position (where the next
page starts) and the filters it belongs to; the digest (SHA-256 of the JSON, 16 bytes) makes any edit visible.
A token that does not decode, was altered, or comes with other filters is a 400 naming `continuationToken`.
The digest is an integrity check, not a secret: a caller who holds a function key may list everything anyway,
and the position can never widen the query beyond its filters (docs/design.md, "GET /api/upgrades (list)").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.api.validation import parse_guid
from shared.errors import FieldError, ValidationFailed
from shared.upgrades.model import State
from shared.whole_number import whole_number

if TYPE_CHECKING:  # the index module imports the Table SDK; the list route imports it on its first request
    from shared.storage.upgrade_index import Position

DEFAULT_TOP = 100
MAX_TOP = 1000
MAX_TOKEN_LENGTH = 4096
TOKEN_VERSION = 1
_DIGEST_SALT = b"partner-center-upgrade:list-token\n"
_STATES = {state.value.lower(): state for state in State}


@dataclass(frozen=True)
class ListQuery:
    customer_id: str | None
    status: State | None
    top: int
    position: Position | None


def parse_list_query(params: Mapping[str, str]) -> ListQuery:
    """The filters, or ValidationFailed naming every bad parameter (unknown parameters, e.g. `code`, are ignored)."""
    errors: list[FieldError] = []
    customer_id = _collect(errors, lambda: parse_guid(params.get("customerId"), "customerId", required=False))
    status = _status(params.get("status"), errors)
    top = _top(params.get("top"), errors)
    if errors:
        raise ValidationFailed(errors)
    token = params.get("continuationToken")
    position = None if token in (None, "") else decode_token(token, customer_id, status)
    return ListQuery(customer_id, status, top, position)


def encode_token(query: ListQuery, position: Position) -> str:
    payload = _canonical(
        {
            "v": TOKEN_VERSION,
            "customerId": query.customer_id,
            "status": query.status.value if query.status else None,
            "pk": position["PartitionKey"],
            "rk": position["RowKey"],
        }
    )
    return f"{_b64(payload)}.{_b64(_digest(payload))}"


def decode_token(token: str, customer_id: str | None, status: State | None) -> Position:
    document = _verified(token)
    expected = {"customerId": customer_id, "status": status.value if status else None}
    if {name: document.get(name) for name in expected} != expected:
        raise _bad_token("belongs to a query with other filters; send the same customerId and status as before")
    return {"PartitionKey": document["pk"], "RowKey": document["rk"]}


def _verified(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise _bad_token("is not a token this API handed out")
    encoded_payload, encoded_digest = token.split(".")
    try:
        payload, digest = _unb64(encoded_payload), _unb64(encoded_digest)
    except (binascii.Error, ValueError):
        raise _bad_token("is not a token this API handed out") from None
    if not hmac.compare_digest(digest, _digest(payload)):
        raise _bad_token("was altered; send it exactly as it was received")
    try:
        document = json.loads(payload)
    except ValueError:
        raise _bad_token("is not a token this API handed out") from None
    if (
        not isinstance(document, dict)
        or document.get("v") != TOKEN_VERSION
        or not all(isinstance(document.get(key), str) for key in ("pk", "rk"))
    ):
        raise _bad_token("is not a token this API handed out")
    return document


def _status(value: str | None, errors: list[FieldError]) -> State | None:
    if value is None:
        return None
    state = _STATES.get(value.lower())
    if state is None:
        errors.append(FieldError("status", "must be one of InProgress, Completed, Failed, TimedOut"))
    return state


def _top(value: str | None, errors: list[FieldError]) -> int:
    if value is None:
        return DEFAULT_TOP
    number = whole_number(value, max_digits=5)
    if number is None or not 1 <= number <= MAX_TOP:
        errors.append(FieldError("top", f"must be a whole number from 1 to {MAX_TOP}"))
        return DEFAULT_TOP
    return number


def _collect(errors: list[FieldError], parse: Callable[[], str | None]) -> str | None:
    try:
        return parse()
    except ValidationFailed as failed:
        errors.extend(failed.errors)
        return None


def _bad_token(detail: str) -> ValidationFailed:
    return ValidationFailed([FieldError("continuationToken", detail)])


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _digest(payload: bytes) -> bytes:
    return hashlib.sha256(_DIGEST_SALT + payload).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
