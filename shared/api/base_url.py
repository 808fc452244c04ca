"""The external base URL that `Location` and `statusUri` are built on: `PUBLIC_BASE_URL` when set, else the
request's own scheme and host, which must then be a well-formed host name (docs/design.md, "HTTP contract").

A caller controls the `Host` header. A host that is not a plain DNS name or IPv4 address, with an optional port,
is refused with 400 naming `Host` (brackets, userinfo, spaces, non-ASCII, an out-of-range port), so no link the
app hands out can point anywhere the caller smuggled in.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from shared.errors import FieldError, ValidationFailed

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?=[^:]{{1,253}}(?::|$)){_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?")


def base_url(url: str, host_header: str | None, public_base_url: str | None) -> str:
    """`PUBLIC_BASE_URL`, else `scheme://host[:port]` of the request (lower-case); ValidationFailed on a bad Host."""
    if public_base_url:
        return public_base_url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when the port is out of range
    except ValueError:
        raise _bad_host() from None
    hosts = [parts.netloc] if host_header is None else [parts.netloc, host_header]
    if parts.scheme not in ("http", "https") or not all(_HOST.fullmatch(host) for host in hosts):
        raise _bad_host()
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _bad_host() -> ValidationFailed:
    rule = "must be a host name or IPv4 address with an optional port (behind a proxy, set PUBLIC_BASE_URL)"
    return ValidationFailed([FieldError("Host", rule)])
