"""Validation of what callers send: the create body, the Idempotency-Key header, ids in routes and queries.

Errors name the field and the rule, never echo the value a caller sent.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Any, TypeIs
from urllib.parse import urlsplit

from shared.correlation import is_guid
from shared.errors import FieldError, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

MAX_BODY_BYTES = 16 * 1024
MAX_CALLBACK_URL_LENGTH = 2048
MAX_IDEMPOTENCY_KEY_LENGTH = 255
ALLOWED_FIELDS = ("customerId", "productFamily", "callbackUrl")
PRODUCT_FAMILY = "Azure"
NIL_GUID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class UpgradeRequest:
    customer_id: str
    product_family: str
    callback_url: str | None

    def fingerprint(self) -> str:
        """Identifies the request's meaning (not its bytes), for Idempotency-Key comparison."""
        canonical = json.dumps([self.customer_id, self.product_family, self.callback_url], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def parse_upgrade_request(
    body: bytes, content_type: str | None, allowed_callback_hosts: tuple[str, ...]
) -> UpgradeRequest:
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is {len(body)} bytes; at most {MAX_BODY_BYTES} bytes are accepted")
    _require_json_media_type(content_type)
    document = parse_json_object(body)

    errors = [
        FieldError(_printable_name(name), "is not a known field") for name in document if name not in ALLOWED_FIELDS
    ][:10]
    customer_id = _guid_field(document, "customerId", errors)
    product_family = _product_family(document, errors)
    callback_url = document.get("callbackUrl")
    if callback_url is not None:
        problem = callback_url_problem(callback_url, allowed_callback_hosts)
        if problem:
            errors.append(FieldError("callbackUrl", problem))
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
        return None
    if not is_customer_id(value):
        raise ValidationFailed([FieldError(field, "must be a non-nil GUID")])
    return value.lower()


def callback_url_problem(url: Any, allowed_hosts: tuple[str, ...]) -> str | None:
    """Why a callback URL is refused, or None when it may be called."""
    if not allowed_hosts:
        return "callbacks are not enabled on this deployment (CALLBACK_ALLOWED_HOSTS is not set)"
    if not isinstance(url, str):
        return "must be a string"
    if len(url) > MAX_CALLBACK_URL_LENGTH or not url.isascii() or any(c <= " " for c in url):
        return f"must be an ASCII URL of at most {MAX_CALLBACK_URL_LENGTH} characters without spaces"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "must be an absolute https URL"
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host:
        return "must be an absolute https URL"
    if parts.username is not None or parts.password is not None or parts.fragment:
        return "must not contain credentials or a fragment"
    if port == 0:
        return "must not use port 0"
    if _is_ip_literal(host):
        return "must use a host name, not an IP address"
    if not host_allowed(host, allowed_hosts):
        return "host is not on the callback allow-list (CALLBACK_ALLOWED_HOSTS)"
    return None


def host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for allowed in allowed_hosts:
        if allowed.startswith("*."):
            suffix = allowed[1:]
            if host.endswith(suffix) and len(host) > len(suffix):
                return True
        elif host == allowed:
            return True
    return False


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


def _product_family(document: dict[str, Any], errors: list[FieldError]) -> str:
    value = document.get("productFamily")
    if value is None:
        errors.append(FieldError("productFamily", "is required"))
    elif not isinstance(value, str) or value.lower() != PRODUCT_FAMILY.lower():
        errors.append(FieldError("productFamily", "must be 'Azure', the only product family that can be upgraded"))
    return PRODUCT_FAMILY


def _printable_name(name: str) -> str:
    cleaned = "".join(c if c.isprintable() else "?" for c in name)
    return cleaned if len(cleaned) <= 64 else cleaned[:61] + "..."


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        # Also refuse the numeric forms resolvers accept as IPv4 (2130706433, 0x7f.1, 127.1).
        return all(part.isdigit() or part.lower().startswith("0x") for part in host.split("."))
    return True
