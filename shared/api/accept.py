"""Content negotiation: which of the media types a route can send the caller's `Accept` prefers (RFC 9110
§12.5.1: media ranges, `*/*` and `type/*`, q-values, the most specific range deciding a type's q, `q=0` meaning
"not acceptable"). Parsed by Werkzeug, which the Functions library already loads (pinned in requirements.txt).
"""

from __future__ import annotations

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header


def prefers(accept_header: str | None, offered: list[str]) -> str | None:
    """The offered media type the caller prefers: the highest q-value, a tie going to the earlier in `offered`.
    `offered[0]` when there is no `Accept` (anything is acceptable); None when the header accepts none of them
    (the route then answers its default or 406, as it documents)."""
    if accept_header is None or not accept_header.strip():
        return offered[0] if offered else None
    return parse_accept_header(accept_header, MIMEAccept).best_match(offered)
