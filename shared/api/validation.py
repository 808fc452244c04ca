"""Validation of what callers send: the create body, the Idempotency-Key header, ids in routes and queries.

Errors name the field and the rule, never echo the value a caller sent.
"""

from __future__ import annotations

import json
from typing import Any, TypeIs

from shared.callback_urls import callback_url_problem
from shared.correlation import is_guid
from shared.errors import FieldError, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from shared.upgrades.model import PRODUCT_FAMILY, UpgradeRequest

MAX_BODY_BYTES = 16 * 1024
MAX_IDEMPOTENCY_KEY_LENGTH = 255
ALLOWED_FIELDS = ("customerId", "productFamily", "callbackUrl")
NIL_GUID = "00000000-0000-0000-0000-000000000000"


def parse_upgrade_request(
    body: bytes, content_type: str | None, allowed_callback_hosts: tuple[str, ...]
) -> UpgradeRequest:
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is {len(body)} bytes; at most {MAX_BODY_BYTES} bytes are accepted")
    _require_json_media_type(content_type)
    document = parse_json_object(body)

    errors = [
        FieldError(printable_name(name), "is not a known field") for name in document if name not in ALLOWED_FIELDS
    ][:10]
    customer_id = _guid_field(document, "customerId", errors)
    product_family = check_product_family(document, errors)
    callback_url = check_callback_url(document, allowed_callback_hosts, errors)
    if errors:
        raise ValidationFailed(errors)
    return UpgradeRequest(customer_id, product_family, callback_url)


def is_idempotency_key(value: str) -> bool:
    """The Idempotency-Key rule: 1-255 visible ASCII characters."""
    return 1 <= len(value) <= MAX_IDEMPOTENCY_KEY_LENGTH and all(0x21 <= ord(c) <= 0x7E for c in value)


def is_customer_id(value: object) -> TypeIs[str]:
    """The id rule for customers and upgrades: a non-nil GUID (any case)."""
    return isinstance(value, str) and is_guid(value) and value != NIL_GUID


def is_json_media_type(content_type: str | None) -> bool:
    """`application/json` or a structured-syntax `application/*+json` type (RFC 6839), UTF-8 if a charset is named."""
    media_type, _, params = (content_type or "").partition(";")
    media_type = media_type.strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return False
    return all(_charset_is_utf8(param) for param in params.split(";"))


def _charset_is_utf8(param: str) -> bool:
    name, _, value = param.partition("=")
    return name.strip().lower() != "charset" or value.strip().strip('"').lower() in ("utf-8", "utf8")


def parse_idempotency_key(value: str | None) -> str | None:
    """None when the header is absent; 1-255 visible ASCII characters otherwise."""
    if value is None:
        return None
    if not is_idempotency_key(value):
        raise ValidationFailed([FieldError("Idempotency-Key", "must be 1 to 255 visible ASCII characters (no spaces)")])
    return value


def parse_guid(value: str | None, field: str, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise ValidationFailed([FieldError(field, "is required")])
        if value == "":  # `?customerId=` is a malformed value, not an absent one (the document's pattern forbids it)
            raise ValidationFailed([FieldError(field, "is empty: send a GUID, or leave the parameter out")])
        return None
    if not is_customer_id(value):
        raise ValidationFailed([FieldError(field, "must be a non-nil GUID")])
    return value.lower()


def _require_json_media_type(content_type: str | None) -> None:
    if not is_json_media_type(content_type):
        raise UnsupportedMediaType("send the body as Content-Type: application/json (UTF-8)")


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed([FieldError("body", "is not valid UTF-8")]) from None
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise ValidationFailed([FieldError("body", "is not valid JSON")]) from None
    if not isinstance(document, dict):
        raise ValidationFailed([FieldError("body", "must be a JSON object")])
    return document


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError("duplicate key")
        document[key] = value
    return document


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _guid_field(document: dict[str, Any], field: str, errors: list[FieldError]) -> str:
    value = document.get(field)
    if value is None:
        errors.append(FieldError(field, "is required"))
    elif not is_customer_id(value):
        errors.append(FieldError(field, "must be a non-nil GUID (the customer's Microsoft ID / tenant id)"))
    else:
        return value.lower()
    return ""


def check_callback_url(document: dict[str, Any], allowed_hosts: tuple[str, ...], errors: list[FieldError]) -> Any:
    """The optional `callbackUrl` member (None when absent); a refused one adds its error."""
    callback_url = document.get("callbackUrl")
    if callback_url is not None:
        problem = callback_url_problem(callback_url, allowed_hosts)
        if problem:
            errors.append(FieldError("callbackUrl", problem))
    return callback_url


def check_product_family(document: dict[str, Any], errors: list[FieldError]) -> str:
    """The required `productFamily` member: `Azure`, any case; anything else adds its error."""
    value = document.get("productFamily")
    if value is None:
        errors.append(FieldError("productFamily", "is required"))
    elif not isinstance(value, str) or value.lower() != PRODUCT_FAMILY.lower():
        errors.append(FieldError("productFamily", "must be 'Azure', the only product family that can be upgraded"))
    return PRODUCT_FAMILY


def printable_name(name: str) -> str:
    """A member name as it may appear in an error: printable characters only, at most 64."""
    cleaned = "".join(c if c.isprintable() else "?" for c in name)
    return cleaned if len(cleaned) <= 64 else cleaned[:61] + "..."
